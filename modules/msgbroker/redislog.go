package msgbroker

import (
	"context"
	"fmt"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"
)

func init() {
	// go-redis reports dial failures through its own process-wide logger,
	// which writes unstructured lines to stderr; send them to Caddy's
	// logs instead, where an operator's log config applies.
	redis.SetLogger(redisLogger{})
}

// redisLogger adapts go-redis's logger to Caddy's (zap).
type redisLogger struct{}

func (redisLogger) Printf(_ context.Context, format string, v ...any) {
	caddy.Log().Named("msgbroker.redis").Warn(fmt.Sprintf(format, v...))
}
