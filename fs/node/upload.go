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

// Upload hands the staged content of pending files to store, which returns
// the encoded chunk list and size it stored, and records them as the nodes'
// committed content: the files stored without error, in one transaction
// (a transaction per file cost more than storing a small file). Writers
// wait while their file is in a batch, so its content cannot change under
// store; readers go on. Files open for writing or being uploaded are
// skipped (ErrBusy is returned if nothing else failed), as are files no
// longer pending.
//
// persist, if not nil, makes what store stored durable (the repository's
// open packs uploaded and indexed) before any of it is recorded: a row
// must never name chunks that a crash could lose with an unsent pack.
func (f *FS) Upload(ctx context.Context, inos []uint64, store func(r io.Reader) (chunks []byte, size int64, err error), persist func(context.Context) error) error {
	claimed := make([]uint64, 0, len(inos))
	busy := false
	f.omu.Lock()
	for _, ino := range inos {
		if of := f.open[ino]; (of != nil && of.writers > 0) || f.busy[ino] {
			busy = true
			continue
		}
		f.busy[ino] = true
		claimed = append(claimed, ino)
	}
	f.omu.Unlock()
	defer func() {
		f.omu.Lock()
		for _, ino := range claimed {
			delete(f.busy, ino)
		}
		f.cond.Broadcast()
		f.omu.Unlock()
	}()

	type stored struct {
		ino    uint64
		chunks []byte
		size   int64
	}
	done := make([]stored, 0, len(claimed))
	rows, serr := f.db.GetMany(ctx, claimed)
	for _, ino := range claimed {
		if serr != nil {
			break
		}
		n, ok := rows[ino]
		if !ok {
			continue // gone
		}
		chunks, size, ok, err := f.storeContent(ctx, n, store)
		if err != nil {
			serr = err
			break
		}
		if ok {
			done = append(done, stored{ino, chunks, size})
		}
	}

	if len(done) > 0 && persist != nil {
		if err := persist(ctx); err != nil {
			done = nil // nothing recorded: the content stays pending
			serr = errors.Join(serr, fmt.Errorf("store packs: %w", err))
		}
	}

	// Record what was stored, even after a failure: it is uploaded.
	var batch []stored
	var rerr error
	for _, d := range done {
		f.omu.Lock()
		of := f.open[d.ino]
		f.omu.Unlock()
		if of == nil {
			batch = append(batch, d)
			continue
		}
		// Open for reading: the open file keeps its staging file, and
		// must see the row change under its lock.
		of.mu.Lock()
		of.marked = false // the next write marks the row pending again
		err := f.setContentKeep(ctx, d.ino, d.chunks, d.size)
		of.mu.Unlock()
		rerr = errors.Join(rerr, err)
	}
	var drops []string
	if len(batch) > 0 {
		f.mu.Lock()
		err := f.db.Update(ctx, func(tx *localdb.Tx) error {
			drops = drops[:0]
			for _, d := range batch {
				drop, err := tx.SetContent(d.ino, d.chunks, d.size, true)
				if errors.Is(err, localdb.ErrNotFound) {
					continue // unlinked meanwhile
				}
				if err != nil {
					return err
				}
				drops = append(drops, drop)
			}
			return nil
		})
		f.mu.Unlock()
		if err != nil {
			drops = nil
		}
		rerr = errors.Join(rerr, err)
	}
	for _, name := range drops {
		f.removeStaging(name)
	}
	if err := errors.Join(serr, rerr); err != nil {
		return err
	}
	if busy {
		return ErrBusy
	}
	return nil
}

// storeContent stores the pending content of a node read while it is
// claimed; ok is false when it has none (committed meanwhile).
func (f *FS) storeContent(ctx context.Context, n localdb.Node, store func(r io.Reader) ([]byte, int64, error)) (chunks []byte, size int64, ok bool, err error) {
	ino := n.Ino
	if n.Flags&localdb.FlagContent == 0 {
		return nil, 0, false, nil
	}
	if n.Staging == "" {
		chunks, size, err = store(bytes.NewReader(n.Inline))
	} else {
		sf, oerr := os.Open(f.stagingPath(n.Staging))
		if errors.Is(oerr, os.ErrNotExist) && f.stagingGone(ctx, n) {
			return nil, 0, false, nil // deleted since the batch was read
		}
		if oerr != nil {
			return nil, 0, false, fmt.Errorf("open staging of %d: %w", ino, oerr)
		}
		chunks, size, err = store(sf)
		_ = sf.Close()
	}
	if err != nil {
		return nil, 0, false, fmt.Errorf("store content of %d: %w", ino, err)
	}
	return chunks, size, true, nil
}

// stagingGone reports whether n's staging file is no longer its row's: the
// node was removed (unlink deletes a closed file's staging file at once).
func (f *FS) stagingGone(ctx context.Context, n localdb.Node) bool {
	cur, err := f.db.Get(ctx, n.Ino)
	return errors.Is(err, localdb.ErrNotFound) || (err == nil && cur.Staging != n.Staging)
}

// setContentKeep records one node's committed content in its own
// transaction, keeping its staging file (an open file reads from it).
func (f *FS) setContentKeep(ctx context.Context, ino uint64, chunks []byte, size int64) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.db.Update(ctx, func(tx *localdb.Tx) error {
		_, err := tx.SetContent(ino, chunks, size, false)
		if errors.Is(err, localdb.ErrNotFound) {
			return nil // unlinked meanwhile
		}
		return err
	})
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
