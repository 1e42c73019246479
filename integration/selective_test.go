package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

func seededBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

type statusJSON struct {
	CacheBytes  int64  `json:"cache_bytes"`
	PinnedBytes int64  `json:"pinned_bytes"`
	Warning     string `json:"warning"`
}

// TestSelectiveSync: a folder excluded on one device disappears there and
// is never downloaded there, while another device keeps writing in it; the
// excluding device's own commits leave it as the cloud has it; including
// it again brings everything back.
func TestSelectiveSync(t *testing.T) {
	srv := startDriveServer(t)
	a := srv.newHome(t, "selective@example.com").signup()
	a.mount()
	photo := seededBytes(1, 3<<20)
	for _, d := range []string{"Photos/2026", "Docs"} {
		if err := os.MkdirAll(a.path(d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(a.path("Photos/2026/big.raw"), photo, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(a.path("Docs/plan.txt"), []byte("plan"), 0o644); err != nil {
		t.Fatal(err)
	}
	a.sync()

	b := srv.newHome(t, "selective@example.com").login()
	b.mount()
	if _, err := os.Stat(b.path("Photos/2026/big.raw")); err != nil {
		t.Fatal(err)
	}
	out := b.cli("selective", "exclude", b.path("Photos"))
	if !strings.Contains(out, "/Photos") {
		t.Fatalf("selective exclude printed:\n%s", out)
	}
	if _, err := os.Stat(b.path("Photos")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("excluded folder still visible: %v", err)
	}
	root, err := os.ReadDir(b.mnt)
	if err != nil {
		t.Fatal(err)
	}
	if len(root) != 1 || root[0].Name() != "Docs" {
		t.Fatalf("root on the excluding device: %v", root)
	}
	if err := os.Mkdir(b.path("Photos"), 0o755); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("mkdir over an excluded folder: %v, want EEXIST", err)
	}
	if out := b.cli("selective", "list"); !strings.Contains(out, "/Photos") {
		t.Fatalf("selective list:\n%s", out)
	}

	// The other device keeps writing in the excluded folder while this one
	// commits its own changes.
	more := seededBytes(2, 2<<20)
	if err := os.WriteFile(a.path("Photos/2026/more.raw"), more, 0o644); err != nil {
		t.Fatal(err)
	}
	a.sync()
	if err := os.WriteFile(b.path("Docs/from b.txt"), []byte("b"), 0o644); err != nil {
		t.Fatal(err)
	}
	b.sync()
	driveWait(t, "b's doc on a", func() bool {
		_, err := os.Stat(a.path("Docs/from b.txt"))
		return err == nil
	})
	for name, want := range map[string][]byte{"big.raw": photo, "more.raw": more} {
		if got, err := os.ReadFile(a.path("Photos/2026/" + name)); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s on the other device after b's commit: %v", name, err)
		}
	}
	// Pinning the whole drive here does not download the excluded folder.
	b.cli("pin", "/")
	var st statusJSON
	if err := json.Unmarshal([]byte(b.cli("status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if st.PinnedBytes >= int64(len(photo)) || st.CacheBytes >= int64(len(photo)) {
		t.Fatalf("excluded data was downloaded: %d bytes pinned, %d cached", st.PinnedBytes, st.CacheBytes)
	}

	b.cli("selective", "include", "/Photos")
	if got, err := os.ReadFile(b.path("Photos/2026/more.raw")); err != nil || !bytes.Equal(got, more) {
		t.Fatalf("more.raw after include: %v", err)
	}
	if out := b.cli("selective", "list"); !strings.Contains(out, "No folder is excluded") {
		t.Fatalf("selective list after include:\n%s", out)
	}
	if _, err := b.try("selective", "exclude", "/Docs/plan.txt"); err == nil {
		t.Fatal("excluding a file succeeded")
	}
}

// TestStateAndPinXattrs: user.anysync.state and user.anysync.pin through
// the kernel's xattr calls, and the warning when pinned data outgrows the
// cache limit.
func TestStateAndPinXattrs(t *testing.T) {
	srv := startDriveServer(t)
	a := srv.newHome(t, "xattr@example.com").signup()
	a.mount()
	data := seededBytes(3, 4<<20)
	if err := os.WriteFile(a.path("big.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	a.sync()

	b := srv.newHome(t, "xattr@example.com").login()
	b.cli("mount", b.mnt, "--cache-size", "2") // 2 MiB: the file cannot fit
	getx := func(name string) string {
		buf := make([]byte, 64)
		n, err := unix.Getxattr(b.path("big.bin"), name, buf)
		if err != nil {
			t.Fatalf("getxattr %s: %v", name, err)
		}
		return string(buf[:n])
	}
	if s := getx("user.anysync.state"); s != "placeholder" {
		t.Fatalf("state of a new device's file: %q", s)
	}
	if p := getx("user.anysync.pin"); p != "0" {
		t.Fatalf("pin of an unpinned file: %q", p)
	}
	// Not listed: copying files out with their attributes must not copy
	// these.
	if buf := make([]byte, 256); true {
		n, err := unix.Listxattr(b.path("big.bin"), buf)
		if err != nil || bytes.Contains(buf[:n], []byte("anysync")) {
			t.Fatalf("listxattr: %q %v", buf[:n], err)
		}
	}
	if err := unix.Setxattr(b.path("big.bin"), "user.anysync.state", []byte("cached"), 0); !errors.Is(err, syscall.EPERM) {
		t.Fatalf("setting the state: %v, want EPERM", err)
	}
	if err := unix.Setxattr(b.path("big.bin"), "user.anysync.pin", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	if p := getx("user.anysync.pin"); p != "1" {
		t.Fatalf("pin after setxattr: %q", p)
	}
	driveWait(t, "the file pinned by xattr", func() bool { return getx("user.anysync.state") == "pinned" })
	var st statusJSON
	if err := json.Unmarshal([]byte(b.cli("status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(st.Warning, "cache limit") {
		t.Fatalf("no warning with %d bytes pinned in a 2 MiB cache: %+v", st.PinnedBytes, st)
	}
	if out := b.cli("status"); !strings.Contains(out, "warning:") {
		t.Fatalf("status shows no warning:\n%s", out)
	}
	if got, err := os.ReadFile(b.path("big.bin")); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read pinned file: %v", err)
	}

	if err := unix.Removexattr(b.path("big.bin"), "user.anysync.pin"); err != nil {
		t.Fatal(err)
	}
	if p := getx("user.anysync.pin"); p != "0" {
		t.Fatalf("pin after removexattr: %q", p)
	}
	driveWait(t, "the warning gone after unpin", func() bool {
		var st statusJSON
		return json.Unmarshal([]byte(b.cli("status", "--json")), &st) == nil && st.Warning == ""
	})

	// A file being written is dirty until committed.
	if err := os.WriteFile(b.path("new.txt"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	n, err := unix.Getxattr(b.path("new.txt"), "user.anysync.state", buf)
	if err != nil || !strings.Contains("dirty uploading cached", string(buf[:n])) {
		t.Fatalf("state of a new file: %q %v", buf[:n], err)
	}
	b.sync()
	if n, err := unix.Getxattr(b.path("new.txt"), "user.anysync.state", buf); err != nil || string(buf[:n]) != "cached" {
		t.Fatalf("state after sync: %q %v", buf[:n], err)
	}
}

// TestOfflineUncachedRead: with the server gone, reading data this device
// never downloaded fails with EIO (after a bounded wait), while listing
// and cached data keep working.
func TestOfflineUncachedRead(t *testing.T) {
	srv := startDriveServer(t)
	a := srv.newHome(t, "eio@example.com").signup()
	a.mount()
	b := srv.newHome(t, "eio@example.com").login()
	b.mount()
	if err := os.WriteFile(b.path("remote.bin"), seededBytes(4, 1<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	b.sync()
	driveWait(t, "remote.bin on a", func() bool {
		_, err := os.Stat(a.path("remote.bin"))
		return err == nil
	})
	_ = srv.cmd.Process.Kill()
	_ = srv.cmd.Wait()
	if _, err := os.ReadFile(a.path("remote.bin")); !errors.Is(err, syscall.EIO) {
		t.Fatalf("offline read of an uncached file: %v, want EIO", err)
	}
	if fi, err := os.Stat(a.path("remote.bin")); err != nil || fi.Size() != 1<<20 {
		t.Fatalf("offline stat: %v", err)
	}
}
