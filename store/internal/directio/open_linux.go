package directio

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// Open opens path with O_DIRECT added to flag, or fails with
// ErrUnsupported where the file system refuses it (EINVAL: tmpfs before
// Linux 6.6, some FUSE file systems).
func Open(path string, flag int, perm os.FileMode) (*os.File, error) {
	f, err := os.OpenFile(path, flag|unix.O_DIRECT, perm)
	if errors.Is(err, unix.EINVAL) {
		return nil, ErrUnsupported
	}
	return f, err
}

// Datasync makes f's data and size durable (fdatasync).
func Datasync(f *os.File) error { return unix.Fdatasync(int(f.Fd())) }
