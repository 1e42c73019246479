package repo

import (
	"context"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/store/tree"
)

// readAheadChunks is how many chunks past a sequential read are fetched in
// the background: with 1 MiB average chunks, a few MiB in flight keeps a
// link busy without flooding the cache.
const readAheadChunks = 4

// FileReader serves ReadAt from a chunk list, fetching only the chunks a read
// covers, several in parallel, and reading ahead on sequential access.
// It is safe for concurrent use.
type FileReader struct {
	repo   *Repo
	ctx    context.Context
	chunks []tree.ChunkRef
	starts []int64 // starts[i] is the file offset of chunks[i]
	size   int64

	mu      sync.Mutex
	nextOff int64 // where a sequential reader would read next
	ahead   int   // chunks before this index were already read ahead
}

// NewReader returns a reader of the file with the given chunk list. ctx
// bounds every fetch the reader makes, including read-ahead.
func (r *Repo) NewReader(ctx context.Context, chunks []tree.ChunkRef) *FileReader {
	starts := make([]int64, len(chunks))
	var off int64
	for i, c := range chunks {
		starts[i] = off
		off += int64(c.Length)
	}
	return &FileReader{repo: r, ctx: ctx, chunks: chunks, starts: starts, size: off}
}

// Size returns the file size.
func (f *FileReader) Size() int64 { return f.size }

// ReadAt implements io.ReaderAt.
func (f *FileReader) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read at %d: negative offset", off)
	}
	if off >= f.size {
		return 0, io.EOF
	}
	end := off + int64(len(p))
	if end > f.size {
		end = f.size
	}
	first := sort.Search(len(f.starts), func(i int) bool { return f.starts[i] > off }) - 1
	last := sort.Search(len(f.starts), func(i int) bool { return f.starts[i] >= end }) - 1

	f.readAhead(off, end, last)

	var (
		wg   sync.WaitGroup
		errs = make([]error, last-first+1)
	)
	for i := first; i <= last; i++ {
		wg.Add(1)
		copyChunk := func(i int) {
			defer wg.Done()
			plain, err := f.chunk(i)
			if err != nil {
				errs[i-first] = err
				return
			}
			cs := f.starts[i]
			lo := max(off, cs)
			hi := min(end, cs+int64(len(plain)))
			copy(p[lo-off:hi-off], plain[lo-cs:hi-cs])
		}
		if i == last {
			copyChunk(i) // the last (often only) chunk on this goroutine
		} else {
			go copyChunk(i)
		}
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return 0, err
		}
	}
	n := int(end - off)
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// chunk returns chunk i's verified plaintext.
func (f *FileReader) chunk(i int) ([]byte, error) {
	c := f.chunks[i]
	plain, err := f.repo.LoadBlob(f.ctx, crypto.BlobData, c.ID)
	if err != nil {
		return nil, fmt.Errorf("read chunk %d of file: %w", i, err)
	}
	if len(plain) != int(c.Length) {
		return nil, fmt.Errorf("chunk %d (%s) is %d bytes, tree says %d: %w", i, c.ID.Short(), len(plain), c.Length, ErrCorrupt)
	}
	return plain, nil
}

// readAhead starts background fetches of the chunks after last when the
// read at off continues the previous one.
func (f *FileReader) readAhead(off, end int64, last int) {
	f.mu.Lock()
	sequential := off == f.nextOff
	f.nextOff = end
	from := max(last+1, f.ahead)
	to := min(last+1+readAheadChunks, len(f.chunks))
	if !sequential || from >= to || f.repo.cache == nil {
		f.mu.Unlock()
		return
	}
	f.ahead = to
	f.mu.Unlock()
	for i := from; i < to; i++ {
		go func() { _, _ = f.chunk(i) }() // warms the cache; a failure shows when the chunk is read
	}
}
