package syncer

import (
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/anysync/anysync/fs/localdb"
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
	mu    sync.Mutex
	files map[uint64]*grownFile
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

// growAhead stores ahead of the files being written, between commits.
func (s *Syncer) growAhead(ctx context.Context) error {
	s.round.Lock()
	defer s.round.Unlock()
	return s.storeGrowing(ctx)
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
		if err != nil {
			return err
		}
		refs, covered, err := s.cfg.Repo.WritePrefix(ctx, io.NewSectionReader(f, gf.covered, n))
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
