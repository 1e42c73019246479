package integration

import (
	"bytes"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDriveMmap: a file written through a shared writable mapping reaches
// the cloud, and a placeholder on another device reads through a mapping
// (page faults fetch its chunks).
func TestDriveMmap(t *testing.T) {
	srv := startDriveServer(t)
	a := srv.newHome(t, "mmap@example.com").signup()
	a.mount()
	want := seededBytes(9, 3<<20+123)

	f, err := os.OpenFile(a.path("mapped.bin"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(int64(len(want))); err != nil {
		t.Fatal(err)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, len(want), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	copy(m, want)
	if err := unix.Msync(m, unix.MS_SYNC); err != nil {
		t.Fatal(err)
	}
	if err := unix.Munmap(m); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(a.path("mapped.bin")); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read back after writing through a mapping: %v", err)
	}
	a.sync()

	b := srv.newHome(t, "mmap@example.com").login()
	b.mount()
	g, err := os.Open(b.path("mapped.bin"))
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	r, err := unix.Mmap(int(g.Fd()), 0, len(want), unix.PROT_READ, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = unix.Munmap(r) }()
	// The tail first: faults at any offset fetch just what they need.
	if !bytes.Equal(r[len(r)-4096:], want[len(want)-4096:]) || !bytes.Equal(r, want) {
		t.Fatal("mapped placeholder differs on the second device")
	}
}
