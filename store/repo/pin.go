package repo

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/store/tree"
)

// Pinner is what pinning needs of the cache beyond Get (store/cache
// implements it): pinned blobs are kept on disk and never evicted.
type Pinner interface {
	Pin(ids ...crypto.ID) error
	Unpin(ids ...crypto.ID) error
	IsPinned(id crypto.ID) bool
	HasSealed(id crypto.ID) bool
	// PinnedOnDisk reports whether a pinned blob is in a durable copy of
	// its own: what a Get of it makes (a cached copy may not be one).
	PinnedOnDisk(id crypto.ID) bool
}

// ErrNoPinning means the repository's cache cannot pin (or there is none).
var ErrNoPinning = errors.New("this cache cannot pin blobs")

// pinFetchers bounds parallel downloads while pinning.
const pinFetchers = 4

func (r *Repo) pinner() (Pinner, error) {
	p, ok := r.cache.(Pinner)
	if !ok || r.cache == nil {
		return nil, ErrNoPinning
	}
	return p, nil
}

// Pin keeps the chunks on local disk for good: they are marked pinned,
// then the ones without a durable copy yet are got (several at once):
// downloaded, or copied out of the cache's segments. progress,
// if set, is called with bytes done and total as chunks arrive.
func (r *Repo) Pin(ctx context.Context, chunks []tree.ChunkRef, progress func(done, total int64)) error {
	p, err := r.pinner()
	if err != nil {
		return err
	}
	seen := make(map[crypto.ID]struct{}, len(chunks))
	var ids []crypto.ID
	var unique, todo []tree.ChunkRef
	var total int64
	for _, c := range chunks {
		if _, dup := seen[c.ID]; dup {
			continue
		}
		seen[c.ID] = struct{}{}
		ids = append(ids, c.ID)
		unique = append(unique, c)
		total += int64(c.Length)
	}
	if err := p.Pin(ids...); err != nil {
		return fmt.Errorf("pin %d chunks: %w", len(ids), err)
	}
	// Cached chunks are got too when their copy is not a durable one
	// (a segment's): the Get makes one, locally.
	for _, c := range unique {
		if !p.PinnedOnDisk(c.ID) {
			todo = append(todo, c)
		}
	}
	var done atomic.Int64
	done.Store(total)
	for _, c := range todo {
		done.Add(-int64(c.Length))
	}
	if progress != nil {
		progress(done.Load(), total)
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		firstErr error
		next     = make(chan tree.ChunkRef)
	)
	for range min(pinFetchers, len(todo)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range next {
				if _, err := r.LoadBlob(ctx, crypto.BlobData, c.ID); err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = fmt.Errorf("download chunk %s: %w", c.ID.Short(), err)
					}
					mu.Unlock()
					continue
				}
				d := done.Add(int64(c.Length))
				if progress != nil {
					mu.Lock()
					progress(d, total)
					mu.Unlock()
				}
			}
		}()
	}
	for _, c := range todo {
		if ctx.Err() != nil {
			break
		}
		next <- c
	}
	close(next)
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

// Unpin makes the chunks evictable again.
func (r *Repo) Unpin(chunks []tree.ChunkRef) error {
	p, err := r.pinner()
	if err != nil {
		return err
	}
	ids := make([]crypto.ID, len(chunks))
	for i, c := range chunks {
		ids[i] = c.ID
	}
	if err := p.Unpin(ids...); err != nil {
		return fmt.Errorf("unpin %d chunks: %w", len(ids), err)
	}
	return nil
}

// ChunkState says how much of a chunk list is on local disk and pinned.
type ChunkState struct {
	CachedBytes    int64
	Cached, Pinned int // chunks
}

// CacheState reports how much of a chunk list is on local disk and pinned.
func (r *Repo) CacheState(chunks []tree.ChunkRef) (ChunkState, error) {
	p, err := r.pinner()
	if err != nil {
		return ChunkState{}, err
	}
	var s ChunkState
	for _, c := range chunks {
		if p.HasSealed(c.ID) {
			s.Cached++
			s.CachedBytes += int64(c.Length)
		}
		if p.IsPinned(c.ID) {
			s.Pinned++
		}
	}
	return s, nil
}
