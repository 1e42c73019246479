package node

import (
	"os"

	"golang.org/x/sys/unix"
)

// startWriteback asks the kernel to start writing f's dirty pages to disk
// and returns without waiting for them. Control holds a reference on the
// descriptor, so a concurrent Close cannot hand its number to another file
// meanwhile. Errors are ignored: this only spreads out work an fsync would
// do anyway.
func startWriteback(f *os.File) {
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	_ = rc.Control(func(fd uintptr) {
		_ = unix.SyncFileRange(int(fd), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	})
}
