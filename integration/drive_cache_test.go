package integration

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// TestDriveDiskCacheServesOffline: chunks a device has read stay in its
// disk cache across restarts, so they read back with the server gone, and
// the cache holds only sealed bytes.
func TestDriveDiskCacheServesOffline(t *testing.T) {
	srv := startDriveServer(t)
	writer := srv.newHome(t, "cache@example.com").signup()
	writer.mount()
	rng := rand.New(rand.NewPCG(7, 7))
	data := make([]byte, 3<<20+12345)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	marker := []byte("ANYSYNC-CACHE-MARKER-5b1d")
	copy(data[1000:], marker)
	if err := os.WriteFile(writer.path("big.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	writer.sync()
	writer.unmount()

	reader := srv.newHome(t, "cache@example.com").login()
	reader.mount()
	if got, err := os.ReadFile(reader.path("big.bin")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("cold read on the second device: %d bytes, %v", len(got), err)
	}
	reader.unmount()

	// Every cached blob is sealed: the marker appears nowhere in the cache.
	cached := 0
	_ = filepath.Walk(filepath.Join(reader.home, "cache"), func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return nil
		}
		b, _ := os.ReadFile(p)
		if bytes.Contains(b, marker) {
			t.Errorf("plaintext in cache file %s", p)
		}
		if fi.Size() > 1<<10 {
			cached++
		}
		return nil
	})
	if cached == 0 {
		t.Fatal("nothing in the disk cache after reading a 3 MiB file")
	}

	// The server goes away; the restarted mount still serves the file
	// from its disk cache.
	_ = srv.cmd.Process.Kill()
	_ = srv.cmd.Wait()
	reader.mount()
	if got, err := os.ReadFile(reader.path("big.bin")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("offline read from the disk cache: %d bytes, %v", len(got), err)
	}
}
