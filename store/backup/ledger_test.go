//go:build unix

package backup

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/store/repo"
)

// ledgerIndex is a device's index whose own additions stay uncommitted
// until a commit carries them (the CLI keeps this ledger in node.db).
type ledgerIndex struct {
	*repo.MemIndex
	mu          sync.Mutex
	uncommitted map[crypto.ID]repo.IndexEntry
}

func (x *ledgerIndex) Add(entries []repo.IndexEntry) error {
	x.mu.Lock()
	for _, e := range entries {
		x.uncommitted[e.ID] = e
	}
	x.mu.Unlock()
	return x.MemIndex.Add(entries)
}

func (x *ledgerIndex) Uncommitted(context.Context) ([]repo.IndexEntry, error) {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make([]repo.IndexEntry, 0, len(x.uncommitted))
	for _, e := range x.uncommitted {
		out = append(out, e)
	}
	return out, nil
}

func (x *ledgerIndex) MarkCommitted(_ context.Context, entries []repo.IndexEntry) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, e := range entries {
		delete(x.uncommitted, e.ID)
	}
	return nil
}

// TestCommitCarriesOtherWritersEntries: a blob another writer on this
// device uploaded but did not commit yet (the drive, or an interrupted
// backup) is found by the backup's dedup; the backup's commit must carry
// its index entry, or a device restoring from the server cannot read the
// file.
func TestCommitCarriesOtherWritersEntries(t *testing.T) {
	w := newWorld(t)
	acct := w.account()
	d := acct.Remote.(deviceRemote).dev
	idx := &ledgerIndex{MemIndex: d.index, uncommitted: map[crypto.ID]repo.IndexEntry{}}
	acct.Index, acct.Ledger = idx, idx

	shared := []byte("written by the drive, not committed yet\n")
	other, err := acct.openRepo()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id, err := other.SaveBlob(ctx, crypto.BlobData, shared)
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	src := t.TempDir()
	makeFixture(t, src)
	if err := os.WriteFile(filepath.Join(src, "shared.txt"), shared, 0o644); err != nil {
		t.Fatal(err)
	}
	settle()
	want := snapshot(t, src)
	s := w.mustBackup(t, acct, src, nil)
	if !s.Committed {
		t.Fatal("nothing committed")
	}
	w.remote.mu.Lock()
	_, onServer := w.remote.index[id]
	w.remote.mu.Unlock()
	if !onServer {
		t.Fatal("the commit did not carry the other writer's entry the backup deduplicated against")
	}
	if left, _ := idx.Uncommitted(ctx); len(left) != 0 {
		t.Fatalf("%d entries left uncommitted after the commit", len(left))
	}
	dst, _ := w.restore(t, "/Backups/test/data", 0) // a fresh device
	compareTrees(t, want, snapshot(t, dst))
}
