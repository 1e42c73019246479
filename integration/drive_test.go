package integration

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDriveNewcomerFlow follows the README: sign up, mount, copy files in,
// status, sync, unmount; the files are there after a new mount.
func TestDriveNewcomerFlow(t *testing.T) {
	srv := startDriveServer(t)
	h := srv.newHome(t, "newcomer@example.com").signup()
	h.mount()
	photos := t.TempDir()
	for i := range 5 {
		if err := os.WriteFile(filepath.Join(photos, fmt.Sprintf("img%d.jpg", i)), bytes.Repeat([]byte{byte(i)}, 100_000+i), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	driveRun(t, "", "cp", "-r", photos, h.path("Photos"))
	st := h.cli("status")
	if !strings.Contains(st, "newcomer@example.com") || !strings.Contains(st, h.mnt) || !strings.Contains(st, "cache:") {
		t.Fatalf("status:\n%s", st)
	}
	if out := h.cli("sync", "--wait"); !strings.Contains(out, "All changes committed") {
		t.Fatalf("sync --wait: %s", out)
	}
	if st := h.cli("status"); !strings.Contains(st, " 0 with changes to upload") {
		t.Fatalf("status after sync:\n%s", st)
	}
	h.unmount()
	if _, err := os.Stat(h.path("Photos")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("still mounted after unmount: %v", err)
	}
	// unmount returns once the daemon has let go of the home folder, so a
	// mount right after it starts (make bench's remounts failed without).
	lk, err := os.OpenFile(filepath.Join(h.home, "lock"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(lk.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		t.Fatalf("the home is still locked after unmount returned: %v", err)
	}
	_ = lk.Close()
	h.mount()
	for i := range 5 {
		b, err := os.ReadFile(h.path(fmt.Sprintf("Photos/img%d.jpg", i)))
		if err != nil || len(b) != 100_000+i || b[0] != byte(i) {
			t.Fatalf("img%d after remount: %d bytes, %v", i, len(b), err)
		}
	}
	// A second mount of the same home is refused, not corrupting anything.
	if out, err := h.try("mount", filepath.Join(t.TempDir(), "other")); err == nil || !strings.Contains(out, "another anysync daemon") {
		t.Fatalf("second daemon on one home: %v %s", err, out)
	}
}

// TestDriveSourceTreeTwoDevices extracts part of the Go source tree into the
// mount, then compares it file by file from a second device with a cold
// cache: content, mode, mtime and symlinks.
func TestDriveSourceTreeTwoDevices(t *testing.T) {
	srv := startDriveServer(t)
	a := srv.newHome(t, "tree@example.com").signup()
	a.mount()
	goroot := strings.TrimSpace(driveRun(t, "", "go", "env", "GOROOT"))
	// The whole src tree takes long on a 2-core machine; these parts have
	// thousands of files of every size.
	dirs := []string{"src/net", "src/crypto"}
	if testing.Short() {
		dirs = []string{"src/net/http"}
	}
	ref := t.TempDir()
	tarball := filepath.Join(t.TempDir(), "src.tar")
	driveRun(t, goroot, "tar", append([]string{"-cf", tarball}, dirs...)...)
	driveRun(t, ref, "tar", "-xf", tarball)
	driveRun(t, a.mnt, "tar", "-xf", tarball)
	for _, dir := range []string{ref, a.mnt} {
		if err := os.Symlink("../net", filepath.Join(dir, "src/link-to-net")); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("missing/target", filepath.Join(dir, "src/dangling")); err != nil {
			t.Fatal(err)
		}
	}
	compareTrees(t, ref, a.mnt)
	a.sync()

	b := srv.newHome(t, "tree@example.com").login()
	b.mount()
	compareTrees(t, ref, b.mnt)
}

// compareTrees checks that got holds exactly want's files, directories and
// symlinks, with the same content, mode and modification time.
func compareTrees(t *testing.T, want, got string) {
	t.Helper()
	seen := map[string]bool{}
	err := filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		seen[rel] = true
		wi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		gi, err := os.Lstat(filepath.Join(got, rel))
		if err != nil {
			return fmt.Errorf("%s: %w", rel, err)
		}
		if wi.Mode() != gi.Mode() {
			return fmt.Errorf("%s: mode %v, want %v", rel, gi.Mode(), wi.Mode())
		}
		switch {
		case wi.Mode()&os.ModeSymlink != 0:
			wt, _ := os.Readlink(p)
			gt, err := os.Readlink(filepath.Join(got, rel))
			if err != nil || wt != gt {
				return fmt.Errorf("%s: link %q %v, want %q", rel, gt, err, wt)
			}
		case wi.Mode().IsRegular():
			if !wi.ModTime().Equal(gi.ModTime()) {
				return fmt.Errorf("%s: mtime %v, want %v", rel, gi.ModTime(), wi.ModTime())
			}
			wb, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			gb, err := os.ReadFile(filepath.Join(got, rel))
			if err != nil {
				return fmt.Errorf("%s: %w", rel, err)
			}
			if !bytes.Equal(wb, gb) {
				return fmt.Errorf("%s: content differs", rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(got, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(got, p)
		if !seen[rel] {
			return fmt.Errorf("unexpected %s", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestDriveApplications runs git, sqlite3 and an editor-style save inside
// the mount, and checks the results from a second device.
func TestDriveApplications(t *testing.T) {
	srv := startDriveServer(t)
	a := srv.newHome(t, "apps@example.com").signup()
	a.mount()

	repo := a.path("project")
	if err := os.Mkdir(repo, 0o755); err != nil {
		t.Fatal(err)
	}
	git := func(args ...string) string {
		return driveRun(t, repo, "git", append([]string{"-c", "user.name=T", "-c", "user.email=t@example.com", "-c", "init.defaultBranch=main"}, args...)...)
	}
	git("init", "-q")
	if err := os.WriteFile(filepath.Join(repo, "main.go"), []byte("package main\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git("add", ".")
	git("commit", "-q", "-m", "first")
	if err := os.WriteFile(filepath.Join(repo, "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git("commit", "-q", "-am", "second")
	if st := git("status", "--porcelain"); st != "" {
		t.Fatalf("git status not clean: %q", st)
	}
	git("fsck", "--strict")
	git("gc", "-q")
	git("fsck", "--strict")

	if _, err := exec.LookPath("sqlite3"); err == nil {
		db := a.path("data.db")
		driveRun(t, "", "sqlite3", db, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 20000) INSERT INTO t(v) SELECT hex(randomblob(40)) FROM c;")
		driveRun(t, "", "sqlite3", db, "PRAGMA journal_mode=WAL; UPDATE t SET v = 'x' WHERE id % 3 = 0; DELETE FROM t WHERE id % 7 = 0;")
		if out := driveRun(t, "", "sqlite3", db, "PRAGMA integrity_check; SELECT count(*) FROM t;"); out != "ok\n17143\n" {
			t.Fatalf("sqlite3: %q", out)
		}
	} else if os.Getenv("CI") == "true" {
		t.Fatal("sqlite3 is required in CI")
	}

	// Editor-style save: write a temporary file, fsync, rename over.
	doc := a.path("notes.txt")
	if err := os.WriteFile(doc, []byte("draft 1"), 0o600); err != nil {
		t.Fatal(err)
	}
	tmp := a.path(".notes.txt.swp")
	f, err := os.Create(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("draft 2, saved"); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, doc); err != nil {
		t.Fatal(err)
	}
	a.sync()

	b := srv.newHome(t, "apps@example.com").login()
	b.mount()
	if got, err := os.ReadFile(b.path("notes.txt")); err != nil || string(got) != "draft 2, saved" {
		t.Fatalf("notes.txt on B: %q %v", got, err)
	}
	if _, err := os.Stat(b.path(".notes.txt.swp")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("swap file on B: %v", err)
	}
	driveRun(t, b.path("project"), "git", "fsck", "--strict")
	if log := driveRun(t, b.path("project"), "git", "log", "--format=%s"); log != "second\nfirst\n" {
		t.Fatalf("git log on B: %q", log)
	}
}

// TestDriveRandomReadWrite runs seeded random writes, truncates and reads
// on a file in the mount and on a local file, and compares them, then
// compares the committed file from a second device.
func TestDriveRandomReadWrite(t *testing.T) {
	srv := startDriveServer(t)
	a := srv.newHome(t, "fsx@example.com").signup()
	a.mount()
	ops := 4000
	if testing.Short() {
		ops = 1000
	}
	local := filepath.Join(t.TempDir(), "ref")
	ref, err := os.Create(local)
	if err != nil {
		t.Fatal(err)
	}
	defer ref.Close()
	f, err := os.OpenFile(a.path("fsx.bin"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(2026, 11))
	const maxSize = 8 << 20
	buf, want := make([]byte, 512<<10), make([]byte, 512<<10)
	for i := range ops {
		off := rng.Int64N(maxSize)
		n := rng.IntN(len(buf)) + 1
		switch op := rng.IntN(20); {
		case op < 8:
			for j := range buf[:n] {
				buf[j] = byte(rng.Uint32())
			}
			_, err1 := f.WriteAt(buf[:n], off)
			_, err2 := ref.WriteAt(buf[:n], off)
			if err := errors.Join(err1, err2); err != nil {
				t.Fatal(err)
			}
		case op < 10:
			size := rng.Int64N(maxSize)
			if err := errors.Join(f.Truncate(size), ref.Truncate(size)); err != nil {
				t.Fatal(err)
			}
		case op < 11:
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			if f, err = os.OpenFile(a.path("fsx.bin"), os.O_RDWR, 0); err != nil {
				t.Fatal(err)
			}
		case op < 12:
			// Commit while the file is closed, so later reads come from
			// the committed chunks.
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			a.sync()
			if f, err = os.OpenFile(a.path("fsx.bin"), os.O_RDWR, 0); err != nil {
				t.Fatalf("op %d: reopen after sync: %v\n%s", i, err, a.daemonLog())
			}
		default:
			n1, err1 := f.ReadAt(buf[:n], off)
			n2, err2 := ref.ReadAt(want[:n], off)
			if n1 != n2 || !bytes.Equal(buf[:n1], want[:n2]) || (err1 == nil) != (err2 == nil) {
				t.Fatalf("op %d: read %d at %d: got %d (%v), want %d (%v)", i, n, off, n1, err1, n2, err2)
			}
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	a.sync()
	exp, err := os.ReadFile(local)
	if err != nil {
		t.Fatal(err)
	}
	b := srv.newHome(t, "fsx@example.com").login()
	b.mount()
	got, err := os.ReadFile(b.path("fsx.bin"))
	if err != nil || !bytes.Equal(got, exp) {
		t.Fatalf("second device: %d bytes (%v), want %d, equal=%v", len(got), err, len(exp), bytes.Equal(got, exp))
	}
}

// TestDriveCrashRestart kills the daemon with SIGKILL after fsync and
// after close: a new mount has both files and uploads them; a file being
// written when the daemon died is not committed half-written.
func TestDriveCrashRestart(t *testing.T) {
	srv := startDriveServer(t)
	a := srv.newHome(t, "crash@example.com").signup()
	pid := a.mount()
	synced := bytes.Repeat([]byte("fsynced "), 300_000)
	closed := bytes.Repeat([]byte("closed "), 200_000)
	f, err := os.Create(a.path("synced.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(synced); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(a.path("closed.bin"), closed, 0o644); err != nil {
		t.Fatal(err)
	}
	// Open for writing at the kill: it must never appear half-written.
	open, err := os.Create(a.path("open.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := open.Write([]byte("half")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	driveWait(t, "daemon exit", func() bool { return syscall.Kill(pid, 0) != nil })
	_ = open.Close()

	a.mount()
	for name, want := range map[string][]byte{"synced.bin": synced, "closed.bin": closed} {
		got, err := os.ReadFile(a.path(name))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s after restart: %d bytes, %v", name, len(got), err)
		}
	}
	a.sync()
	b := srv.newHome(t, "crash@example.com").login()
	b.mount()
	for name, want := range map[string][]byte{"synced.bin": synced, "closed.bin": closed} {
		got, err := os.ReadFile(b.path(name))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s on another device: %d bytes, %v", name, len(got), err)
		}
	}
	// open.bin was never closed nor fsynced: its creation is durable, its
	// unflushed content may or may not be; it is never anything else.
	if got, err := os.ReadFile(b.path("open.bin")); err != nil || (string(got) != "half" && string(got) != "") {
		t.Fatalf("open.bin after the crash: %q %v", got, err)
	}
}

// TestDriveCrashWhileUploading kills the daemon during a burst of writes, while
// files closed in the burst upload ahead of its commit: every file closed
// before the kill reads back whole. (Rows once recorded uploads whose blobs
// were still in an unsent pack: those files came back unreadable.)
func TestDriveCrashWhileUploading(t *testing.T) {
	srv := startDriveServer(t)
	a := srv.newHome(t, "burst@example.com").signup()
	pid := a.mount()
	if err := os.MkdirAll(a.path("burst"), 0o755); err != nil {
		t.Fatal(err)
	}
	// Longer than the commit's quiet period, so uploading ahead runs.
	contents := map[string][]byte{}
	for i, end := 0, time.Now().Add(3*time.Second); time.Now().Before(end); i++ {
		name := fmt.Sprintf("burst/f%05d", i)
		b := bytes.Repeat([]byte(fmt.Sprintf("file %d; ", i)), 50+i%700)
		if err := os.WriteFile(a.path(name), b, 0o644); err != nil {
			t.Fatal(err)
		}
		contents[name] = b
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	driveWait(t, "daemon exit", func() bool { return syscall.Kill(pid, 0) != nil })

	a.mount()
	bad := 0
	for name, want := range contents {
		if got, err := os.ReadFile(a.path(name)); err != nil || !bytes.Equal(got, want) {
			if bad++; bad <= 3 {
				t.Errorf("%s after the crash: %d of %d bytes, %v", name, len(got), len(want), err)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d files closed before the crash did not read back", bad, len(contents))
	}
	a.sync()
}

// TestDriveStoreAheadWhileWriting: a large file starts uploading while it
// is still being written (packs reach the server before it closes); a
// write inside the part already uploaded, just before the close, is what
// another device reads.
func TestDriveStoreAheadWhileWriting(t *testing.T) {
	srv := startDriveServer(t)
	a := srv.newHome(t, "ahead@example.com").signup()
	a.mount()
	// Bytes in packs: a commit of the new (empty) entry stores small
	// metadata packs; the file's content is megabytes.
	stored := func() int64 {
		var n int64
		_ = filepath.WalkDir(filepath.Join(srv.data, "packs"), func(_ string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if info, err := d.Info(); err == nil {
					n += info.Size()
				}
			}
			return nil
		})
		return n
	}
	want := seededBytes(42, 80<<20)
	f, err := os.OpenFile(a.path("big.bin"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for off := 0; off < 72<<20; off += 1 << 20 {
		if _, err := f.WriteAt(want[off:off+1<<20], int64(off)); err != nil {
			t.Fatal(err)
		}
	}
	driveWait(t, "content stored while the file is open", func() bool { return stored() >= 16<<20 })

	copy(want[5<<20:], "changed after it was uploaded")
	if _, err := f.WriteAt(want[5<<20:5<<20+64], 5<<20); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(want[72<<20:], 72<<20); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	a.sync()
	if log := a.daemonLog(); strings.Contains(log, "store ahead") {
		t.Fatalf("storing ahead failed:\n%s", log)
	}

	b := srv.newHome(t, "ahead@example.com").login()
	b.mount()
	got, err := os.ReadFile(b.path("big.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("big.bin on another device: %d bytes, differs from what was written (%d bytes)", len(got), len(want))
	}
}

// TestDriveStorageHasNoPlaintext writes a marker in a file name, its
// content and an extended attribute, and checks that nothing the server
// stores contains it.
func TestDriveStorageHasNoPlaintext(t *testing.T) {
	srv := startDriveServer(t)
	a := srv.newHome(t, "secret@example.com").signup()
	a.mount()
	marker := "AnySyncMarker-7f3a9c"
	content := bytes.Repeat([]byte(marker+" is secret. "), 10_000)
	if err := os.MkdirAll(a.path(marker+"-dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := a.path(marker + "-dir/" + marker + ".txt")
	if err := os.WriteFile(p, content, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Setxattr(p, "user."+marker, []byte(marker), 0); err != nil {
		t.Fatal(err)
	}
	a.sync()
	found := 0
	err := filepath.WalkDir(srv.data, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if strings.Contains(path, marker) {
			return fmt.Errorf("a stored file name contains the marker: %s", path)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		found++
		if bytes.Contains(b, []byte(marker)) {
			return fmt.Errorf("%s contains the marker in plaintext", path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if found == 0 {
		t.Fatal("the server stored nothing")
	}
}

// TestDrivePropagation mounts two devices: a change committed on one shows
// up on the other through the server's push, with the other's kernel
// caches invalidated (a file it has read, a directory it has listed).
func TestDrivePropagation(t *testing.T) {
	srv := startDriveServer(t)
	a := srv.newHome(t, "two@example.com").signup()
	a.mount()
	if err := os.MkdirAll(a.path("shared"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(a.path("shared/doc.txt"), []byte("version 1"), 0o644); err != nil {
		t.Fatal(err)
	}
	a.sync()
	b := srv.newHome(t, "two@example.com").login()
	b.mount()
	if got, err := os.ReadFile(b.path("shared/doc.txt")); err != nil || string(got) != "version 1" {
		t.Fatalf("B reads %q %v", got, err)
	}
	if ents, err := os.ReadDir(b.path("shared")); err != nil || len(ents) != 1 {
		t.Fatalf("B lists %v %v", ents, err)
	}

	if err := os.WriteFile(a.path("shared/doc.txt"), []byte("version 2, longer"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(a.path("shared/new.txt"), []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	a.sync()
	driveWait(t, "B to see A's edit", func() bool {
		got, err := os.ReadFile(b.path("shared/doc.txt"))
		return err == nil && string(got) == "version 2, longer"
	})
	driveWait(t, "B to list A's new file", func() bool {
		ents, err := os.ReadDir(b.path("shared"))
		return err == nil && len(ents) == 2
	})
	if err := os.Remove(a.path("shared/new.txt")); err != nil {
		t.Fatal(err)
	}
	a.sync()
	driveWait(t, "B to lose the deleted file", func() bool {
		_, err := os.Stat(b.path("shared/new.txt"))
		return errors.Is(err, os.ErrNotExist)
	})
}
