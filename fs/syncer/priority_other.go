//go:build !linux

package syncer

// lowerPriority is a no-op where threads have no niceness of their own.
func lowerPriority() {}
