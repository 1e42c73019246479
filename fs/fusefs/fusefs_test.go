//go:build linux

package fusefs

import (
	"bytes"
	"errors"
	"log"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/anysync/anysync/fs/fstest"
	"github.com/anysync/anysync/fs/node"
)

// TestFS runs the front ends' shared suite through go-fuse.
func TestFS(t *testing.T) {
	fstest.Run(t, func(dir string, fsys *node.FS) (func() error, error) {
		opts := DefaultOptions()
		opts.Logger = log.New(os.Stderr, "", 0)
		m, err := New(dir, fsys, opts)
		if err != nil {
			return nil, err
		}
		return m.Unmount, nil
	})
}

// TestFreshWritesSkipPageCache checks that a file written through a
// handle that writes it afresh leaves no pages in the mount's page cache
// (its data is in the staging file), and that one written in place
// through a read-write handle does.
func TestFreshWritesSkipPageCache(t *testing.T) {
	var mnt *Mount
	dir := fstest.MountDir(t, func(dir string, fsys *node.FS) (func() error, error) {
		m, err := New(dir, fsys, DefaultOptions())
		mnt = m
		if err != nil {
			return nil, err
		}
		return m.Unmount, nil
	})
	if !mnt.m.directWrites.Load() {
		t.Skip("this kernel cannot map files opened for direct I/O (DIRECT_IO_ALLOW_MMAP, Linux 6.6): writes go through the page cache")
	}
	data := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	fresh, created, inPlace := filepath.Join(dir, "fresh"), filepath.Join(dir, "created"), filepath.Join(dir, "in-place")
	writeWith(t, fresh, os.O_WRONLY|os.O_CREATE, data)
	writeWith(t, created, os.O_RDWR|os.O_CREATE|os.O_TRUNC, data) // as os.Create
	writeWith(t, inPlace, os.O_WRONLY|os.O_CREATE, nil)
	writeWith(t, inPlace, os.O_RDWR, data)
	for _, p := range []string{fresh, created} {
		if n := residentPages(t, p, len(data)); n != 0 {
			t.Errorf("%d pages of %s, written afresh, are in the page cache, want none", n, filepath.Base(p))
		}
	}
	if n := residentPages(t, inPlace, len(data)); n == 0 {
		t.Error("no page of a file written in place is in the page cache")
	}
}

// writeWith writes data to path through a handle opened with flag.
func writeWith(t *testing.T, path string, flag int, data []byte) {
	t.Helper()
	f, err := os.OpenFile(path, flag, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	_, err = f.Write(data)
	if err := errors.Join(err, f.Close()); err != nil {
		t.Fatal(err)
	}
}

// residentPages counts the pages of path's first size bytes that are in
// the page cache (mincore(2) of a mapping, which faults nothing in).
func residentPages(t *testing.T, path string, size int) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mem, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = unix.Munmap(mem) }()
	vec := make([]byte, (size+os.Getpagesize()-1)/os.Getpagesize())
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&mem[0])), uintptr(len(mem)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	n := 0
	for _, v := range vec {
		n += int(v & 1)
	}
	return n
}
