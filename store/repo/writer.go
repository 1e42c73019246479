package repo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"sync"

	"golang.org/x/sync/errgroup"

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
	return r.writeFile(ctx, rd, false)
}

// WritePrefix stores the chunks of rd that are final however the stream
// goes on: every chunk but the last, which a longer stream may cut
// elsewhere. It returns their list and total length. A file still being
// written is stored ahead this way, a prefix at a time: chunking resumes
// at the returned length, a chunk boundary of the whole file.
//
// It runs on the calling goroutine alone (chunking, hashing, sealing, one
// chunk after the other), so that a caller on a thread of low priority
// keeps all of that work at that priority.
func (r *Repo) WritePrefix(ctx context.Context, rd io.Reader) ([]tree.ChunkRef, int64, error) {
	return r.writeFile(ctx, rd, true)
}

// ResumeFile stores the file in rd whose first chunks are probably
// prefix, the chunk list WritePrefix returned for an earlier state of the
// same file. Each chunk of prefix is read and hashed again and kept while
// it matches (stored again only if the repository lost it); from the
// first mismatch on, the rest is chunked as WriteFile does. Chunk
// boundaries depend only on the bytes since the previous boundary, so a
// run of matching chunks from the start is exactly what chunking the file
// again would give. Hashing costs a fraction of chunking, compressing,
// encrypting and uploading.
func (r *Repo) ResumeFile(ctx context.Context, rd io.ReaderAt, prefix []tree.ChunkRef) ([]tree.ChunkRef, int64, error) {
	offs := make([]int64, len(prefix)+1)
	for i, c := range prefix {
		offs[i+1] = offs[i] + int64(c.Length)
	}
	// The chunks are checked on up to Workers goroutines; the prefix is
	// kept up to the first chunk that does not match.
	var mu sync.Mutex
	firstBad := len(prefix)
	mismatch := func(i int) {
		mu.Lock()
		firstBad = min(firstBad, i)
		mu.Unlock()
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(r.workers)
	for i, c := range prefix {
		mu.Lock()
		past := i > firstBad
		mu.Unlock()
		if past || gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if int(c.Length) > r.params.Max {
				mismatch(i)
				return nil
			}
			buf := r.getBuf()
			defer r.putBuf(buf)
			data := (*buf)[:c.Length]
			n, err := rd.ReadAt(data, offs[i])
			if n < len(data) {
				if err == nil || errors.Is(err, io.EOF) {
					mismatch(i) // the file is shorter now
					return nil
				}
				return fmt.Errorf("read file at %d: %w", offs[i], err)
			}
			id := r.ids.Sum(data)
			if id != c.ID {
				mismatch(i)
				return nil
			}
			// Stored again only if the repository lost it.
			return r.saveBlob(gctx, crypto.BlobData, id, data)
		})
	}
	if err := g.Wait(); err != nil {
		return nil, 0, err
	}
	if err := ctx.Err(); err != nil {
		return nil, 0, err
	}
	refs := prefix[:firstBad:firstBad]
	off := offs[firstBad]
	rest, n, err := r.WriteFile(ctx, io.NewSectionReader(rd, off, math.MaxInt64-off))
	if err != nil {
		return nil, 0, err
	}
	return append(refs, rest...), off + n, nil
}

// writeFile is WriteFile, or with prefix WritePrefix: the last chunk left
// out, and everything on the calling goroutine.
func (r *Repo) writeFile(ctx context.Context, rd io.Reader, prefix bool) ([]tree.ChunkRef, int64, error) {
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

	process := func(j job) {
		data := *j.buf
		id := r.ids.Sum(data)
		err := r.saveBlob(ctx, crypto.BlobData, id, data)
		n := len(data)
		r.putBuf(j.buf)
		if err != nil {
			fail(err)
			return
		}
		mu.Lock()
		refs[j.idx] = tree.ChunkRef{ID: id, Length: uint32(n)}
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for range r.workers {
		if prefix {
			break // on the caller's goroutine
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				process(j)
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
	// A chunk is handed to the workers once the next one is cut, so that
	// WritePrefix can leave the last one out.
	var held *[]byte
	submit := func(buf *[]byte) {
		size += int64(len(*buf))
		mu.Lock()
		idx := len(refs)
		refs = append(refs, tree.ChunkRef{})
		mu.Unlock()
		if prefix {
			process(job{idx: idx, buf: buf})
			return
		}
		select {
		case jobs <- job{idx: idx, buf: buf}:
		case <-ctx.Done():
			r.putBuf(buf)
		}
	}
	for ctx.Err() == nil {
		chunk, err := ch.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			fail(fmt.Errorf("read file: %w", err))
			break
		}
		buf := r.getBuf()
		*buf = append((*buf)[:0], chunk...)
		if held != nil {
			submit(held)
		}
		held = buf
	}
	if held != nil {
		if !prefix && ctx.Err() == nil {
			submit(held)
		} else {
			r.putBuf(held)
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
