package syncer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"

	"github.com/anysync/anysync/fs/localdb"
	"github.com/anysync/anysync/store/repo"
	"github.com/anysync/anysync/store/tree"
)

// growStep is how much a file open for writing must have grown since its
// last prefix was stored before another is: large files start uploading
// while they are written, in steps large enough that the last chunk, which
// each step leaves for the next, is little work done twice.
const growStep = 32 << 20

// growPass bounds the bytes one pass stores ahead, so that a pass ends
// soon and the closed files and the commit are not held up behind it.
const growPass = 256 << 20

// growing holds what was stored ahead of files still being written: the
// chunk lists of their prefixes. The prefix is a guess: the file may be
// changed anywhere before it closes, so the upload after its close checks
// every chunk of it again (Repo.ResumeFile).
type growing struct {
	mu     sync.Mutex
	files  map[uint64]*grownFile
	cancel context.CancelFunc // stops the pass in flight; under mu

	pass sync.Mutex // held by the pass in flight
}

type grownFile struct {
	refs    []tree.ChunkRef
	covered int64 // bytes the refs cover: a chunk boundary of the file
}

// take removes and returns the prefix stored ahead of ino, if any.
func (g *growing) take(ino uint64) *grownFile {
	g.mu.Lock()
	defer g.mu.Unlock()
	gf := g.files[ino]
	delete(g.files, ino)
	return gf
}

// dropGrown forgets the prefixes of files neither being written nor
// pending any more (deleted, or stored by other means).
func (s *Syncer) dropGrown(pending []localdb.Node) {
	writing := s.cfg.FS.WritingStaged()
	keep := make(map[uint64]bool, len(writing)+len(pending))
	for _, w := range writing {
		keep[w.Ino] = true
	}
	for _, n := range pending {
		keep[n.Ino] = true
	}
	s.grown.mu.Lock()
	defer s.grown.mu.Unlock()
	for ino := range s.grown.files {
		if !keep[ino] {
			delete(s.grown.files, ino)
		}
	}
}

// growAhead stores ahead of the files being written. It does not hold up
// a commit round: the round stops it (stopGrowing).
func (s *Syncer) growAhead(parent context.Context) error {
	if !s.grown.pass.TryLock() {
		return nil // a pass is still running
	}
	defer s.grown.pass.Unlock()
	ctx, cancel := context.WithCancel(parent)
	s.grown.mu.Lock()
	s.grown.cancel = cancel
	s.grown.mu.Unlock()
	defer func() {
		s.grown.mu.Lock()
		s.grown.cancel = nil
		s.grown.mu.Unlock()
		cancel()
	}()
	err := s.storeGrowing(ctx)
	if ctx.Err() != nil && parent.Err() == nil {
		return nil // stopped for a commit round
	}
	return err
}

// stopGrowing stops a pass of storing ahead and waits for it to end: the
// commit round that calls it needs the CPU, and a file it uploads takes
// its prefix as the last finished pass left it.
func (s *Syncer) stopGrowing() {
	s.grown.mu.Lock()
	if c := s.grown.cancel; c != nil {
		c()
	}
	s.grown.mu.Unlock()
	s.grown.pass.Lock() // the pass has ended
	defer s.grown.pass.Unlock()
}

// storeGrowing stores the new prefix of each file open for writing that
// grew by growStep since the last one, up to growPass bytes per pass, on a
// thread of low priority: the writers of those files come first.
func (s *Syncer) storeGrowing(ctx context.Context) error {
	done := make(chan error, 1)
	go func() {
		lowerPriority()
		done <- s.storeGrowingNow(ctx)
	}()
	return <-done
}

func (s *Syncer) storeGrowingNow(ctx context.Context) error {
	writing := s.cfg.FS.WritingStaged()
	budget := int64(growPass)
	for _, w := range writing {
		if budget <= 0 || ctx.Err() != nil {
			break
		}
		s.grown.mu.Lock()
		if s.grown.files == nil {
			s.grown.files = make(map[uint64]*grownFile)
		}
		gf := s.grown.files[w.Ino]
		if gf == nil {
			gf = &grownFile{}
		}
		s.grown.mu.Unlock()
		if w.Size-gf.covered < s.growStep {
			continue
		}
		n := min(w.Size-gf.covered, budget)
		budget -= n
		f, err := s.cfg.FS.OpenStaged(w)
		if errors.Is(err, fs.ErrNotExist) {
			continue // closed and uploaded, or deleted, since it was listed
		}
		if err != nil {
			return err
		}
		refs, covered, err := s.cfg.Repo.WritePrefix(repo.CallerUploads(ctx), io.NewSectionReader(f, gf.covered, n))
		_ = f.Close()
		if err != nil {
			return fmt.Errorf("store ahead of %d: %w", w.Ino, err)
		}
		next := &grownFile{refs: append(gf.refs[:len(gf.refs):len(gf.refs)], refs...), covered: gf.covered + covered}
		s.grown.mu.Lock()
		s.grown.files[w.Ino] = next
		s.grown.mu.Unlock()
	}
	return nil
}
