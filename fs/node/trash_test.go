package node

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/anysync/anysync/fs/localdb"
)

// A large staging file leaves the staging folder at once and is deleted in
// the background; what a previous run left in the trash goes at start.
func TestLargeStagingDeletedInBackground(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	db, err := localdb.Open(filepath.Join(dir, "node.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	trash := filepath.Join(dir, "trash")
	if err := os.MkdirAll(trash, 0o700); err != nil {
		t.Fatal(err)
	}
	left := filepath.Join(trash, "left-by-a-crash")
	if err := os.WriteFile(left, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := New(ctx, Config{DB: db, StagingDir: filepath.Join(dir, "staging"), TrashDir: trash})
	if err != nil {
		t.Fatal(err)
	}

	staged := func(name string) string {
		a, h, err := f.Create(ctx, localdb.RootIno, name, syscall.O_WRONLY, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		// Sparse: a large staging file without writing it all.
		if _, err := h.WriteAt(ctx, []byte("end"), largeStaging); err != nil {
			t.Fatal(err)
		}
		if err := h.Release(ctx); err != nil {
			t.Fatal(err)
		}
		n, err := db.Get(ctx, a.Ino)
		if err != nil || n.Staging == "" {
			t.Fatalf("no staging file for %s: %v", name, err)
		}
		return n.Staging
	}
	big := staged("big")
	if err := f.Unlink(ctx, localdb.RootIno, "big"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(f.stagingPath(big)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("unlinked file's staging file still in the staging folder: %v", err)
	}
	// Both deletions finish (a wait for an outcome, not a timing bound).
	for _, p := range []string{left, filepath.Join(trash, big)} {
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s never deleted", p)
			}
		}
	}
}

// Writing past writebackStep starts the kernel's writeback in the
// background while writes go on and the file closes under it; the content
// must come through intact (run with -race for the descriptor's use).
func TestWritebackDuringLargeWrite(t *testing.T) {
	ctx := context.Background()
	f := newTestFS(t)
	a, h, err := f.Create(ctx, localdb.RootIno, "big", syscall.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	piece := make([]byte, 1<<20)
	const pieces = 3 * writebackStep / (1 << 20)
	for i := range pieces {
		for j := range piece {
			piece[j] = byte(i + j)
		}
		if _, err := h.WriteAt(ctx, piece, int64(i)<<20); err != nil {
			t.Fatal(err)
		}
	}
	if err := h.Release(ctx); err != nil {
		t.Fatal(err)
	}
	r, err := f.Open(ctx, a.Ino, syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Release(ctx)
	got := make([]byte, 1<<20)
	for i := range pieces {
		if _, err := r.ReadAt(ctx, got, int64(i)<<20); err != nil {
			t.Fatal(err)
		}
		for j := range got {
			if got[j] != byte(i+j) {
				t.Fatalf("byte %d of MiB %d is %d, want %d", j, i, got[j], byte(i+j))
			}
		}
	}
}

// Only growth counts toward starting writeback: rewriting a region (a
// database's pages) leaves it to the page cache.
func TestWritebackCountsGrowthOnly(t *testing.T) {
	ctx := context.Background()
	f := newTestFS(t)
	_, h, err := f.Create(ctx, localdb.RootIno, "db", syscall.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release(ctx)
	piece := make([]byte, 1<<20)
	for i := range 4 {
		if _, err := h.WriteAt(ctx, piece, int64(i)<<20); err != nil {
			t.Fatal(err)
		}
	}
	if got := h.of.unflushed; got != 4<<20 {
		t.Fatalf("after growing 4 MiB: %d bytes counted", got)
	}
	for range 3 * writebackStep / len(piece) {
		if _, err := h.WriteAt(ctx, piece, 1<<20); err != nil {
			t.Fatal(err)
		}
	}
	// Half over the end: the half past it is growth.
	if _, err := h.WriteAt(ctx, piece, 7<<19); err != nil {
		t.Fatal(err)
	}
	if got := h.of.unflushed; got != 4<<20+1<<19 {
		t.Fatalf("rewrites counted: %d bytes, want %d", got, 4<<20+1<<19)
	}
}
