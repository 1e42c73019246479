package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/anysync/anysync/fs/localdb"
)

// ErrBusy means a node cannot be uploaded now: it is open for writing or
// already being uploaded. It is retried on a later commit.
var ErrBusy = errors.New("node busy")

// Upload hands the staged content of a pending file to store, which returns
// the encoded chunk list and size it stored, and records them as the node's
// committed content. Writers wait while store runs, so the content cannot
// change under it; readers go on. It returns ErrBusy for a file open for
// writing, and does nothing for a file no longer pending.
func (f *FS) Upload(ctx context.Context, ino uint64, store func(r io.Reader) (chunks []byte, size int64, err error)) error {
	f.omu.Lock()
	if of := f.open[ino]; (of != nil && of.writers > 0) || f.busy[ino] {
		f.omu.Unlock()
		return ErrBusy
	}
	f.busy[ino] = true
	f.omu.Unlock()
	defer func() {
		f.omu.Lock()
		delete(f.busy, ino)
		f.cond.Broadcast()
		f.omu.Unlock()
	}()

	n, err := f.db.Get(ctx, ino)
	if errors.Is(err, localdb.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	if n.Flags&localdb.FlagContent == 0 {
		return nil
	}
	var chunks []byte
	var size int64
	if n.Staging == "" {
		chunks, size, err = store(bytes.NewReader(n.Inline))
	} else {
		sf, oerr := os.Open(f.stagingPath(n.Staging))
		if oerr != nil {
			return fmt.Errorf("open staging of %d: %w", ino, oerr)
		}
		chunks, size, err = store(sf)
		_ = sf.Close()
	}
	if err != nil {
		return fmt.Errorf("store content of %d: %w", ino, err)
	}

	f.omu.Lock()
	of := f.open[ino]
	f.omu.Unlock()
	if of != nil {
		of.mu.Lock()
		defer of.mu.Unlock()
		of.marked = false // the next write marks the row pending again
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var drop string
	err = f.db.Update(ctx, func(tx *localdb.Tx) error {
		var err error
		drop, err = tx.SetContent(ino, chunks, size, of == nil)
		if errors.Is(err, localdb.ErrNotFound) {
			return nil // unlinked meanwhile
		}
		return err
	})
	if err != nil {
		return err
	}
	f.removeStaging(drop)
	return nil
}

// Locked runs fn while no metadata change can happen (the committer builds
// trees from a stable node table).
func (f *FS) Locked(fn func() error) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return fn()
}

// IsOpen reports whether a node has open handles.
func (f *FS) IsOpen(ino uint64) bool {
	f.omu.Lock()
	defer f.omu.Unlock()
	return f.open[ino] != nil
}

// RemoveLocked drops a node from the tree inside tx, for the syncer (the FS
// must be Locked): deleted, or kept as an orphan while open. It returns the
// staging file to remove with RemoveStaging once tx commits.
func (f *FS) RemoveLocked(tx *localdb.Tx, n *localdb.Node) (string, error) {
	return f.removeNode(tx, n)
}

// RemoveStaging deletes a staging file of a node that is gone.
func (f *FS) RemoveStaging(name string) { f.removeStaging(name) }
