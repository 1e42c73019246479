package node

import (
	"context"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/anysync/anysync/fs/localdb"
)

func newTestFS(tb testing.TB) *FS {
	tb.Helper()
	return newTestFSOn(tb, localdb.Open)
}

// newTestFSOn is newTestFS on a database opened by open (localdb.OpenBatched:
// as the daemon opens it).
func newTestFSOn(tb testing.TB, open func(string) (*localdb.DB, error)) *FS {
	tb.Helper()
	return newTestFSWith(tb, open, nil)
}

// newTestFSWith is newTestFSOn reading placeholders from content.
func newTestFSWith(tb testing.TB, open func(string) (*localdb.DB, error), content ContentSource) *FS {
	tb.Helper()
	dir := tb.TempDir()
	db, err := open(filepath.Join(dir, "node.db"))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = db.Close() })
	f, err := New(context.Background(), Config{DB: db, StagingDir: filepath.Join(dir, "staging"), Content: content})
	if err != nil {
		tb.Fatal(err)
	}
	return f
}

// BenchmarkCreateSmallFile is what an archive extractor does per file:
// create, write, set times and mode, close; on a database committing each
// update, and on one writing behind a redo log (the daemon's).
func BenchmarkCreateSmallFile(b *testing.B) {
	b.Run("direct", func(b *testing.B) { benchCreateSmallFile(b, newTestFSOn(b, localdb.Open)) })
	b.Run("batched", func(b *testing.B) { benchCreateSmallFile(b, newTestFSOn(b, localdb.OpenBatched)) })
}

func benchCreateSmallFile(b *testing.B, f *FS) {
	ctx := context.Background()
	data := make([]byte, 4096)
	mt := int64(1_600_000_000_000_000_000)
	mode := uint32(0o644)
	b.SetBytes(int64(len(data)))
	for i := 0; b.Loop(); i++ {
		a, h, err := f.Create(ctx, localdb.RootIno, fmt.Sprintf("f%d", i), syscall.O_WRONLY, 0o600)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := h.WriteAt(ctx, data, 0); err != nil {
			b.Fatal(err)
		}
		if _, err := f.SetAttr(ctx, a.Ino, h, SetAttrIn{Mode: &mode}); err != nil {
			b.Fatal(err)
		}
		if err := h.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		if err := h.Release(ctx); err != nil {
			b.Fatal(err)
		}
		if _, err := f.SetAttr(ctx, a.Ino, nil, SetAttrIn{Mtime: &mt}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWrite is sequential 1 MiB writes to one open file.
func BenchmarkWrite(b *testing.B) {
	f := newTestFS(b)
	ctx := context.Background()
	_, h, err := f.Create(ctx, localdb.RootIno, "big", syscall.O_WRONLY, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = h.Release(ctx) }()
	data := make([]byte, 1<<20)
	b.SetBytes(int64(len(data)))
	var off int64
	for b.Loop() {
		if _, err := h.WriteAt(ctx, data, off); err != nil {
			b.Fatal(err)
		}
		off += int64(len(data))
		if off >= 256<<20 {
			off = 0
		}
	}
}

// BenchmarkReadAt is 128 KiB reads (the kernel's read size) of a file's
// local content, the path every read of an open file takes.
func BenchmarkReadAt(b *testing.B) {
	f := newTestFS(b)
	ctx := context.Background()
	a, h, err := f.Create(ctx, localdb.RootIno, "big", syscall.O_WRONLY, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	const size = 16 << 20
	if _, err := h.WriteAt(ctx, make([]byte, size), 0); err != nil {
		b.Fatal(err)
	}
	if err := h.Release(ctx); err != nil {
		b.Fatal(err)
	}
	r, err := f.Open(ctx, a.Ino, syscall.O_RDONLY)
	if err != nil {
		b.Fatal(err)
	}
	defer func() { _ = r.Release(ctx) }()
	buf := make([]byte, 128<<10)
	b.SetBytes(int64(len(buf)))
	var off int64
	for b.Loop() {
		if n, err := r.ReadAt(ctx, buf, off); err != nil || n != len(buf) {
			b.Fatalf("read %d at %d: %v", n, off, err)
		}
		off = (off + int64(len(buf))) % size
	}
}

// BenchmarkLookupGetAttr is the metadata read path.
func BenchmarkLookupGetAttr(b *testing.B) {
	f := newTestFS(b)
	ctx := context.Background()
	for i := range 1000 {
		if _, err := f.Mkdir(ctx, localdb.RootIno, fmt.Sprintf("d%d", i), 0o755); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; b.Loop(); i++ {
		a, err := f.Lookup(ctx, localdb.RootIno, fmt.Sprintf("d%d", i%1000))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := f.GetAttr(ctx, a.Ino); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkReadDir lists a directory of 10,000 entries.
func BenchmarkReadDir(b *testing.B) {
	f := newTestFS(b)
	ctx := context.Background()
	err := f.db.Update(ctx, func(tx *localdb.Tx) error {
		for i := range 10000 {
			if _, err := tx.Insert(&localdb.Node{Parent: localdb.RootIno, Name: fmt.Sprintf("f%05d", i), Kind: localdb.KindFile, Mode: 0o644}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		after, n := "", 0
		for {
			ents, err := f.ReadDir(ctx, localdb.RootIno, after, 1024)
			if err != nil {
				b.Fatal(err)
			}
			n += len(ents)
			if len(ents) < 1024 {
				break
			}
			after = ents[len(ents)-1].Name
		}
		if n != 10000 {
			b.Fatalf("listed %d", n)
		}
	}
}
