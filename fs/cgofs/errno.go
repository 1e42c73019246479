//go:build windows || (darwin && cgo) || (linux && cgo && fuse3)

package cgofs

import (
	"syscall"

	"github.com/winfsp/cgofuse/fuse"
)

// errnos maps the node layer's errors (syscall values) to cgofuse's error
// numbers, which differ from Go's syscall values on Windows (and, for a
// missing attribute, on macOS: ENOATTR).
var errnos = map[syscall.Errno]int{
	syscall.E2BIG:        fuse.E2BIG,
	syscall.EACCES:       fuse.EACCES,
	syscall.EAGAIN:       fuse.EAGAIN,
	syscall.EBADF:        fuse.EBADF,
	syscall.EBUSY:        fuse.EBUSY,
	syscall.EEXIST:       fuse.EEXIST,
	syscall.EFBIG:        fuse.EFBIG,
	syscall.EINTR:        fuse.EINTR,
	syscall.EINVAL:       fuse.EINVAL,
	syscall.EIO:          fuse.EIO,
	syscall.EISDIR:       fuse.EISDIR,
	syscall.ELOOP:        fuse.ELOOP,
	syscall.ENAMETOOLONG: fuse.ENAMETOOLONG,
	syscall.ENODATA:      fuse.ENOATTR,
	syscall.ENOENT:       fuse.ENOENT,
	syscall.ENOMEM:       fuse.ENOMEM,
	syscall.ENOSPC:       fuse.ENOSPC,
	syscall.ENOSYS:       fuse.ENOSYS,
	syscall.ENOTDIR:      fuse.ENOTDIR,
	syscall.ENOTEMPTY:    fuse.ENOTEMPTY,
	syscall.ENOTSUP:      fuse.ENOTSUP,
	syscall.EPERM:        fuse.EPERM,
	syscall.ERANGE:       fuse.ERANGE,
	syscall.EROFS:        fuse.EROFS,
	syscall.ETIMEDOUT:    fuse.ETIMEDOUT,
	syscall.EXDEV:        fuse.EXDEV,
}
