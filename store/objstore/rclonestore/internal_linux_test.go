package rclonestore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"github.com/anysync/anysync/store/internal/directio"
	"github.com/anysync/anysync/store/objstore"
	"github.com/anysync/anysync/store/objstore/objstoretest"
	"golang.org/x/sys/unix"
)

// residentPages counts the pages of a file that are in the page cache.
func residentPages(t *testing.T, path string) (resident, total int) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(m)
	vec := make([]byte, (len(m)+os.Getpagesize()-1)/os.Getpagesize())
	if _, _, errno := unix.Syscall(unix.SYS_MINCORE, uintptr(unsafe.Pointer(&m[0])), uintptr(len(m)), uintptr(unsafe.Pointer(&vec[0]))); errno != 0 {
		t.Fatal(errno)
	}
	for _, v := range vec {
		if v&1 != 0 {
			resident++
		}
	}
	return resident, len(vec)
}

// A stored pack leaves the page cache once it is durable.
func TestPutDropsPageCache(t *testing.T) {
	dir := t.TempDir()
	var fs unix.Statfs_t
	if err := unix.Statfs(dir, &fs); err != nil {
		t.Fatal(err)
	}
	if fs.Type == unix.TMPFS_MAGIC {
		t.Skip("tmpfs keeps its pages: they are the file")
	}
	s, err := New(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	data := objstoretest.Data(10, 4<<20)
	for name, r := range map[string]io.Reader{
		"pack1": bytes.NewReader(data),
		"pack2": objstoretest.NewChunkReader(data, []int{1 << 20}, nil),
	} {
		if err := s.Put(context.Background(), name, r, int64(len(data))); err != nil {
			t.Fatal(err)
		}
		resident, total := residentPages(t, filepath.Join(dir, filepath.FromSlash(shardPath(name))))
		if total == 0 || resident > total/4 {
			t.Errorf("%s: %d of %d pages still cached", name, resident, total)
		}
		if got, err := objstoretest.ReadRange(s, name, 0, -1); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%s: read back %d bytes, %v", name, len(got), err)
		}
	}
}

// directIOSupported reports whether dir's file system takes O_DIRECT.
func directIOSupported(t *testing.T, dir string) bool {
	t.Helper()
	f, err := directio.Open(filepath.Join(dir, "probe"), os.O_WRONLY|os.O_CREATE, 0o600)
	if err != nil {
		return false
	}
	f.Close()
	return os.Remove(filepath.Join(dir, "probe")) == nil
}

// writeDirect stores exactly what it reads, whole blocks, a last partial
// block and nothing at all alike, and fails on a stream of the wrong length
// without leaving a file behind.
func TestWriteDirect(t *testing.T) {
	dir := t.TempDir()
	if !directIOSupported(t, dir) {
		t.Skip("the temporary folder's file system refuses O_DIRECT")
	}
	ctx := context.Background()
	for _, size := range []int{0, 1, directio.Align, directio.Align + 1, directBuf, 2*directBuf + 12345} {
		data := objstoretest.Data(uint64(size), size)
		path := filepath.Join(dir, fmt.Sprintf("ok-%d", size))
		src := objstoretest.NewChunkReader(data, []int{1 << 20, 100}, nil)
		if err := writeDirect(path, objstore.NewExactReader(ctx, src, int64(size)), int64(size)); err != nil {
			t.Fatalf("%d bytes: %v", size, err)
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("%d bytes: read back %d bytes, %v", size, len(got), err)
		}
	}
	data := objstoretest.Data(7, directBuf+100)
	for name, tc := range map[string]struct {
		src  []byte
		size int64
	}{
		"short": {data[:len(data)-1], int64(len(data))},
		"long":  {data, int64(len(data) - 1)},
		"empty": {data[:1], 0},
	} {
		path := filepath.Join(dir, name)
		src := objstoretest.NewChunkReader(tc.src, []int{1 << 20}, nil)
		err := writeDirect(path, objstore.NewExactReader(ctx, src, tc.size), tc.size)
		if !errors.Is(err, objstore.ErrSizeMismatch) {
			t.Errorf("%s: %v, want a size mismatch", name, err)
		}
		if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: the file is left behind (%v)", name, err)
		}
	}
	if err := writeDirect(filepath.Join(dir, "ok-1"), bytes.NewReader(nil), 0); err == nil {
		t.Error("writeDirect replaced an existing file")
	}
}

// A Put to a local folder whose file system takes O_DIRECT writes around
// the page cache, into a file only the server's user can read.
func TestLocalPutWritesDirect(t *testing.T) {
	dir := t.TempDir()
	if !directIOSupported(t, dir) {
		t.Skip("the temporary folder's file system refuses O_DIRECT")
	}
	s, err := New(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	data := objstoretest.Data(3, 3<<20+5)
	if err := s.Put(context.Background(), "pack", objstoretest.NewChunkReader(data, []int{1 << 20}, nil), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if n := s.directPuts.Load(); n != 1 {
		t.Fatalf("%d direct puts, want 1", n)
	}
	st, err := os.Stat(filepath.Join(dir, filepath.FromSlash(shardPath("pack"))))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("stored with mode %v, want 0600", st.Mode().Perm())
	}
	if got, err := objstoretest.ReadRange(s, "pack", 0, -1); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, %v", len(got), err)
	}
}

// Ranges of a local folder's objects are read with direct I/O where the
// file system allows it: at any offset and length, to the last byte; a
// file cut short behind the store's back is an error, not short data.
func TestLocalGetRangeReadsDirect(t *testing.T) {
	dir := t.TempDir()
	if !directIOSupported(t, dir) {
		t.Skip("the temporary folder's file system refuses O_DIRECT")
	}
	ctx := context.Background()
	s, err := New(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	data := objstoretest.Data(5, 3<<20+5)
	objstoretest.MustPut(t, s, "pack", data)
	size := int64(len(data))
	for _, r := range [][2]int64{{0, size}, {1, 100}, {4095, 4097}, {size - 1, 1}, {size - 10000, 10000}, {12345, 2 << 20}} {
		got, err := objstoretest.ReadRange(s, "pack", r[0], r[1])
		if err != nil || !bytes.Equal(got, data[r[0]:r[0]+r[1]]) {
			t.Fatalf("range %d+%d: %d bytes, %v", r[0], r[1], len(got), err)
		}
	}
	if n := s.directReads.Load(); n != 6 {
		t.Errorf("%d direct reads, want 6", n)
	}
	if err := os.Truncate(filepath.Join(dir, filepath.FromSlash(shardPath("pack"))), size-100); err != nil {
		t.Fatal(err)
	}
	if got, err := objstoretest.ReadRange(s, "pack", size-200, 200); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("range past the end of a cut file: %d bytes, %v", len(got), err)
	}
}
