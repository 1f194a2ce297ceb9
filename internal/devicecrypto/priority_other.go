//go:build !linux

package devicecrypto

// lowerPriority does nothing where threads have no priority of their own
// that Go can set.
func lowerPriority() {}
