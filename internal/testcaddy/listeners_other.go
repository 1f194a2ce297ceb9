//go:build !linux

package testcaddy

import "time"

// waitForOldListeners does nothing where Caddy does not open a second
// socket for a reload (it shares the old one instead).
func waitForOldListeners(time.Duration) error { return nil }
