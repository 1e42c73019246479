//go:build unix

package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockFile takes an exclusive lock on f without waiting
// (syscall.EWOULDBLOCK if another process holds it).
func lockFile(f *os.File) error {
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
}

// prepareMountpoint creates the mountpoint, and detaches the dead mount a
// killed daemon left there ("transport endpoint is not connected").
func prepareMountpoint(dir string) error {
	_, err := os.Stat(dir)
	if errors.Is(err, syscall.ENOTCONN) || errors.Is(err, syscall.ECONNABORTED) {
		if err := DetachMount(dir); err != nil {
			return fmt.Errorf("clear stale mount at %s: %w", dir, err)
		}
		_, err = os.Stat(dir)
	}
	if errors.Is(err, os.ErrNotExist) {
		return os.MkdirAll(dir, 0o755)
	}
	if err != nil {
		return fmt.Errorf("mountpoint %s: %w", dir, err)
	}
	return nil
}

// Mountpoint returns the mountpoint a `mount DIR` argument names.
func Mountpoint(arg string) (string, error) { return filepath.Abs(arg) }
