package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/store/chunker"
	"github.com/anysync/anysync/store/tree"
)

// WriteFile chunks rd, stores every chunk the repository does not hold yet,
// and returns the file's complete chunk list and size.
//
// The chunk list always names every chunk of the file, including chunks that
// were already stored: dedup skips the upload, never the reference. (The
// original client dropped known chunks from large files' lists and so
// corrupted restores.)
//
// Chunks are hashed and sealed on Workers goroutines while the next ones are
// read; memory stays at about 2×Workers chunk buffers plus the open packs.
func (r *Repo) WriteFile(ctx context.Context, rd io.Reader) ([]tree.ChunkRef, int64, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	type job struct {
		idx int
		buf *[]byte
	}
	jobs := make(chan job, r.workers)
	var (
		mu       sync.Mutex
		refs     []tree.ChunkRef
		firstErr error
	)
	fail := func(err error) {
		mu.Lock()
		if firstErr == nil {
			firstErr = err
			cancel()
		}
		mu.Unlock()
	}

	var wg sync.WaitGroup
	for range r.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				data := *j.buf
				id := r.ids.Sum(data)
				err := r.saveBlob(ctx, crypto.BlobData, id, data)
				n := len(data)
				r.putBuf(j.buf)
				if err != nil {
					fail(err)
					continue
				}
				mu.Lock()
				refs[j.idx] = tree.ChunkRef{ID: id, Length: uint32(n)}
				mu.Unlock()
			}
		}()
	}

	var size int64
	var ch *chunker.Chunker
	select {
	case ch = <-r.chunkers:
		ch.Reset(rd)
	default:
		ch = chunker.New(rd, r.gear, r.params)
	}
	defer func() {
		ch.Reset(nil)
		select {
		case r.chunkers <- ch:
		default:
		}
	}()
	for idx := 0; ; idx++ {
		if ctx.Err() != nil {
			break
		}
		chunk, err := ch.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fail(fmt.Errorf("read file: %w", err))
			break
		}
		size += int64(len(chunk))
		buf := r.getBuf()
		*buf = append((*buf)[:0], chunk...)
		mu.Lock()
		refs = append(refs, tree.ChunkRef{})
		mu.Unlock()
		select {
		case jobs <- job{idx: idx, buf: buf}:
		case <-ctx.Done():
			r.putBuf(buf)
		}
	}
	close(jobs)
	wg.Wait()

	if firstErr != nil {
		return nil, 0, firstErr
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	return refs, size, nil
}
