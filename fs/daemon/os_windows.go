package daemon

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/windows"
)

// lockFile takes an exclusive lock on f without waiting
// (syscall.EWOULDBLOCK if another process holds it).
func lockFile(f *os.File) error {
	var ol windows.Overlapped
	err := windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &ol)
	if errors.Is(err, windows.ERROR_LOCK_VIOLATION) {
		return syscall.EWOULDBLOCK
	}
	return err
}

// isDrive reports whether a mountpoint is a drive letter ("X:").
func isDrive(dir string) bool {
	return len(dir) == 2 && dir[1] == ':' && ('A' <= dir[0] && dir[0] <= 'Z' || 'a' <= dir[0] && dir[0] <= 'z')
}

// Mountpoint returns the mountpoint a `mount DIR` argument names: a drive
// letter ("X:", or "X:\") as it is, a folder as an absolute path.
func Mountpoint(arg string) (string, error) {
	if d := strings.TrimRight(arg, `\/`); isDrive(d) {
		return strings.ToUpper(d), nil
	}
	return filepath.Abs(arg)
}

// prepareMountpoint checks the mountpoint: WinFsp mounts on a free drive
// letter, or creates the mount folder itself (its parent must exist, the
// folder must not; an empty one left by an earlier mount is removed).
func prepareMountpoint(dir string) error {
	if isDrive(dir) {
		if _, err := os.Stat(dir + `\`); err == nil {
			return fmt.Errorf("drive %s is in use", dir)
		}
		return nil
	}
	if _, err := os.Stat(filepath.Dir(dir)); err != nil {
		return fmt.Errorf("mountpoint %s: %w", dir, err)
	}
	if _, err := os.Stat(dir); err == nil {
		if err := os.Remove(dir); err != nil {
			return fmt.Errorf("mountpoint %s must not exist (WinFsp creates it): %w", dir, err)
		}
	}
	return nil
}

// DetachMount is not needed on Windows: a drive goes away with the
// process that served it.
func DetachMount(string) error { return errors.ErrUnsupported }
