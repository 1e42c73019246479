package rclonestore

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"unsafe"

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
