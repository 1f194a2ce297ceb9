package msgbroker

import (
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
)

// failure_delay: off (negative) and up to 30 s are accepted, longer is
// refused, as are negative limits.
func TestLoginConfigBounds(t *testing.T) {
	for _, tc := range []struct {
		cfg  LoginConfig
		want string
	}{
		{LoginConfig{FailureDelay: -1}, ""},
		{LoginConfig{FailureDelay: caddy.Duration(maxFailureDelay)}, ""},
		{LoginConfig{FailureDelay: caddy.Duration(maxFailureDelay + time.Nanosecond)}, "failure_delay must be at most 30s"},
		{LoginConfig{HashesPerSecond: -1, MaxFailures: -1, AddressMaxFailures: -1}, ""},
		{LoginConfig{HashesPerSecond: -2}, "limits must not be negative"},
		{LoginConfig{Lockout: -1}, "limits must not be negative"},
		{LoginConfig{BcryptCost: 3}, "bcrypt_cost must be between 4 and 31"},
		{LoginConfig{BcryptCost: 32}, "bcrypt_cost must be between 4 and 31"},
		{LoginConfig{BcryptCost: 31}, ""},
	} {
		err := tc.cfg.validate()
		if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
	}
}
