package cgofs

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/anysync/anysync/fs/localdb"
	"github.com/anysync/anysync/fs/node"
)

func newNodeFS(t *testing.T) *node.FS {
	t.Helper()
	dir := t.TempDir()
	db, err := localdb.Open(filepath.Join(dir, "node.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	f, err := node.New(context.Background(), node.Config{DB: db, StagingDir: filepath.Join(dir, "staging")})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func mkdir(t *testing.T, f *node.FS, parent uint64, name string) uint64 {
	t.Helper()
	a, err := f.Mkdir(context.Background(), parent, name, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	return a.Ino
}

func mkfile(t *testing.T, f *node.FS, parent uint64, name string) uint64 {
	t.Helper()
	a, err := f.Mknod(context.Background(), parent, name, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	return a.Ino
}

func TestResolverWalk(t *testing.T) {
	f := newNodeFS(t)
	ctx := context.Background()
	docs := mkdir(t, f, localdb.RootIno, "Docs")
	report := mkfile(t, f, docs, "Report: Q1.txt")
	mkfile(t, f, docs, "report: q1.TXT") // a POSIX device made both
	con := mkfile(t, f, localdb.RootIno, "con")

	exact := resolver{fsys: f}
	if a, err := exact.walk(ctx, "/Docs/Report: Q1.txt"); err != nil || a.Ino != report {
		t.Fatalf("exact walk: %v %v", a, err)
	}
	if _, err := exact.walk(ctx, "/docs"); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("case-sensitive walk of /docs: %v", err)
	}
	if _, err := exact.walk(ctx, "/Docs/Report: Q1.txt/x"); !errors.Is(err, syscall.ENOTDIR) {
		t.Fatalf("walk below a file: %v", err)
	}
	if a, err := exact.walk(ctx, "/"); err != nil || a.Ino != localdb.RootIno {
		t.Fatalf("walk of the root: %v %v", a, err)
	}

	win := resolver{fsys: f, winNames: true, fold: true}
	for _, c := range []struct {
		path string
		ino  uint64
	}{
		{"/Docs/Report\uF03A Q1.txt", report},     // escaped, exact case
		{"/DOCS/REPORT\uF03A Q1.TXT", report},     // no exact match: the first in name order
		{"/docs/report\uF03A q1.TXT", report + 1}, // exact match wins
		{"/\uF063on", con},
		{"/\uF043ON", con},
	} {
		if a, err := win.walk(ctx, c.path); err != nil || a.Ino != c.ino {
			t.Errorf("walk(%q) = %d, %v; want %d", c.path, a.Ino, err, c.ino)
		}
	}
	if _, err := win.walk(ctx, "/Docs/missing"); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("walk of a missing name: %v", err)
	}

	dir, name, a, err := win.entry(ctx, "/dOcS/rEpOrT\uF03A q1.txt")
	if err != nil || dir != docs || name != "Report: Q1.txt" || a.Ino != report {
		t.Fatalf("entry: %d %q %d %v", dir, name, a.Ino, err)
	}
	if dir, name, err := win.parent(ctx, "/docs/New\uF03F"); err != nil || dir != docs || name != "New?" {
		t.Fatalf("parent: %d %q %v", dir, name, err)
	}
	if err := win.free(ctx, docs, "REPORT: q1.txt"); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("free of a name taken in another case: %v", err)
	}
	if err := win.free(ctx, docs, "other"); err != nil {
		t.Fatalf("free: %v", err)
	}
	if err := exact.free(ctx, docs, "REPORT: q1.txt"); err != nil {
		t.Fatalf("free on a case-sensitive mount: %v", err)
	}
	if _, p, err := win.walkNames(ctx, "/DOCS/REPORT\uF03A Q1.TXT", true); err != nil || p != "/Docs/Report\uF03A Q1.txt" {
		t.Fatalf("walkNames: %q %v", p, err)
	}
	if p, err := win.hostPath(ctx, report); err != nil || p != "/Docs/Report\uF03A Q1.txt" {
		t.Fatalf("hostPath: %q %v", p, err)
	}
	if p, err := win.hostPath(ctx, localdb.RootIno); err != nil || p != "/" {
		t.Fatalf("hostPath of the root: %q %v", p, err)
	}
}

// TestResolverFoldLargeDirectory finds a case-insensitive match beyond the
// first listing batch.
func TestResolverFoldLargeDirectory(t *testing.T) {
	f := newNodeFS(t)
	ctx := context.Background()
	n := foldBatch*2 + 10
	var last uint64
	err := f.DB().Update(ctx, func(tx *localdb.Tx) error {
		for i := range n {
			nd := &localdb.Node{Parent: localdb.RootIno, Name: fmt.Sprintf("file%05d", i), Kind: localdb.KindFile, Mode: 0o644}
			if _, err := tx.Insert(nd); err != nil {
				return err
			}
			last = nd.Ino
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r := resolver{fsys: f, fold: true}
	if a, err := r.walk(ctx, fmt.Sprintf("/FILE%05d", n-1)); err != nil || a.Ino != last {
		t.Fatalf("fold lookup of the last entry: %d %v, want %d", a.Ino, err, last)
	}
	if _, err := r.walk(ctx, "/FILE99999"); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("fold lookup of a missing name: %v", err)
	}
}
