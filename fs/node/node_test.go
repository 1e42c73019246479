package node

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/anysync/anysync/fs/localdb"
)

func readAll(t *testing.T, f *FS, ino uint64) []byte {
	t.Helper()
	ctx := context.Background()
	h, err := f.Open(ctx, ino, syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = h.Release(ctx) }()
	a, err := f.GetAttr(ctx, ino)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, a.Size)
	n, err := h.ReadAt(ctx, buf, 0)
	if err != nil || int64(n) != a.Size {
		t.Fatalf("read %d of %d: %v", n, a.Size, err)
	}
	return buf
}

// TestInlineSpill checks small content kept in the row, reopened from it,
// and moved to a staging file when it outgrows InlineMax.
func TestInlineSpill(t *testing.T) {
	f := newTestFS(t)
	ctx := context.Background()
	a, h, err := f.Create(ctx, localdb.RootIno, "f", syscall.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	small := bytes.Repeat([]byte("s"), 1000)
	if _, err := h.WriteAt(ctx, small, 0); err != nil {
		t.Fatal(err)
	}
	if err := h.Release(ctx); err != nil {
		t.Fatal(err)
	}
	n, err := f.db.Get(ctx, a.Ino)
	if err != nil {
		t.Fatal(err)
	}
	if n.Staging != "" || !bytes.Equal(n.Inline, small) || n.Flags&localdb.FlagContent == 0 {
		t.Fatalf("row after close: staging %q, %d inline bytes, flags %d", n.Staging, len(n.Inline), n.Flags)
	}
	if got := readAll(t, f, a.Ino); !bytes.Equal(got, small) {
		t.Fatal("inline content differs")
	}
	h, err = f.Open(ctx, a.Ino, syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("B"), InlineMax)
	if _, err := h.WriteAt(ctx, big, 500); err != nil {
		t.Fatal(err)
	}
	if err := h.Release(ctx); err != nil {
		t.Fatal(err)
	}
	want := append(append([]byte(nil), small[:500]...), big...)
	if n, err = f.db.Get(ctx, a.Ino); err != nil || n.Staging == "" || n.Inline != nil {
		t.Fatalf("row after spill: staging %q, %d inline bytes, %v", n.Staging, len(n.Inline), err)
	}
	if got := readAll(t, f, a.Ino); !bytes.Equal(got, want) {
		t.Fatal("spilled content differs")
	}
}

// TestRecoverAfterCrash reopens the node layer on a database left by a
// process that died with files open: flushed content is there, orphans go.
func TestRecoverAfterCrash(t *testing.T) {
	dir := t.TempDir()
	db, err := localdb.Open(filepath.Join(dir, "node.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	cfg := Config{DB: db, StagingDir: filepath.Join(dir, "staging")}
	f, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	a, h, err := f.Create(ctx, localdb.RootIno, "kept", syscall.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("k"), 300<<10) // a staging file
	if _, err := h.WriteAt(ctx, data, 0); err != nil {
		t.Fatal(err)
	}
	if err := h.Fsync(ctx); err != nil {
		t.Fatal(err)
	}
	_, h2, err := f.Create(ctx, localdb.RootIno, "gone", syscall.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Unlink(ctx, localdb.RootIno, "gone"); err != nil {
		t.Fatal(err)
	}
	_ = h2 // the process "dies" with both files open

	f2, err := New(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, f2, a.Ino); !bytes.Equal(got, data) {
		t.Fatal("fsynced content lost")
	}
	nodes, pending, err := db.Stats(ctx)
	if err != nil || nodes != 2 || pending != 1 {
		t.Fatalf("after recovery: %d nodes, %d pending, %v; want root and kept", nodes, pending, err)
	}
}

// TestSetIDCleared checks that writes, truncates and chown clear the
// set-ID bits (the kernel leaves this to the file system), in memory while
// the file is open and in the row after close.
func TestSetIDCleared(t *testing.T) {
	f := newTestFS(t)
	ctx := context.Background()
	mode := func(ino uint64) uint32 {
		t.Helper()
		a, err := f.GetAttr(ctx, ino)
		if err != nil {
			t.Fatal(err)
		}
		return a.Mode
	}
	a, h, err := f.Create(ctx, localdb.RootIno, "w", syscall.O_RDWR, 0o6755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt(ctx, []byte("x"), 0); err != nil {
		t.Fatal(err)
	}
	if got := mode(a.Ino); got != 0o755 {
		t.Fatalf("mode after write %o, want 755", got)
	}
	if err := h.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := f.db.Get(ctx, a.Ino); err != nil || n.Mode != 0o755 {
		t.Fatalf("row mode after close %o, %v", n.Mode, err)
	}

	// Set-group-ID without group execute marks locking: kept.
	a, h, err = f.Create(ctx, localdb.RootIno, "t", syscall.O_RDWR, 0o6704)
	if err != nil {
		t.Fatal(err)
	}
	size := int64(3)
	if _, err := f.SetAttr(ctx, a.Ino, h, SetAttrIn{Size: &size}); err != nil {
		t.Fatal(err)
	}
	if got := mode(a.Ino); got != 0o2704 {
		t.Fatalf("mode after truncate %o, want 2704", got)
	}
	if err := h.Release(ctx); err != nil {
		t.Fatal(err)
	}

	// chown of a closed file, through the row.
	m := uint32(0o4750)
	if _, err := f.SetAttr(ctx, a.Ino, nil, SetAttrIn{Mode: &m}); err != nil {
		t.Fatal(err)
	}
	got, err := f.SetAttr(ctx, a.Ino, nil, SetAttrIn{ClearSetID: true})
	if err != nil || got.Mode != 0o750 || mode(a.Ino) != 0o750 {
		t.Fatalf("mode after chown %o (%o), %v", got.Mode, mode(a.Ino), err)
	}
}

// TestReadDirKinds: an empty directory lists nothing, a file is ENOTDIR
// and a missing node ENOENT (checked only when a listing comes back
// empty).
func TestReadDirKinds(t *testing.T) {
	f := newTestFS(t)
	ctx := context.Background()
	d, err := f.Mkdir(ctx, localdb.RootIno, "empty", 0o755)
	if err != nil {
		t.Fatal(err)
	}
	a, h, err := f.Create(ctx, localdb.RootIno, "file", syscall.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if ents, err := f.ReadDir(ctx, d.Ino, "", 10); err != nil || len(ents) != 0 {
		t.Fatalf("empty directory: %v, %v", ents, err)
	}
	if _, err := f.ReadDir(ctx, a.Ino, "", 10); !errors.Is(err, syscall.ENOTDIR) {
		t.Fatalf("ReadDir of a file: %v, want ENOTDIR", err)
	}
	if _, err := f.ReadDir(ctx, 1<<40, "", 10); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("ReadDir of a missing node: %v, want ENOENT", err)
	}
	if ents, err := f.ReadDir(ctx, localdb.RootIno, "", 10); err != nil || len(ents) != 2 {
		t.Fatalf("root: %v, %v", ents, err)
	}
}
