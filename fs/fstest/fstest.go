//go:build linux

// Package fstest is the filesystem-semantics suite that every front end
// of the drive passes (fs/fusefs over go-fuse, fs/cgofs over cgofuse):
// real mounts of the node layer, driven through the kernel with ordinary
// system calls. A front end's tests call Run with a function that mounts.
package fstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/fs/localdb"
	"github.com/anysync/anysync/fs/node"
)

// memContent serves placeholder content from memory, keyed by the first
// chunk ID.
type memContent map[crypto.ID][]byte

func (m memContent) NewReader(chunks []byte, size int64) (io.ReaderAt, error) {
	cs, err := localdb.DecodeChunks(chunks)
	if err != nil {
		return nil, err
	}
	if len(cs) == 0 {
		return bytes.NewReader(nil), nil
	}
	data, ok := m[cs[0].ID]
	if !ok || int64(len(data)) != size {
		return nil, errors.New("unknown content")
	}
	return bytes.NewReader(data), nil
}

// Mounter mounts fsys at the existing folder dir and returns a function
// that unmounts it.
type Mounter func(dir string, fsys *node.FS) (unmount func() error, err error)

// Run runs the suite, each test on a new mount made by mount.
func Run(t *testing.T, mount Mounter) {
	s := suite{mount: mount}
	for _, tc := range []struct {
		name string
		fn   func(*testing.T)
	}{
		{"FileLifecycle", s.FileLifecycle},
		{"UnlinkOpenFile", s.UnlinkOpenFile},
		{"DirsRenameSymlink", s.DirsRenameSymlink},
		{"Xattrs", s.Xattrs},
		{"LargeDirectory", s.LargeDirectory},
		{"PlaceholderReadAndHydrate", s.PlaceholderReadAndHydrate},
		{"RandomOps", s.RandomOps},
		{"WritersAndCachedReaders", s.WritersAndCachedReaders},
		{"StatfsAndOrder", s.StatfsAndOrder},
	} {
		t.Run(tc.name, tc.fn)
	}
}

type suite struct{ mount Mounter }

// MountDir mounts a new, empty drive with mount for a front end's own
// tests and returns the mount point; it is unmounted at t's cleanup.
func MountDir(t *testing.T, mount Mounter) string {
	t.Helper()
	return suite{mount: mount}.mountEnv(t).dir
}

// RequireFUSE skips a test without a usable /dev/fuse, except in CI
// (CI=true), where the suite must exercise real mounts and fails.
func RequireFUSE(t *testing.T) {
	t.Helper()
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err == nil {
		_ = f.Close()
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("FUSE is required in CI: %v", err)
	}
	t.Skipf("no usable /dev/fuse: %v", err)
}

type env struct {
	db      *localdb.DB
	fsys    *node.FS
	dir     string
	content memContent
}

// mountEnv mounts a new, empty drive for t (and unmounts it at cleanup).
func (s suite) mountEnv(t *testing.T) *env {
	t.Helper()
	RequireFUSE(t)
	home := t.TempDir()
	db, err := localdb.OpenBatched(filepath.Join(home, "node.db"))
	if err != nil {
		t.Fatal(err)
	}
	e := &env{db: db, content: memContent{}, dir: filepath.Join(home, "mnt")}
	if err := os.Mkdir(e.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	e.fsys, err = node.New(context.Background(), node.Config{DB: db, StagingDir: filepath.Join(home, "staging"), Content: e.content})
	if err != nil {
		t.Fatal(err)
	}
	unmount, err := s.mount(e.dir, e.fsys)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unmount(); err != nil {
			t.Errorf("unmount: %v", err)
			_ = syscall.Unmount(e.dir, syscall.MNT_DETACH)
		}
		_ = db.Close()
	})
	return e
}

func (e *env) path(p string) string { return filepath.Join(e.dir, p) }

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErrno(t *testing.T, err error, want syscall.Errno) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("got %v, want %v", err, want)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	must(t, err)
	return string(b)
}

func (s suite) FileLifecycle(t *testing.T) {
	e := s.mountEnv(t)
	p := e.path("a.txt")
	must(t, os.WriteFile(p, []byte("hello world"), 0o640))
	if got := readFile(t, p); got != "hello world" {
		t.Fatalf("read %q", got)
	}
	st, err := os.Stat(p)
	must(t, err)
	if st.Size() != 11 || st.Mode().Perm() != 0o640 {
		t.Fatalf("stat: size %d mode %v", st.Size(), st.Mode())
	}

	// O_APPEND
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	_, err = f.Write([]byte("!!"))
	must(t, err)
	must(t, f.Close())
	if got := readFile(t, p); got != "hello world!!" {
		t.Fatalf("after append %q", got)
	}

	// truncate by path, then ftruncate, then a sparse write
	must(t, os.Truncate(p, 5))
	if got := readFile(t, p); got != "hello" {
		t.Fatalf("after truncate %q", got)
	}
	f, err = os.OpenFile(p, os.O_RDWR, 0)
	must(t, err)
	must(t, f.Truncate(2))
	_, err = f.WriteAt([]byte("Z"), 10)
	must(t, err)
	must(t, f.Sync())
	must(t, f.Close())
	if got := readFile(t, p); got != "he\x00\x00\x00\x00\x00\x00\x00\x00Z" {
		t.Fatalf("sparse %q", got)
	}

	// O_TRUNC reopen
	must(t, os.WriteFile(p, []byte("new"), 0o600))
	if got := readFile(t, p); got != "new" {
		t.Fatalf("after O_TRUNC %q", got)
	}

	must(t, os.Chmod(p, 0o600))
	mt := int64(1_600_000_000_123_456_789)
	must(t, os.Chtimes(p, timeOf(mt), timeOf(mt)))
	st, err = os.Stat(p)
	must(t, err)
	if st.Mode().Perm() != 0o600 || st.ModTime().UnixNano() != mt {
		t.Fatalf("chmod/utimens: %v %v", st.Mode(), st.ModTime().UnixNano())
	}

	must(t, os.Remove(p))
	_, err = os.Stat(p)
	wantErrno(t, err, syscall.ENOENT)
}

func (s suite) UnlinkOpenFile(t *testing.T) {
	e := s.mountEnv(t)
	p := e.path("open.txt")
	f, err := os.Create(p)
	must(t, err)
	_, err = f.Write([]byte("still here"))
	must(t, err)
	must(t, os.Remove(p))
	// Gone from the listing too (a front end must not show it under
	// another name while it is open).
	if ents, err := os.ReadDir(e.dir); err != nil || len(ents) != 0 {
		t.Fatalf("listing after unlink: %v %v", ents, err)
	}
	buf := make([]byte, 10)
	_, err = f.ReadAt(buf, 0)
	must(t, err)
	if string(buf) != "still here" {
		t.Fatalf("read after unlink %q", buf)
	}
	_, err = f.Write([]byte("+more"))
	must(t, err)
	must(t, f.Close())
	if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat after unlink: %v", err)
	}
	// RELEASE reaches the file system after close(2) returns.
	for start := time.Now(); ; time.Sleep(10 * time.Millisecond) {
		nodes, _, err := e.db.Stats(context.Background())
		must(t, err)
		if nodes == 1 {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("%d nodes left, want only the root", nodes)
		}
	}
}

func (s suite) DirsRenameSymlink(t *testing.T) {
	e := s.mountEnv(t)
	must(t, os.MkdirAll(e.path("d1/sub"), 0o755))
	must(t, os.WriteFile(e.path("d1/sub/f"), []byte("f"), 0o644))
	must(t, os.Mkdir(e.path("d2"), 0o755))
	// directory across directories
	must(t, os.Rename(e.path("d1/sub"), e.path("d2/moved")))
	if got := readFile(t, e.path("d2/moved/f")); got != "f" {
		t.Fatalf("after dir move %q", got)
	}
	// into itself
	wantErrno(t, os.Rename(e.path("d2"), e.path("d2/moved/x")), syscall.EINVAL)
	// file over existing file
	must(t, os.WriteFile(e.path("d2/g"), []byte("g"), 0o644))
	must(t, os.Rename(e.path("d2/g"), e.path("d2/moved/f")))
	if got := readFile(t, e.path("d2/moved/f")); got != "g" {
		t.Fatalf("rename over %q", got)
	}
	// directory over empty / non-empty directory
	must(t, os.Mkdir(e.path("empty"), 0o755))
	// (os.Rename refuses any directory target itself, so use the syscall.)
	must(t, syscall.Rename(e.path("d1"), e.path("empty")))
	wantErrno(t, syscall.Rename(e.path("empty"), e.path("d2")), syscall.ENOTEMPTY)
	wantErrno(t, os.Remove(e.path("d2")), syscall.ENOTEMPTY)
	// symlink
	must(t, os.Symlink("moved/f", e.path("d2/link")))
	target, err := os.Readlink(e.path("d2/link"))
	must(t, err)
	if target != "moved/f" || readFile(t, e.path("d2/link")) != "g" {
		t.Fatalf("symlink %q", target)
	}
	// hard links and device nodes are refused
	wantErrno(t, os.Link(e.path("d2/moved/f"), e.path("hard")), syscall.EPERM)
	wantErrno(t, syscall.Mknod(e.path("dev"), syscall.S_IFCHR|0o600, 0x101), syscall.EPERM)

	ents, err := os.ReadDir(e.path("d2"))
	must(t, err)
	var names []string
	for _, d := range ents {
		names = append(names, d.Name())
	}
	if fmt.Sprint(names) != "[link moved]" {
		t.Fatalf("readdir %v", names)
	}
}

func (s suite) Xattrs(t *testing.T) {
	e := s.mountEnv(t)
	p := e.path("x")
	must(t, os.WriteFile(p, nil, 0o644))
	must(t, syscall.Setxattr(p, "user.color", []byte("blue"), 0))
	buf := make([]byte, 64)
	n, err := syscall.Getxattr(p, "user.color", buf)
	must(t, err)
	if string(buf[:n]) != "blue" {
		t.Fatalf("getxattr %q", buf[:n])
	}
	n, err = syscall.Listxattr(p, buf)
	must(t, err)
	if string(buf[:n]) != "user.color\x00" {
		t.Fatalf("listxattr %q", buf[:n])
	}
	wantErrno(t, syscall.Setxattr(p, "user.color", []byte("red"), 1 /* XATTR_CREATE */), syscall.EEXIST)
	wantErrno(t, syscall.Setxattr(p, "trusted.x", []byte("1"), 0), syscall.ENOTSUP)
	must(t, syscall.Removexattr(p, "user.color"))
	_, err = syscall.Getxattr(p, "user.color", buf)
	wantErrno(t, err, syscall.ENODATA)
}

func (s suite) LargeDirectory(t *testing.T) {
	e := s.mountEnv(t)
	n := 20000
	if testing.Short() {
		n = 3000
	}
	// Fill the node table directly: the point is listing, not creation.
	ctx := context.Background()
	must(t, e.db.Update(ctx, func(tx *localdb.Tx) error {
		d := &localdb.Node{Parent: localdb.RootIno, Name: "big", Kind: localdb.KindDir, Mode: 0o755}
		if _, err := tx.Insert(d); err != nil {
			return err
		}
		for i := range n {
			if _, err := tx.Insert(&localdb.Node{Parent: d.Ino, Name: fmt.Sprintf("f%06d", i), Kind: localdb.KindFile, Mode: 0o644, Size: int64(i)}); err != nil {
				return err
			}
		}
		return nil
	}))
	ents, err := os.ReadDir(e.path("big"))
	must(t, err)
	if len(ents) != n {
		t.Fatalf("listed %d entries, want %d", len(ents), n)
	}
	info, err := ents[n-1].Info()
	must(t, err)
	if info.Size() != int64(n-1) {
		t.Fatalf("last entry size %d", info.Size())
	}
}

func (s suite) PlaceholderReadAndHydrate(t *testing.T) {
	e := s.mountEnv(t)
	data := make([]byte, 3<<20+17)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	id := crypto.ID{1}
	e.content[id] = data
	ctx := context.Background()
	must(t, e.db.Update(ctx, func(tx *localdb.Tx) error {
		_, err := tx.Insert(&localdb.Node{Parent: localdb.RootIno, Name: "ph.bin", Kind: localdb.KindFile, Mode: 0o644,
			Size: int64(len(data)), Chunks: localdb.EncodeChunks([]localdb.ChunkRef{{ID: id, Length: uint32(len(data))}})})
		return err
	}))
	got, err := os.ReadFile(e.path("ph.bin"))
	must(t, err)
	if !bytes.Equal(got, data) {
		t.Fatal("placeholder content differs")
	}
	// Opening for writing without O_TRUNC keeps the content.
	f, err := os.OpenFile(e.path("ph.bin"), os.O_RDWR, 0)
	must(t, err)
	_, err = f.WriteAt([]byte("XYZ"), 1000)
	must(t, err)
	must(t, f.Close())
	want := append([]byte(nil), data...) // data backs the content source
	copy(want[1000:], "XYZ")
	got, err = os.ReadFile(e.path("ph.bin"))
	must(t, err)
	if !bytes.Equal(got, want) {
		t.Fatal("hydrated content differs")
	}
}

// TestRandomOps compares random writes, truncates and reads through the
// mount with the same operations on a local file (fsx style).
func (s suite) RandomOps(t *testing.T) {
	e := s.mountEnv(t)
	ops := 3000
	if testing.Short() {
		ops = 500
	}
	local := filepath.Join(t.TempDir(), "ref")
	ref, err := os.Create(local)
	must(t, err)
	defer ref.Close()
	f, err := os.OpenFile(e.path("fsx"), os.O_RDWR|os.O_CREATE, 0o644)
	must(t, err)
	defer func() { _ = f.Close() }() // the last one opened
	rng := rand.New(rand.NewPCG(42, 7))
	const maxSize = 4 << 20
	buf, want := make([]byte, 256<<10), make([]byte, 256<<10)
	for i := range ops {
		off := rng.Int64N(maxSize)
		n := rng.IntN(len(buf)) + 1
		switch op := rng.IntN(10); {
		case op < 5:
			for j := range buf[:n] {
				buf[j] = byte(rng.Uint32())
			}
			_, err1 := f.WriteAt(buf[:n], off)
			_, err2 := ref.WriteAt(buf[:n], off)
			must(t, errors.Join(err1, err2))
		case op < 6:
			size := rng.Int64N(maxSize)
			must(t, errors.Join(f.Truncate(size), ref.Truncate(size)))
		case op < 7:
			// reopen: close-to-open through a new descriptor
			must(t, f.Close())
			f, err = os.OpenFile(e.path("fsx"), os.O_RDWR, 0)
			must(t, err)
		default:
			n1, err1 := f.ReadAt(buf[:n], off)
			n2, err2 := ref.ReadAt(want[:n], off)
			if n1 != n2 || !bytes.Equal(buf[:n1], want[:n2]) || (err1 == nil) != (err2 == nil) {
				t.Fatalf("op %d: read %d@%d: got %d %v, want %d %v", i, n, off, n1, err1, n2, err2)
			}
		}
	}
	st1, err := f.Stat()
	must(t, err)
	st2, err := ref.Stat()
	must(t, err)
	if st1.Size() != st2.Size() {
		t.Fatalf("size %d, want %d", st1.Size(), st2.Size())
	}
	got, err := os.ReadFile(e.path("fsx"))
	must(t, err)
	exp, err := os.ReadFile(local)
	must(t, err)
	if !bytes.Equal(got, exp) {
		t.Fatal("final content differs")
	}
}

// WritersAndCachedReaders checks that what one handle writes is what
// another, opened earlier and holding the content in the page cache, reads
// next, however the writer opened the file (go-fuse writes around the page
// cache for handles that write afresh), and that such a file can still be
// mapped and written through the mapping.
func (s suite) WritersAndCachedReaders(t *testing.T) {
	e := s.mountEnv(t)
	p := e.path("shared")
	pattern := func(n int, seed byte) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(i*7) + seed
		}
		return b
	}
	want := pattern(1<<20, 1)
	must(t, os.WriteFile(p, want, 0o644))
	r, err := os.Open(p)
	must(t, err)
	defer r.Close()
	check := func(step string) {
		t.Helper()
		got := make([]byte, len(want)+4096)
		n, err := r.ReadAt(got, 0)
		if err != nil && err != io.EOF {
			t.Fatalf("%s: read: %v", step, err)
		}
		if !bytes.Equal(got[:n], want) {
			t.Fatalf("%s: the earlier reader sees %d bytes that differ from the %d written", step, n, len(want))
		}
	}
	check("first write")

	// Write-only, in place.
	w, err := os.OpenFile(p, os.O_WRONLY, 0)
	must(t, err)
	patch := pattern(64<<10, 2)
	_, err = w.WriteAt(patch, 4096)
	must(t, errors.Join(err, w.Close()))
	copy(want[4096:], patch)
	check("write-only handle")

	// Read-write and truncated, as os.Create does, to a shorter file.
	want = pattern(300<<10, 3)
	must(t, os.WriteFile(p, nil, 0o644)) // truncate through a write-only handle
	f, err := os.Create(p)
	must(t, err)
	_, err = f.Write(want)
	must(t, err)
	back := make([]byte, len(want))
	_, err = f.ReadAt(back, 0)
	must(t, err)
	if !bytes.Equal(back, want) {
		t.Fatal("a truncating read-write handle reads back other bytes than it wrote")
	}
	must(t, f.Close())
	check("truncating read-write handle")

	// A file created to be written afresh can still be mapped and
	// written through the mapping.
	mp := e.path("mapped")
	f, err = os.Create(mp)
	must(t, err)
	must(t, f.Truncate(8192))
	mem, err := syscall.Mmap(int(f.Fd()), 0, 8192, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		t.Fatalf("mmap of a file created read-write: %v", err)
	}
	copy(mem[100:], "mapped bytes")
	must(t, errors.Join(syscall.Munmap(mem), f.Close()))
	want = make([]byte, 8192)
	copy(want[100:], "mapped bytes")
	if got := readFile(t, mp); got != string(want) {
		t.Fatal("a new reader sees other bytes than were written through the mapping")
	}
}

func (s suite) StatfsAndOrder(t *testing.T) {
	e := s.mountEnv(t)
	var st syscall.Statfs_t
	must(t, syscall.Statfs(e.dir, &st))
	if st.Blocks == 0 || st.Namelen != node.MaxName {
		t.Fatalf("statfs %+v", st)
	}
	for _, n := range []string{"b", "a", "c"} {
		must(t, os.WriteFile(e.path(n), nil, 0o644))
	}
	ents, err := os.ReadDir(e.dir)
	must(t, err)
	var names []string
	for _, d := range ents {
		names = append(names, d.Name())
	}
	if !sort.StringsAreSorted(names) || len(names) != 3 {
		t.Fatalf("names %v", names)
	}
}

func timeOf(ns int64) time.Time { return time.Unix(0, ns) }
