package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/fs/localdb"
)

// fakeHistory is two versions: v1 has /a.txt, v2 has /a.txt (changed) and
// /dir/b.txt and /link. Content is looked up by the first chunk's ID.
type fakeHistory struct {
	trees    map[crypto.ID][]HistoryEntry
	roots    map[crypto.ID]crypto.ID
	versions []HistoryVersion
	content  map[crypto.ID][]byte
}

func id(s string) crypto.ID {
	var x crypto.ID
	copy(x[:], s)
	return x
}

func newFakeHistory() *fakeHistory {
	h := &fakeHistory{trees: map[crypto.ID][]HistoryEntry{}, roots: map[crypto.ID]crypto.ID{}, content: map[crypto.ID][]byte{}}
	file := func(name, chunk, data string) HistoryEntry {
		h.content[id(chunk)] = []byte(data)
		return HistoryEntry{Name: name, Kind: localdb.KindFile, Mode: 0o644, Size: int64(len(data)), Mtime: 1e18,
			Chunks: localdb.EncodeChunks([]localdb.ChunkRef{{ID: id(chunk), Length: uint32(len(data))}})}
	}
	h.trees[id("root1")] = []HistoryEntry{file("a.txt", "c1", "first")}
	h.trees[id("dir2")] = []HistoryEntry{file("b.txt", "c3", "bee")}
	h.trees[id("root2")] = []HistoryEntry{
		file("a.txt", "c2", "second"),
		{Name: "dir", Kind: localdb.KindDir, Mode: 0o755, Tree: id("dir2")},
		{Name: "link", Kind: localdb.KindSymlink, Mode: 0o777, Target: "a.txt"},
	}
	h.roots[id("v1")], h.roots[id("v2")] = id("root1"), id("root2")
	t0 := time.Date(2026, 12, 2, 10, 11, 12, 0, time.UTC)
	h.versions = []HistoryVersion{{Seq: 1, Version: id("v1"), Time: t0}, {Seq: 2, Version: id("v2"), Time: t0.Add(time.Hour)}}
	return h
}

func (h *fakeHistory) Versions(context.Context) ([]HistoryVersion, error) { return h.versions, nil }
func (h *fakeHistory) Root(_ context.Context, v crypto.ID) (crypto.ID, error) {
	r, ok := h.roots[v]
	if !ok {
		return crypto.ID{}, errors.New("no such version")
	}
	return r, nil
}
func (h *fakeHistory) List(_ context.Context, tr crypto.ID) ([]HistoryEntry, error) {
	return h.trees[tr], nil
}
func (h *fakeHistory) NewReader(chunks []byte, size int64) (io.ReaderAt, error) {
	cs, err := localdb.DecodeChunks(chunks)
	if err != nil || len(cs) != 1 {
		return nil, fmt.Errorf("chunks: %v", err)
	}
	return bytes.NewReader(h.content[cs[0].ID]), nil
}

func newHistoryFS(t *testing.T) *FS {
	t.Helper()
	dir := t.TempDir()
	db, err := localdb.Open(filepath.Join(dir, "node.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	h := newFakeHistory()
	f, err := New(context.Background(), Config{DB: db, StagingDir: filepath.Join(dir, "staging"), History: h, Content: h})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func lookupPath(t *testing.T, f *FS, names ...string) Attr {
	t.Helper()
	ino := uint64(localdb.RootIno)
	var a Attr
	for _, n := range names {
		var err error
		if a, err = f.Lookup(context.Background(), ino, n); err != nil {
			t.Fatalf("lookup %q: %v", n, err)
		}
		ino = a.Ino
	}
	return a
}

func TestVersionsDirectory(t *testing.T) {
	f := newHistoryFS(t)
	ctx := context.Background()

	// Not listed at the root, reachable by name.
	root, err := f.ReadDir(ctx, localdb.RootIno, "", 100)
	if err != nil || len(root) != 0 {
		t.Fatalf("root listing: %v %v", root, err)
	}
	vd := lookupPath(t, f, VersionsDir)
	if vd.Ino != VersionsIno || vd.Kind != localdb.KindDir {
		t.Fatalf(".versions attr %+v", vd)
	}
	vs, err := f.ReadDir(ctx, VersionsIno, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 2 || vs[0].Name != "1-2026-12-02T101112" || vs[1].Name != "2-2026-12-02T111112" {
		t.Fatalf("versions listed: %+v", vs)
	}
	// Paging resumes after a name.
	if page, err := f.ReadDir(ctx, VersionsIno, vs[0].Name, 100); err != nil || len(page) != 1 || page[0].Name != vs[1].Name {
		t.Fatalf("second page: %+v %v", page, err)
	}

	a1 := lookupPath(t, f, VersionsDir, "1-2026-12-02T101112", "a.txt")
	a2 := lookupPath(t, f, VersionsDir, "2-2026-12-02T111112", "a.txt")
	if got := readAll(t, f, a1.Ino); string(got) != "first" {
		t.Fatalf("v1 a.txt = %q", got)
	}
	if got := readAll(t, f, a2.Ino); string(got) != "second" {
		t.Fatalf("v2 a.txt = %q", got)
	}
	if a2.Mode&0o222 != 0 {
		t.Fatalf("past files are writable: %o", a2.Mode)
	}
	b := lookupPath(t, f, VersionsDir, "2-2026-12-02T111112", "dir", "b.txt")
	if got := readAll(t, f, b.Ino); string(got) != "bee" {
		t.Fatalf("v2 dir/b.txt = %q", got)
	}
	// The same path gives the same inode; GetAttr answers by inode.
	if again := lookupPath(t, f, VersionsDir, "2-2026-12-02T111112", "dir", "b.txt"); again.Ino != b.Ino {
		t.Fatalf("inode changed: %d then %d", b.Ino, again.Ino)
	}
	if ga, err := f.GetAttr(ctx, b.Ino); err != nil || ga.Size != 3 {
		t.Fatalf("getattr: %+v %v", ga, err)
	}
	l := lookupPath(t, f, VersionsDir, "2-2026-12-02T111112", "link")
	if target, err := f.Readlink(ctx, l.Ino); err != nil || target != "a.txt" {
		t.Fatalf("readlink: %q %v", target, err)
	}
	if _, err := f.Lookup(ctx, VersionsIno, "3-2026-12-02T111112"); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("missing version: %v", err)
	}

	// Everything in it is read-only.
	v2 := lookupPath(t, f, VersionsDir, "2-2026-12-02T111112")
	checks := map[string]error{}
	_, err = f.Open(ctx, a2.Ino, syscall.O_RDWR)
	checks["open rw"] = err
	_, _, err = f.Create(ctx, v2.Ino, "new", syscall.O_RDWR, 0o644)
	checks["create"] = err
	_, err = f.Mkdir(ctx, VersionsIno, "x", 0o755)
	checks["mkdir"] = err
	checks["unlink"] = f.Unlink(ctx, v2.Ino, "a.txt")
	checks["rmdir"] = f.Rmdir(ctx, v2.Ino, "dir")
	checks["rename out"] = f.Rename(ctx, v2.Ino, "a.txt", localdb.RootIno, "a.txt", 0)
	checks["rmdir .versions"] = f.Rmdir(ctx, localdb.RootIno, VersionsDir)
	size := int64(0)
	_, err = f.SetAttr(ctx, a2.Ino, nil, SetAttrIn{Size: &size})
	checks["truncate"] = err
	checks["setxattr"] = f.SetXattr(ctx, a2.Ino, "user.x", []byte("1"), 0)
	for op, err := range checks {
		if !errors.Is(err, syscall.EROFS) {
			t.Errorf("%s in .versions: %v, want EROFS", op, err)
		}
	}
	if _, err := f.Mkdir(ctx, localdb.RootIno, VersionsDir, 0o755); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("mkdir /.versions: %v, want EEXIST", err)
	}
	// A copy out of a version into the drive is an ordinary new file.
	a, h, err := f.Create(ctx, localdb.RootIno, "restored.txt", syscall.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt(ctx, readAll(t, f, a1.Ino), 0); err != nil {
		t.Fatal(err)
	}
	if err := h.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, f, a.Ino); string(got) != "first" {
		t.Fatalf("restored copy = %q", got)
	}
}

func TestHiddenEntries(t *testing.T) {
	f := newTestFS(t)
	ctx := context.Background()
	var inos []uint64
	for _, n := range []string{"a", "excluded", "z"} {
		a, err := f.Mkdir(ctx, localdb.RootIno, n, 0o755)
		if err != nil {
			t.Fatal(err)
		}
		inos = append(inos, a.Ino)
	}
	if _, err := f.Mkdir(ctx, inos[1], "inner", 0o755); err != nil {
		t.Fatal(err)
	}
	f.SetHidden([]HiddenEntry{{Parent: localdb.RootIno, Name: "excluded"}})

	if _, err := f.Lookup(ctx, localdb.RootIno, "excluded"); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("lookup of a hidden folder: %v", err)
	}
	// A page of 2 that drops the hidden entry is topped up, so a short
	// page still means the end of the listing.
	page, err := f.ReadDir(ctx, localdb.RootIno, "", 2)
	if err != nil || len(page) != 2 || page[0].Name != "a" || page[1].Name != "z" {
		t.Fatalf("listing: %+v %v", page, err)
	}
	if _, err := f.Mkdir(ctx, localdb.RootIno, "excluded", 0o755); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("mkdir over a hidden folder: %v", err)
	}
	if err := f.Rmdir(ctx, localdb.RootIno, "excluded"); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("rmdir of a hidden folder: %v", err)
	}
	if err := f.Rename(ctx, localdb.RootIno, "a", localdb.RootIno, "excluded", 0); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("rename over a hidden folder: %v", err)
	}
	if err := f.Rename(ctx, localdb.RootIno, "excluded", localdb.RootIno, "b", 0); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("rename of a hidden folder: %v", err)
	}
	// Still in the node table, untouched.
	if n, err := f.db.Lookup(ctx, localdb.RootIno, "excluded"); err != nil || n.Ino != inos[1] {
		t.Fatalf("hidden folder's row: %+v %v", n, err)
	}
	f.SetHidden(nil)
	if a, err := f.Lookup(ctx, localdb.RootIno, "excluded"); err != nil || a.Ino != inos[1] {
		t.Fatalf("lookup after include: %+v %v", a, err)
	}
}
