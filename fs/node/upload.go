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

// ContentReader reads a file's staged content, as a stream or at offsets.
type ContentReader interface {
	io.Reader
	io.ReaderAt
}

// StoreFunc stores the staged content of file ino and returns the encoded
// chunk list and size it stored.
type StoreFunc func(ino uint64, r ContentReader) (chunks []byte, size int64, err error)

// StagedFile is a file open for writing whose content is in a staging
// file: what can be stored ahead of its close.
type StagedFile struct {
	Ino  uint64
	Size int64
	name string
}

// WritingStaged lists the files open for writing whose content is in a
// staging file, with their current size.
func (f *FS) WritingStaged() []StagedFile {
	f.omu.Lock()
	ofs := make([]*openFile, 0, len(f.open))
	for _, of := range f.open {
		if of.writers > 0 {
			ofs = append(ofs, of)
		}
	}
	f.omu.Unlock()
	var out []StagedFile
	for _, of := range ofs {
		of.mu.RLock()
		if of.stagingName != "" {
			out = append(out, StagedFile{Ino: of.ino, Size: of.size, name: of.stagingName})
		}
		of.mu.RUnlock()
	}
	return out
}

// OpenStaged opens a file's staging file for reading. Its writers go on
// writing: whatever is read from it may change before the file closes,
// so what is stored from it must be checked again then.
func (f *FS) OpenStaged(sf StagedFile) (*os.File, error) {
	file, err := os.Open(f.stagingPath(sf.name))
	if err != nil {
		return nil, fmt.Errorf("open staging of %d: %w", sf.Ino, err)
	}
	return file, nil
}

// Stored is content that StoreContent stored and that is not recorded
// yet. Its files stay claimed (writers opening them wait) until Record or
// Release, so their content cannot change before it is recorded.
type Stored struct {
	f       *FS
	claimed []uint64
	done    []storedContent
	busy    bool // some files were skipped: open for writing or claimed
}

type storedContent struct {
	ino    uint64
	chunks []byte
	size   int64
}

// Len returns the number of files whose content was stored.
func (st *Stored) Len() int { return len(st.done) }

// StoreContent claims pending files and hands their staged content to
// store, which returns the encoded chunk list and size it stored. Readers
// go on; writers wait while a file is claimed. Files open for writing or
// claimed already are skipped (Record then returns ErrBusy), as are files
// no longer pending. On an error the content stored before it is kept in
// the result, which the caller records or releases either way.
//
// What store stored must be durable (the repository's open packs uploaded
// and indexed) before the caller records it: a row must never name chunks
// that a crash could lose with an unsent pack.
func (f *FS) StoreContent(ctx context.Context, inos []uint64, store StoreFunc) (*Stored, error) {
	st := &Stored{f: f, claimed: make([]uint64, 0, len(inos))}
	f.omu.Lock()
	for _, ino := range inos {
		if of := f.open[ino]; (of != nil && of.writers > 0) || f.busy[ino] != 0 {
			st.busy = true
			continue
		}
		f.busy[ino] = claimStored
		st.claimed = append(st.claimed, ino)
	}
	f.omu.Unlock()

	rows, err := f.db.GetMany(ctx, st.claimed)
	if err != nil {
		return st, err
	}
	st.done = make([]storedContent, 0, len(st.claimed))
	for _, ino := range st.claimed {
		n, ok := rows[ino]
		if !ok {
			continue // gone
		}
		chunks, size, ok, err := f.storeContent(ctx, n, store)
		if err != nil {
			return st, err
		}
		if ok {
			st.done = append(st.done, storedContent{ino, chunks, size})
		}
	}
	return st, nil
}

// Release lets go of the files without recording anything: their content
// stays pending.
func (st *Stored) Release() {
	st.done = nil
	st.release()
}

func (st *Stored) release() {
	f := st.f
	f.omu.Lock()
	for _, ino := range st.claimed {
		delete(f.busy, ino)
	}
	st.claimed = nil
	f.cond.Broadcast()
	f.omu.Unlock()
}

// Record records the stored content as the files' committed content (the
// closed files in one transaction: a transaction per file cost more than
// storing a small file) and lets go of the files. It returns ErrBusy if
// StoreContent skipped files and nothing failed.
func (st *Stored) Record(ctx context.Context) error {
	defer st.release()
	f := st.f
	// From here on every open of these files waits until they are let go:
	// an open reading a row just before it changes would go on believing
	// the row records pending content, and the writes it let through
	// later would never be marked pending.
	type openRecord struct {
		storedContent
		of *openFile
	}
	var batch []storedContent
	var opened []openRecord
	f.omu.Lock()
	for _, d := range st.done {
		f.busy[d.ino] = claimRecording
		if of := f.open[d.ino]; of != nil {
			opened = append(opened, openRecord{d, of})
		} else {
			batch = append(batch, d)
		}
	}
	f.omu.Unlock()
	st.done = nil
	var rerr error
	for _, o := range opened {
		// The row changes under the open file's lock, so that it never
		// reads the row halfway. Open and read from: it keeps its
		// staging file, and the next write marks the row pending again.
		// Closed since, or opened and not read yet: the staging file
		// goes, and whoever reads the row next reads the recorded one.
		o.of.mu.Lock()
		keep := o.of.staging != nil || o.of.src != nil
		if keep {
			o.of.marked = false
		}
		drops, err := f.setContents(ctx, []storedContent{o.storedContent}, !keep)
		o.of.mu.Unlock()
		for _, name := range drops {
			f.removeStaging(name)
		}
		rerr = errors.Join(rerr, err)
	}
	if f.hooks.recording != nil {
		f.hooks.recording()
	}
	drops, err := f.setContents(ctx, batch, true)
	rerr = errors.Join(rerr, err)
	for _, name := range drops {
		f.removeStaging(name)
	}
	if rerr != nil {
		return rerr
	}
	if st.busy {
		return ErrBusy
	}
	return nil
}

// WriterWaiting reports whether a writer is waiting for a claimed file,
// so that whoever holds stored content records it soon.
func (f *FS) WriterWaiting() bool { return f.waiting.Load() > 0 }

// storeContent stores the pending content of a node read while it is
// claimed; ok is false when it has none (committed meanwhile).
func (f *FS) storeContent(ctx context.Context, n localdb.Node, store StoreFunc) (chunks []byte, size int64, ok bool, err error) {
	ino := n.Ino
	if n.Flags&localdb.FlagContent == 0 {
		return nil, 0, false, nil
	}
	if n.Staging == "" {
		chunks, size, err = store(ino, bytes.NewReader(n.Inline))
	} else {
		sf, oerr := os.Open(f.stagingPath(n.Staging))
		if errors.Is(oerr, os.ErrNotExist) && f.stagingGone(ctx, n) {
			return nil, 0, false, nil // deleted since the batch was read
		}
		if oerr != nil {
			return nil, 0, false, fmt.Errorf("open staging of %d: %w", ino, oerr)
		}
		chunks, size, err = store(ino, sf)
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

// setContents records the stored content of nodes in one transaction;
// dropStaging also forgets their staging files, which it returns for
// removal once no open file can read them. Nodes unlinked meanwhile are
// skipped.
func (f *FS) setContents(ctx context.Context, ds []storedContent, dropStaging bool) ([]string, error) {
	if len(ds) == 0 {
		return nil, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var drops []string
	err := f.db.Update(ctx, func(tx *localdb.Tx) error {
		drops = drops[:0]
		for _, d := range ds {
			drop, err := tx.SetContent(d.ino, d.chunks, d.size, dropStaging)
			if errors.Is(err, localdb.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			if drop != "" {
				drops = append(drops, drop)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return drops, nil
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
