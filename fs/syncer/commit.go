package syncer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/fs/localdb"
	"github.com/anysync/anysync/fs/node"
	"github.com/anysync/anysync/store/tree"
)

// maxCommitEntries is the most index entries one commit may carry.
const maxCommitEntries = 100000

// maxMergeRetries bounds commit attempts when other devices keep moving
// the head.
const maxMergeRetries = 5

// listBatch is how many children a tree build reads at a time.
const listBatch = 1000

// SyncOnce uploads pending files and commits one version if anything
// changed; it reports whether it committed. On a stale head it applies the
// new head (merging) and tries again.
func (s *Syncer) SyncOnce(ctx context.Context) (bool, error) {
	s.round.Lock()
	defer s.round.Unlock()
	committed, err := s.syncOnce(ctx)
	s.record(err, committed)
	return committed, err
}

func (s *Syncer) syncOnce(ctx context.Context) (bool, error) {
	s.stopGrowing()
	pending, err := s.cfg.DB.Pending(ctx)
	if err != nil {
		return false, err
	}
	if err := s.uploadAll(ctx, pending); err != nil {
		return false, err
	}
	// Data packs first: the trees below refer to them.
	if err := s.cfg.Repo.Flush(ctx); err != nil {
		return false, fmt.Errorf("upload packs: %w", err)
	}
	var committed bool
	var invs []invalidation
	err = s.cfg.FS.Locked(func() error {
		for attempt := 0; ; attempt++ {
			ok, err := s.commitLocked(ctx)
			if err == nil {
				committed = ok
				return nil
			}
			if !errors.Is(err, ErrHeadMoved) || attempt >= maxMergeRetries {
				return err
			}
			head, err := s.cfg.Remote.Head(ctx)
			if err != nil {
				return fmt.Errorf("read head to merge: %w", err)
			}
			inv, err := s.applyLocked(ctx, head)
			invs = append(invs, inv...)
			if err != nil {
				return fmt.Errorf("merge head %d: %w", head.Seq, err)
			}
		}
	})
	s.invalidate(invs)
	return committed, err
}

// uploadWorkers is how many batches of files upload at once: small files
// are latency-bound, large ones are parallel inside.
const uploadWorkers = 4

// aheadPause is the pause between passes of uploading ahead.
const aheadPause = 200 * time.Millisecond

// uploadAhead uploads the content of files that are pending and closed,
// one batch at a time, without committing: while changes go on (an
// archive being extracted), the commit that follows them then has little
// left to upload. One worker, at a lower CPU priority, takes what the
// writers leave of the CPU instead of slowing them (extracting the Go
// tree: tar slowed 1.3-1.8 s at normal priority, 0.7 s niced, and the
// sync after it shrank from 2.2 s to 0.7 s).
func (s *Syncer) uploadAhead(ctx context.Context) error {
	s.round.Lock()
	defer s.round.Unlock()
	pending, err := s.cfg.DB.Pending(ctx)
	if err != nil {
		return err
	}
	if err := s.upload(ctx, pending, true); err != nil {
		return err
	}
	s.dropGrown(pending)
	return nil
}

// uploadBatch is the most files one worker stores before it looks at
// whether to record what it stored: few enough to keep a writer waiting
// for a file in the batch briefly.
const uploadBatch = 32

// recordEvery is how long stored content may wait to be recorded. Its
// packs are stored (Repo.Flush) before rows may name its chunks; done for
// every batch, that made a pack per 32 small files (360 packs for the Go
// tree) and cost the extraction a second or more.
const recordEvery = 250 * time.Millisecond

// uploadAll stores the content of pending files, several at a time. Files
// open for writing are skipped (committed after close).
func (s *Syncer) uploadAll(ctx context.Context, pending []localdb.Node) error {
	return s.upload(ctx, pending, false)
}

// unrecorded holds the batches a pass stored and has not recorded yet;
// their files stay claimed.
type unrecorded struct {
	mu    sync.Mutex
	held  []*node.Stored
	since time.Time
}

func (u *unrecorded) add(st *node.Stored) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.held) == 0 {
		u.since = time.Now()
	}
	u.held = append(u.held, st)
}

// take returns the held batches if they were held for every (or now is
// set).
func (u *unrecorded) take(now bool, every time.Duration) []*node.Stored {
	u.mu.Lock()
	defer u.mu.Unlock()
	if !now && time.Since(u.since) < every {
		return nil
	}
	h := u.held
	u.held = nil
	return h
}

// recordStored stores the open packs, then records the batches' content;
// if the packs cannot be stored, nothing is recorded and the content
// stays pending.
func (s *Syncer) recordStored(ctx context.Context, held []*node.Stored) error {
	n := 0
	for _, st := range held {
		n += st.Len()
	}
	if n > 0 {
		if err := s.cfg.Repo.Flush(ctx); err != nil {
			for _, st := range held {
				st.Release()
			}
			return fmt.Errorf("store packs: %w", err)
		}
	}
	var err error
	for _, st := range held {
		if rerr := st.Record(ctx); rerr != nil && !errors.Is(rerr, node.ErrBusy) {
			err = errors.Join(err, rerr)
		}
	}
	return err
}

// upload stores the content of pending files: with uploadWorkers, or in
// the background with one worker at a lower CPU priority. What it stored
// is recorded every recordEvery, when a writer waits for a file it holds,
// and at the end.
func (s *Syncer) upload(parent context.Context, pending []localdb.Node, background bool) error {
	workers := uploadWorkers
	if background {
		workers = 1
	}
	// The first error cancels the other workers and the feed.
	g, ctx := errgroup.WithContext(parent)
	work := make(chan []uint64)
	var held unrecorded
	store := func(ino uint64, r node.ContentReader) ([]byte, int64, error) { return s.store(ctx, ino, r) }
	batches := (len(pending) + uploadBatch - 1) / uploadBatch
	for range min(workers, batches) {
		g.Go(func() error {
			if background {
				lowerPriority()
			}
			for inos := range work {
				st, err := s.cfg.FS.StoreContent(ctx, inos, store)
				held.add(st)
				if err != nil {
					return err
				}
				if due := held.take(s.cfg.FS.WriterWaiting(), s.recordEvery); due != nil {
					if err := s.recordStored(ctx, due); err != nil {
						return err
					}
				}
			}
			return nil
		})
	}
	// Batches are runs of the table's order, so files of one directory
	// tend to share packs.
feed:
	for b := range batches {
		run := pending[b*uploadBatch : min((b+1)*uploadBatch, len(pending))]
		inos := make([]uint64, len(run))
		for i, n := range run {
			inos[i] = n.Ino
		}
		select {
		case work <- inos:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	err := g.Wait()
	// What was stored is recorded even after a failure, under the
	// caller's context: it is uploaded once its packs are.
	if rerr := s.recordStored(parent, held.take(true, 0)); err == nil {
		err = rerr
	}
	if err == nil {
		err = parent.Err()
	}
	return err
}

// smallFile is the size up to which content is stored as one blob without
// running the chunker: the chunker never cuts a stream shorter than its
// minimum chunk (256 KiB), so the chunk list is the one WriteFile would
// make, without allocating a chunker's 8 MiB buffer per file.
const smallFile = 256 << 10

// store stores a file's content and returns its encoded chunk list. A
// file whose prefix was stored while it was written resumes after it.
func (s *Syncer) store(ctx context.Context, ino uint64, r node.ContentReader) ([]byte, int64, error) {
	if gf := s.grown.take(ino); gf != nil && len(gf.refs) > 0 {
		chunks, size, err := s.cfg.Repo.ResumeFile(ctx, r, gf.refs)
		if err != nil {
			return nil, 0, err
		}
		return localdb.EncodeChunks(fromTreeChunks(chunks)), size, nil
	}
	bp := s.bufs.Get().(*[]byte)
	defer s.bufs.Put(bp)
	buf := *bp
	n, err := io.ReadFull(r, buf)
	switch {
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		if n == 0 {
			return nil, 0, nil
		}
		id, err := s.cfg.Repo.SaveBlob(ctx, crypto.BlobData, buf[:n])
		if err != nil {
			return nil, 0, err
		}
		return localdb.EncodeChunks([]localdb.ChunkRef{{ID: id, Length: uint32(n)}}), int64(n), nil
	case err != nil:
		return nil, 0, fmt.Errorf("read content: %w", err)
	}
	chunks, size, err := s.cfg.Repo.WriteFile(ctx, io.MultiReader(bytes.NewReader(buf[:n]), r))
	if err != nil {
		return nil, 0, err
	}
	return localdb.EncodeChunks(fromTreeChunks(chunks)), size, nil
}

type dirUpdate struct {
	ino   uint64
	tree  crypto.ID
	flags localdb.Flags
}

// builder writes the trees of changed directories, bottom-up, recording
// the node updates to make once the commit succeeds.
type builder struct {
	s     *Syncer
	ctx   context.Context
	dirs  []dirUpdate
	clean []localdb.Node // entries whose change is committed
}

// commitLocked builds and commits a version of the node table. Called with
// the FS locked, so the table cannot change underneath.
func (s *Syncer) commitLocked(ctx context.Context) (bool, error) {
	root, err := s.cfg.DB.Attr(ctx, localdb.RootIno)
	if err != nil {
		return false, err
	}
	if root.Flags&localdb.FlagChanged == 0 {
		return false, nil
	}
	lh, err := s.localHead(ctx)
	if err != nil {
		return false, err
	}
	b := &builder{s: s, ctx: ctx}
	rootID, _, err := b.build(root)
	if err != nil {
		return false, err
	}
	if rootID == lh.Root && !lh.Version.IsZero() {
		// Changes that cancel out: nothing to commit, but the flags go.
		return false, s.cfg.DB.Update(ctx, func(tx *localdb.Tx) error { return b.apply(tx) })
	}
	v := &tree.Version{Root: rootID, Parent: lh.Version, Time: time.Now().UnixNano(), Device: s.cfg.Device}
	vid, err := s.cfg.Repo.SaveVersion(ctx, v)
	if err != nil {
		return false, err
	}
	if err := s.cfg.Repo.Flush(ctx); err != nil {
		return false, fmt.Errorf("upload packs: %w", err)
	}
	s.cfg.Repo.TakeNewEntries() // the database keeps them, crash-safe
	entries, err := s.cfg.DB.UncommittedBlobs(ctx, maxCommitEntries)
	if err != nil {
		return false, err
	}
	head, err := s.cfg.Remote.Commit(ctx, lh.Seq, vid, lh.Version, fromBlobEntries(entries))
	if err != nil {
		return false, fmt.Errorf("commit version %s on %d: %w", vid.Short(), lh.Seq, err)
	}
	err = s.cfg.DB.Update(ctx, func(tx *localdb.Tx) error {
		if err := b.apply(tx); err != nil {
			return err
		}
		if err := tx.MarkBlobsCommitted(entries); err != nil {
			return err
		}
		return setLocalHead(tx, localHead{Head: head, Root: rootID})
	})
	if err != nil {
		return false, fmt.Errorf("record commit %d: %w", head.Seq, err)
	}
	return true, nil
}

func (b *builder) apply(tx *localdb.Tx) error {
	for _, d := range b.dirs {
		if err := tx.SetTree(d.ino, d.tree, d.flags); err != nil {
			return err
		}
	}
	for _, n := range b.clean {
		if err := tx.SetFlags(n.Ino, n.Flags&^localdb.FlagChanged); err != nil {
			return err
		}
	}
	return nil
}

// build writes the tree of a changed directory. complete is false when a
// file below it could not be committed yet (open for writing), so the
// directory stays changed.
func (b *builder) build(dir localdb.Node) (id crypto.ID, complete bool, err error) {
	var entries []tree.Entry
	complete = true
	after := ""
	for {
		kids, err := b.s.cfg.DB.FullChildren(b.ctx, dir.Ino, after, listBatch)
		if err != nil {
			return id, false, err
		}
		for _, c := range kids {
			e, ok, kidComplete, err := b.entry(c)
			if err != nil {
				return id, false, err
			}
			complete = complete && kidComplete
			if ok {
				entries = append(entries, e)
			}
		}
		if len(kids) < listBatch {
			break
		}
		after = kids[len(kids)-1].Name
	}
	id, err = b.s.cfg.Repo.SaveTree(b.ctx, &tree.Tree{Entries: entries})
	if err != nil {
		return id, false, fmt.Errorf("save tree of %q: %w", dir.Name, err)
	}
	flags := dir.Flags
	if complete {
		flags &^= localdb.FlagChanged
	}
	b.dirs = append(b.dirs, dirUpdate{ino: dir.Ino, tree: id, flags: flags})
	return id, complete, nil
}

// entry returns the tree entry of a node; ok is false for a new file whose
// content is not uploaded yet.
func (b *builder) entry(c localdb.Node) (e tree.Entry, ok, complete bool, err error) {
	e = tree.Entry{Name: c.Name, Kind: tree.Kind(c.Kind), Mode: c.Mode & tree.ModeMask, ModTime: c.Mtime, ChangeTime: c.Ctime}
	xs, err := localdb.DecodeXattrs(c.Xattrs)
	if err != nil {
		return e, false, false, fmt.Errorf("xattrs of %q: %w", c.Name, err)
	}
	for _, x := range xs {
		e.Xattrs = append(e.Xattrs, tree.Xattr{Name: x.Name, Value: x.Value})
	}
	complete = true
	switch c.Kind {
	case localdb.KindFile:
		if c.Flags&localdb.FlagContent != 0 {
			complete = false
			if c.Flags&localdb.FlagSynced == 0 {
				return e, false, false, nil
			}
		} else if c.Flags&localdb.FlagChanged != 0 {
			b.clean = append(b.clean, c)
		}
		cs, err := localdb.DecodeChunks(c.Chunks)
		if err != nil {
			return e, false, false, fmt.Errorf("chunks of %q: %w", c.Name, err)
		}
		e.Chunks = toTreeChunks(cs)
		for _, ch := range cs {
			e.Size += uint64(ch.Length)
		}
	case localdb.KindDir:
		if c.Flags&localdb.FlagChanged != 0 || c.Tree.IsZero() {
			e.Subtree, complete, err = b.build(c)
			if err != nil {
				return e, false, false, err
			}
		} else {
			e.Subtree = c.Tree
		}
	case localdb.KindSymlink:
		e.Target = c.Target
		if c.Flags&localdb.FlagChanged != 0 {
			b.clean = append(b.clean, c)
		}
	default:
		return e, false, false, fmt.Errorf("node %d of kind %d: %w", c.Ino, c.Kind, localdb.ErrCorrupt)
	}
	return e, true, complete, nil
}
