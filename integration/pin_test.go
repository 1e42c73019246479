package integration

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

var stateRow = regexp.MustCompile(`(?m)^(placeholder|partial|cached|pinned|dirty|uploading)\s+(\d+)\s`)

func pathState(t *testing.T, h *driveHome, p string) (state string, files string) {
	t.Helper()
	out := h.cli("status", p)
	m := stateRow.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("status %s:\n%s", p, out)
	}
	return m[1], m[2]
}

// TestPinUnpin: a pinned folder is downloaded, stays complete when another
// device adds a file to it, survives a small cache being flooded, and reads
// with the server gone; unpin makes it evictable again.
func TestPinUnpin(t *testing.T) {
	srv := startDriveServer(t)
	a := srv.newHome(t, "pin@example.com").signup()
	a.mount()
	rng := rand.New(rand.NewPCG(3, 3))
	files := map[string][]byte{}
	write := func(h *driveHome, name string, n int) {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		if err := os.MkdirAll(h.path("Album"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(h.path("Album/"+name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		files[name] = b
	}
	for i := range 3 {
		write(a, fmt.Sprintf("p%d.raw", i), 700<<10)
	}
	a.sync()

	b := srv.newHome(t, "pin@example.com").login()
	b.cli("mount", b.mnt, "--cache-size", "3") // 3 MiB of disk cache
	if st, n := pathState(t, b, "/Album"); st != "placeholder" || n != "3" {
		t.Fatalf("a new device's album is %s with %s files, want placeholder with 3", st, n)
	}
	b.cli("pin", b.path("Album"))
	if st, _ := pathState(t, b, b.path("Album")); st != "pinned" {
		t.Fatalf("after pin: %s", st)
	}

	// A file added elsewhere to the pinned folder is pinned here too.
	write(a, "p3.raw", 700<<10)
	a.sync()
	driveWait(t, "the new file pinned on the second device", func() bool {
		st, n := pathState(t, b, "/Album")
		return st == "pinned" && n == "4"
	})

	// Flood the small cache with another file: pinned data stays.
	big := make([]byte, 5<<20)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	if err := os.WriteFile(a.path("flood.bin"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	a.sync()
	driveWait(t, "flood.bin on the second device", func() bool {
		fi, err := os.Stat(b.path("flood.bin"))
		return err == nil && fi.Size() == int64(len(big))
	})
	if got, err := os.ReadFile(b.path("flood.bin")); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("flood.bin: %v", err)
	}

	// Offline: the pinned album reads from disk.
	_ = srv.cmd.Process.Kill()
	_ = srv.cmd.Wait()
	b.unmount()
	b.cli("mount", b.mnt, "--cache-size", "3")
	for name, want := range files {
		if got, err := os.ReadFile(filepath.Join(b.mnt, "Album", name)); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("offline read of pinned %s: %v", name, err)
		}
	}
	b.cli("unpin", "/Album")
	if st, _ := pathState(t, b, "/Album"); st == "pinned" || !strings.Contains("cached partial", st) {
		t.Fatalf("after unpin: %s", st)
	}
}
