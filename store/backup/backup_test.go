//go:build unix

package backup

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/store/tree"
)

// makeFixture builds a folder with every kind of entry the format holds.
func makeFixture(t *testing.T, dir string) {
	t.Helper()
	writeFile(t, filepath.Join(dir, "empty"), nil, 0o644)
	writeFile(t, filepath.Join(dir, "small.txt"), []byte("hello, backup\n"), 0o640)
	writeFile(t, filepath.Join(dir, "exactly-min"), randomBytes(smallChunks.Min, 1), 0o600)
	writeFile(t, filepath.Join(dir, "big.bin"), randomBytes(700<<10, 2), 0o755)
	writeFile(t, filepath.Join(dir, "sub", "deeper", "file.go"), []byte(strings.Repeat("package x\n", 5000)), 0o644)
	writeFile(t, filepath.Join(dir, "sub", "setgid"), []byte("x"), 0o2755)
	writeFile(t, filepath.Join(dir, "same-a"), randomBytes(100<<10, 3), 0o644)
	writeFile(t, filepath.Join(dir, "same-b"), randomBytes(100<<10, 3), 0o644)
	if err := os.MkdirAll(filepath.Join(dir, "emptydir"), 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "ro"), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "ro", "inside"), []byte("in a read-only folder"), 0o444)
	if err := os.Chmod(filepath.Join(dir, "ro"), 0o555); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("sub/deeper/file.go", filepath.Join(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/nonexistent/target", filepath.Join(dir, "sub", "dangling")); err != nil {
		t.Fatal(err)
	}
	if xattrsSupported(t, dir) {
		for p, v := range map[string]string{"small.txt": "text", "sub": "a folder", "big.bin": strings.Repeat("v", 200)} {
			if err := unix.Setxattr(filepath.Join(dir, p), "user.test", []byte(v), 0); err != nil {
				t.Fatal(err)
			}
		}
		// The drive's state attributes are not part of a file.
		if err := unix.Setxattr(filepath.Join(dir, "small.txt"), "user.anysync.state", []byte("cached"), 0); err != nil {
			t.Fatal(err)
		}
	}
	// Times in the past, with nanoseconds, last (children change folder times).
	at := time.Date(2021, 3, 4, 5, 6, 7, 123456789, time.UTC)
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil || p == dir {
			return err
		}
		at = at.Add(time.Minute)
		ts := []unix.Timespec{unix.NsecToTimespec(at.UnixNano()), unix.NsecToTimespec(at.UnixNano())}
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	})
	if err != nil {
		t.Fatal(err)
	}
	settle()
}

func TestRoundTrip(t *testing.T) {
	w := newWorld(t)
	src := t.TempDir()
	makeFixture(t, src)
	want := snapshot(t, src)

	s := w.mustBackup(t, w.account(), src, nil)
	if !s.Committed || s.Seq != 1 {
		t.Fatalf("summary %+v: want a first commit", s)
	}
	if s.FilesNew != 9 || s.FilesChanged != 0 || s.FilesUnchanged != 0 || s.Symlinks != 2 {
		t.Errorf("summary %+v: want 9 new files, 2 symlinks", s)
	}
	if s.BytesUploaded == 0 || s.BlobsUploaded == 0 {
		t.Errorf("summary %+v: nothing uploaded", s)
	}

	// A fresh device sees only what the commit carried to the server.
	dst, rs := w.restore(t, "/Backups/test/data", 0)
	compareTrees(t, want, snapshot(t, dst))
	if rs.Files != 9 || rs.Symlinks != 2 {
		t.Errorf("restore summary %+v", rs)
	}

	// A single file restores into the target under its name.
	dst2, _ := w.restore(t, "/Backups/test/data/sub/deeper/file.go", 0)
	got, err := os.ReadFile(filepath.Join(dst2, "file.go"))
	if err != nil || string(got) != strings.Repeat("package x\n", 5000) {
		t.Fatalf("single file restore: %v", err)
	}
}

func TestRestoreRefusesSymlinkEscape(t *testing.T) {
	w := newWorld(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "sub", "secret"), []byte("data"), 0o644)
	w.mustBackup(t, w.account(), src, nil)

	outside := t.TempDir()
	dst := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dst, "sub")); err != nil {
		t.Fatal(err)
	}
	_, err := Restore(context.Background(), RestoreOptions{Account: w.account(), CloudPath: "/Backups/test/data", Target: dst})
	if !errors.Is(err, ErrIncomplete) {
		t.Fatalf("restore through a planted symlink: %v, want ErrIncomplete", err)
	}
	var rs *RestoreSummary
	rs, _ = Restore(context.Background(), RestoreOptions{Account: w.account(), CloudPath: "/Backups/test/data", Target: dst})
	if len(rs.Errors) != 1 || !errors.Is(rs.Errors[0].Err, ErrUnsafePath) {
		t.Fatalf("errors %v: want one ErrUnsafePath", rs.Errors)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 0 {
		t.Fatalf("restore wrote outside the target: %v", ents)
	}
}

func TestIncrementalUploadsOnlyNewChunks(t *testing.T) {
	w := newWorld(t)
	src := t.TempDir()
	makeFixture(t, src)
	acct := w.account()
	first := w.mustBackup(t, acct, src, nil)
	afterFirst := w.objs.put.Load()

	// No change: nothing read, nothing uploaded, no version.
	second := w.mustBackup(t, acct, src, nil)
	if second.FilesUnchanged != 9 || second.BytesRead != 0 || second.Committed {
		t.Fatalf("no-change run %+v: want 9 unchanged, nothing read, no commit", second)
	}
	if got := w.objs.put.Load() - afterFirst; got != 0 {
		t.Fatalf("no-change run uploaded %d bytes", got)
	}
	if second.Seq != first.Seq {
		t.Fatalf("head moved from %d to %d without a change", first.Seq, second.Seq)
	}

	// Append to the big file: its early chunks are already stored.
	big := filepath.Join(src, "big.bin")
	f, err := os.OpenFile(big, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(randomBytes(1000, 9)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	settle()
	before := w.objs.put.Load()
	third := w.mustBackup(t, acct, src, nil)
	uploaded := w.objs.put.Load() - before
	if third.FilesChanged != 1 || third.FilesUnchanged != 8 || !third.Committed {
		t.Fatalf("one-file run %+v: want 1 changed, 8 unchanged, a commit", third)
	}
	if third.BytesRead != 700<<10+1000 {
		t.Errorf("read %d bytes, want only the changed file (%d)", third.BytesRead, 700<<10+1000)
	}
	// The new tail chunk (at most Max) plus trees, versions and pack
	// headers; far less than the file.
	if limit := int64(smallChunks.Max + 32<<10); uploaded > limit || uploaded == 0 {
		t.Errorf("uploaded %d bytes for a 1000-byte append, want 0 < n <= %d", uploaded, limit)
	}
	dst, _ := w.restore(t, "/Backups/test/data", 0)
	compareTrees(t, snapshot(t, src), snapshot(t, dst))

	// A second device with an empty cache reads everything but uploads
	// only metadata: dedup holds across devices.
	before = w.objs.put.Load()
	w.cache = t.TempDir()
	fourth := w.mustBackup(t, w.account(), src, nil)
	if fourth.FilesChanged != 0 || fourth.FilesNew != 9 || fourth.Committed {
		t.Errorf("fresh-cache run %+v: want 9 new files and no commit (same tree)", fourth)
	}
	if got := w.objs.put.Load() - before; got > 32<<10 {
		t.Errorf("fresh-cache run uploaded %d bytes of file data", got)
	}
}

func TestChangedMetadataIsNoticed(t *testing.T) {
	w := newWorld(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "a"), []byte("same content"), 0o644)
	settle()
	acct := w.account()
	w.mustBackup(t, acct, src, nil)
	if err := os.Chmod(filepath.Join(src, "a"), 0o600); err != nil {
		t.Fatal(err)
	}
	settle()
	s := w.mustBackup(t, acct, src, nil)
	if !s.Committed || s.FilesChanged != 1 {
		t.Fatalf("chmod run %+v: want one changed file and a commit", s)
	}
	dst, _ := w.restore(t, "/Backups/test/data", 0)
	if fi, err := os.Stat(filepath.Join(dst, "a")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("restored mode %v, %v; want 0600", fi.Mode(), err)
	}
}

// growOnce appends to a file the first time it is read, like a log being
// written during the backup.
func TestFileGrowingDuringBackup(t *testing.T) {
	w := newWorld(t)
	src := t.TempDir()
	grow := filepath.Join(src, "grow.log")
	always := filepath.Join(src, "always.log")
	writeFile(t, grow, randomBytes(20<<10, 5), 0o644)
	writeFile(t, always, randomBytes(20<<10, 6), 0o644)
	writeFile(t, filepath.Join(src, "calm"), []byte("calm"), 0o644)
	settle()
	var grew, reads atomic.Int32
	hook := func(rel string, f io.Reader) io.Reader {
		switch rel {
		case "grow.log":
			if grew.Add(1) == 1 {
				return &appendOnRead{r: f, path: grow}
			}
		case "always.log":
			reads.Add(1)
			return &appendOnRead{r: f, path: always}
		}
		return f
	}
	s, err := w.backup(t, w.account(), src, func(o *Options) { o.wrapReader = hook })
	if !errors.Is(err, ErrIncomplete) {
		t.Fatalf("backup: %v, want ErrIncomplete for the file that never settles", err)
	}
	if len(s.Errors) != 1 || s.Errors[0].Path != "always.log" || !errors.Is(s.Errors[0].Err, ErrFileChanged) {
		t.Fatalf("errors %v: want always.log changing", s.Errors)
	}
	if reads.Load() != maxReadAttempts {
		t.Errorf("always.log read %d times, want %d", reads.Load(), maxReadAttempts)
	}
	if !s.Committed {
		t.Fatal("the rest of the backup was not committed")
	}
	dst, _ := w.restore(t, "/Backups/test/data", 0)
	want, _ := os.ReadFile(grow)
	got, err := os.ReadFile(filepath.Join(dst, "grow.log"))
	if err != nil || string(got) != string(want) || len(want) != 20<<10+100 {
		t.Fatalf("grow.log restored with %d bytes (%v), want the settled %d", len(got), err, len(want))
	}
	if _, err := os.Stat(filepath.Join(dst, "always.log")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("always.log was stored (%v): a torn copy must never be", err)
	}
	if _, err := os.Stat(filepath.Join(dst, "calm")); err != nil {
		t.Fatal(err)
	}
}

// appendOnRead appends 100 bytes to path after its first Read.
type appendOnRead struct {
	r    io.Reader
	path string
	done bool
}

func (a *appendOnRead) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if !a.done {
		a.done = true
		time.Sleep(2 * racyWindow) // a later clock tick, as a real writer would be
		f, ferr := os.OpenFile(a.path, os.O_APPEND|os.O_WRONLY, 0)
		if ferr != nil {
			return n, ferr
		}
		_, ferr = f.Write(make([]byte, 100))
		f.Close()
		if ferr != nil {
			return n, ferr
		}
	}
	return n, err
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, syscall.EIO }

func TestUnreadableFiles(t *testing.T) {
	w := newWorld(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "was-good"), []byte("version 1"), 0o644)
	writeFile(t, filepath.Join(src, "good"), []byte("fine"), 0o644)
	// A FIFO must be skipped, not opened (opening it would block).
	if err := unix.Mkfifo(filepath.Join(src, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	settle()
	acct := w.account()
	w.mustBackupIgnoring(t, acct, src, "fifo")

	// Tests run as root, who can read any file whatever its mode, so the
	// disk's failure is injected: reads of bad.bin (new) and was-good
	// (changed since the last backup) fail with EIO.
	writeFile(t, filepath.Join(src, "bad.bin"), randomBytes(50<<10, 7), 0o644)
	writeFile(t, filepath.Join(src, "was-good"), []byte("version 2"), 0o644)
	settle()
	hook := func(rel string, f io.Reader) io.Reader {
		if rel == "bad.bin" || rel == "was-good" {
			return failingReader{}
		}
		return f
	}
	s, err := w.backup(t, acct, src, func(o *Options) { o.wrapReader = hook })
	if !errors.Is(err, ErrIncomplete) {
		t.Fatalf("backup: %v, want ErrIncomplete", err)
	}
	var eio, special int
	for _, fe := range s.Errors {
		switch {
		case errors.Is(fe.Err, syscall.EIO):
			eio++
		case fe.Path == "fifo" && errors.Is(fe.Err, ErrUnsupportedType):
			special++
		default:
			t.Errorf("unexpected error %v", &fe)
		}
	}
	if eio != 2 || special != 1 || !s.Committed {
		t.Fatalf("summary %+v, errors %v: want two EIO and the FIFO, and a commit", s, s.Errors)
	}
	dst, _ := w.restore(t, "/Backups/test/data", 0)
	if got, err := os.ReadFile(filepath.Join(dst, "good")); err != nil || string(got) != "fine" {
		t.Fatalf("good: %q, %v", got, err)
	}
	// A file backed up before keeps its last good copy; a new one is left out.
	if got, err := os.ReadFile(filepath.Join(dst, "was-good")); err != nil || string(got) != "version 1" {
		t.Fatalf("was-good: %q, %v; want the previous version kept", got, err)
	}
	for _, p := range []string{"bad.bin", "fifo"} {
		if _, err := os.Stat(filepath.Join(dst, p)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%s restored: %v", p, err)
		}
	}
	// The kept copy is not trusted: the next run reads was-good again.
	s = w.mustBackupIgnoring(t, acct, src, "fifo")
	if s.FilesChanged != 1 || s.FilesNew != 1 {
		t.Fatalf("recovery run %+v: want was-good changed and bad.bin new", s)
	}
	dst, _ = w.restore(t, "/Backups/test/data", 0)
	if got, _ := os.ReadFile(filepath.Join(dst, "was-good")); string(got) != "version 2" {
		t.Fatalf("was-good after recovery: %q", got)
	}
}

// mustBackupIgnoring runs a backup whose only errors are the given paths.
func (w *world) mustBackupIgnoring(t *testing.T, acct *Account, dir string, paths ...string) *Summary {
	t.Helper()
	s, err := w.backup(t, acct, dir, nil)
	if err != nil && !errors.Is(err, ErrIncomplete) {
		t.Fatal(err)
	}
	if len(s.Errors) != len(paths) {
		t.Fatalf("errors %v, want only %v", s.Errors, paths)
	}
	for i, fe := range s.Errors {
		if fe.Path != paths[i] {
			t.Fatalf("error %v, want only %v", &fe, paths)
		}
	}
	return s
}

func TestExcludes(t *testing.T) {
	w := newWorld(t)
	src := t.TempDir()
	for _, p := range []string{"a.o", "keep.c", "build/out", "src/build/x", "src/gen/z.go", "src/gen/z.txt", "src/main.go", "node/cache/c"} {
		writeFile(t, filepath.Join(src, p), []byte(p), 0o644)
	}
	s := w.mustBackup(t, w.account(), src, func(o *Options) {
		o.Excludes = []string{"*.o", "build", "src/gen/*.go", "/node/cache/"}
	})
	if s.Excluded != 5 {
		t.Errorf("excluded %d entries, want 5", s.Excluded)
	}
	dst, _ := w.restore(t, "/Backups/test/data", 0)
	got := snapshot(t, dst)
	for _, p := range []string{"keep.c", "src/main.go", "src/gen/z.txt", "node"} {
		if _, ok := got[p]; !ok {
			t.Errorf("%s missing", p)
		}
	}
	for _, p := range []string{"a.o", "build", "src/build", "src/gen/z.go", "node/cache"} {
		if _, ok := got[p]; ok {
			t.Errorf("%s was not excluded", p)
		}
	}
	if _, err := w.backup(t, w.account(), src, func(o *Options) { o.Excludes = []string{"[bad"} }); err == nil {
		t.Error("a malformed pattern was accepted")
	}
}

func TestRestoreOlderVersion(t *testing.T) {
	w := newWorld(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "f"), []byte("one"), 0o644)
	writeFile(t, filepath.Join(src, "gone"), []byte("deleted later"), 0o644)
	settle()
	acct := w.account()
	v1 := snapshot(t, src)
	s1 := w.mustBackup(t, acct, src, nil)
	writeFile(t, filepath.Join(src, "f"), []byte("two"), 0o644)
	if err := os.Remove(filepath.Join(src, "gone")); err != nil {
		t.Fatal(err)
	}
	settle()
	s2 := w.mustBackup(t, acct, src, nil)
	if s2.Seq != s1.Seq+1 {
		t.Fatalf("seqs %d, %d", s1.Seq, s2.Seq)
	}
	dst, rs := w.restore(t, "/Backups/test/data", s1.Seq)
	if rs.Seq != s1.Seq {
		t.Fatalf("restored version %d, want %d", rs.Seq, s1.Seq)
	}
	got := snapshot(t, dst)
	delete(v1, ".")
	compareTrees(t, v1, got)
	if _, err := Restore(context.Background(), RestoreOptions{Account: w.account(), CloudPath: "/Backups/test/data", Version: 99, Target: t.TempDir()}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("restore of a missing version: %v", err)
	}
	if _, err := Restore(context.Background(), RestoreOptions{Account: w.account(), CloudPath: "/Backups/nope", Target: t.TempDir()}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("restore of a missing path: %v", err)
	}
}

func TestSpliceKeepsOtherContentAndRetriesOnHeadMoved(t *testing.T) {
	w := newWorld(t)
	src1, src2 := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(src1, "one"), []byte("1"), 0o644)
	writeFile(t, filepath.Join(src2, "two"), []byte("2"), 0o644)
	w.mustBackup(t, w.account(), src1, func(o *Options) { o.CloudPath = "/Backups/h/one" })

	// Another device commits a backup of src2 just before our commit.
	other := w.account()
	var once atomic.Bool
	w.remote.beforeCommit = func() {
		if once.CompareAndSwap(false, true) {
			w.remote.beforeCommit = nil
			if _, err := Run(context.Background(), Options{Account: other, Dir: src2, CloudPath: "/Backups/h/two", Device: "other"}); err != nil {
				t.Error(err)
			}
		}
	}
	src3 := t.TempDir()
	writeFile(t, filepath.Join(src3, "three"), []byte("3"), 0o644)
	s := w.mustBackup(t, w.account(), src3, func(o *Options) { o.CloudPath = "/Backups/h/three" })
	if s.Seq != 3 {
		t.Fatalf("head %d after a retried commit, want 3", s.Seq)
	}
	for _, p := range []string{"/Backups/h/one/one", "/Backups/h/two/two", "/Backups/h/three/three"} {
		dst, _ := w.restore(t, p, 0)
		if _, err := os.Stat(filepath.Join(dst, filepath.Base(p))); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	// A file where a folder of the path belongs is a conflict.
	if _, err := w.backup(t, w.account(), src1, func(o *Options) { o.CloudPath = "/Backups/h/one/one/x" }); !errors.Is(err, ErrPathConflict) {
		t.Fatalf("backup below a file: %v, want ErrPathConflict", err)
	}
}

func TestCheckpointCommits(t *testing.T) {
	w := newWorld(t)
	src := t.TempDir()
	for i := range 40 {
		writeFile(t, filepath.Join(src, "d", string(rune('a'+i%26))+strings.Repeat("x", i)), randomBytes(1000, uint64(i)), 0o644)
	}
	s := w.mustBackup(t, w.account(), src, func(o *Options) { o.maxEntries = 10 })
	if w.remote.commits < 4 {
		t.Fatalf("%d commits for 40+ blobs at 10 per commit", w.remote.commits)
	}
	// Everything reachable is in the server's index: a fresh device can
	// check and restore it.
	rep, err := Check(context.Background(), CheckOptions{Account: w.account(), ReadData: true})
	if err != nil {
		t.Fatalf("check: %v %v", err, rep.Problems)
	}
	dst, _ := w.restore(t, "/Backups/test/data", s.Seq)
	compareTrees(t, snapshot(t, src), snapshot(t, dst))
}

func TestBackupLocked(t *testing.T) {
	w := newWorld(t)
	src := t.TempDir()
	abs, _ := filepath.Abs(src)
	unlock, err := lockFile(CacheFile(w.cache, abs) + ".lock")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := w.backup(t, w.account(), src, nil); !errors.Is(err, ErrLocked) {
		t.Fatalf("concurrent backup: %v, want ErrLocked", err)
	}
}

func TestCorruptCacheIsIgnored(t *testing.T) {
	w := newWorld(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "f"), []byte("content"), 0o644)
	settle()
	acct := w.account()
	w.mustBackup(t, acct, src, nil)
	abs, _ := filepath.Abs(src)
	path := CacheFile(w.cache, abs)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 1
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	var logged []string
	s := w.mustBackup(t, acct, src, func(o *Options) {
		o.Logf = func(f string, a ...any) { logged = append(logged, f) }
	})
	if s.FilesUnchanged != 0 || s.BytesRead != int64(len("content")) {
		t.Fatalf("run with a corrupt cache %+v: want every file read", s)
	}
	if len(logged) == 0 {
		t.Error("corrupt cache not reported")
	}
	// It was rewritten whole.
	s = w.mustBackup(t, acct, src, nil)
	if s.FilesUnchanged != 1 {
		t.Fatalf("after rewrite %+v", s)
	}
}

func TestSplitCloudPath(t *testing.T) {
	for _, c := range []struct {
		in   string
		want string
		err  error
	}{
		{"/Backups/h/d", "Backups|h|d", nil},
		{"//a/./b/", "a|b", nil},
		{"/", "", ErrInvalidPath},
		{"relative/x", "", ErrInvalidPath},
		{"/a/../b", "", ErrInvalidPath},
	} {
		got, err := SplitCloudPath(c.in)
		if !errors.Is(err, c.err) || strings.Join(got, "|") != c.want {
			t.Errorf("SplitCloudPath(%q) = %q, %v; want %q, %v", c.in, got, err, c.want, c.err)
		}
	}
	if p := DefaultCloudPath("/home/u/photos/"); !strings.HasPrefix(p, "/Backups/") || !strings.HasSuffix(p, "/photos") {
		t.Errorf("DefaultCloudPath = %q", p)
	}
	if p := DefaultCloudPath("/"); !strings.HasSuffix(p, "/root") {
		t.Errorf("DefaultCloudPath(/) = %q", p)
	}
}

func TestProgressReported(t *testing.T) {
	w := newWorld(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "a"), randomBytes(1000, 1), 0o644)
	var last Progress
	w.mustBackup(t, w.account(), src, func(o *Options) {
		o.Progress = func(p Progress) { last = p }
		o.ProgressInterval = time.Millisecond
	})
	if !last.ScanDone || last.FilesFound != 1 || last.FilesDone != 1 || last.BytesDone != 1000 || last.BytesRead != 1000 {
		t.Fatalf("final progress %+v", last)
	}
}

func TestVersionMessageAndRoot(t *testing.T) {
	w := newWorld(t)
	src := t.TempDir()
	writeFile(t, filepath.Join(src, "a"), []byte("a"), 0o644)
	acct := w.account()
	s := w.mustBackup(t, acct, src, nil)
	rp, err := acct.openRepo()
	if err != nil {
		t.Fatal(err)
	}
	v, err := rp.LoadVersion(context.Background(), s.Version)
	if err != nil {
		t.Fatal(err)
	}
	if v.Device != "test" || !strings.Contains(v.Message, src) || !v.Parent.IsZero() {
		t.Errorf("version %+v", v)
	}
	e, err := lookupPath(context.Background(), rp, v.Root, []string{"Backups", "test", "data"})
	if err != nil || e.Kind != tree.KindDir || e.Subtree != s.Root {
		t.Fatalf("cloud path entry %+v, %v; want the folder's tree %s", e, err, s.Root.Short())
	}
	var zero crypto.ID
	if s.Root == zero {
		t.Fatal("no root")
	}
}
