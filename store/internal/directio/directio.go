// Package directio is what the object store and the chunk cache share to
// move data between memory and disk with O_DIRECT: the alignment, aligned
// buffers, and an open that says plainly when a file system refuses it.
// Why they bypass the page cache is in docs/protocol.md and docs/cache.md.
package directio

import (
	"errors"
	"unsafe"
)

// Align is the alignment O_DIRECT asks of buffers, file offsets and
// lengths: the page size covers every logical block size in use.
const Align = 4096

// ErrUnsupported is returned by Open where the file system (or the OS)
// does not do direct I/O; callers take the page cache instead.
var ErrUnsupported = errors.New("direct I/O not supported")

// Buf returns a slice of n bytes whose first byte is Align-aligned.
func Buf(n int) []byte {
	b := make([]byte, n+Align)
	off := (Align - int(uintptr(unsafe.Pointer(&b[0]))&(Align-1))) & (Align - 1)
	return b[off : off+n : off+n]
}

// Up rounds n up to a multiple of Align.
func Up(n int64) int64 { return (n + Align - 1) &^ (Align - 1) }

// Down rounds n down to a multiple of Align.
func Down(n int64) int64 { return n &^ (Align - 1) }
