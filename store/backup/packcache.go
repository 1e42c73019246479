//go:build unix

package backup

import (
	"bytes"
	"container/list"
	"context"
	"fmt"
	"io"
	"sync"

	"github.com/anysync/anysync/store/objstore"
)

// packCache serves reads that touch many blobs of few packs, as a restore
// does: a pack read from wholeAfter times is downloaded whole, and later
// reads of it come from memory. Blobs sit in random order inside a pack,
// so a restore of a folder needs most of each of its packs, and one
// download of 16 MiB beats thousands of small range requests.
//
// Memory is bounded by maxBytes (least recently used packs go first). A
// pack that was evicted is never downloaded whole again, so a working set
// larger than the cache costs no more than plain range reads.
type packCache struct {
	objstore.ObjectStore
	maxBytes   int64
	wholeAfter int

	mu    sync.Mutex
	packs map[string]*cachedPack
	lru   list.List // of *cachedPack, most recent first
	used  int64
}

type cachedPack struct {
	name    string
	hits    int
	loading chan struct{} // non-nil while downloading; closed when done
	data    []byte
	elem    *list.Element
	evicted bool // was cached once: range reads from now on
}

func newPackCache(s objstore.ObjectStore, maxBytes int64, wholeAfter int) *packCache {
	return &packCache{ObjectStore: s, maxBytes: maxBytes, wholeAfter: wholeAfter, packs: map[string]*cachedPack{}}
}

// GetRange implements objstore.ObjectStore.
func (c *packCache) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	c.mu.Lock()
	p := c.packs[name]
	if p == nil {
		p = &cachedPack{name: name}
		c.packs[name] = p
	}
	for p.loading != nil {
		ch := p.loading
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		c.mu.Lock()
	}
	if p.data != nil {
		c.lru.MoveToFront(p.elem)
		data := p.data
		c.mu.Unlock()
		return sliceRange(name, data, off, length)
	}
	p.hits++
	if p.hits < c.wholeAfter || p.evicted {
		c.mu.Unlock()
		return c.ObjectStore.GetRange(ctx, name, off, length)
	}
	p.loading = make(chan struct{})
	c.mu.Unlock()

	data, err := readAll(ctx, c.ObjectStore, name)

	c.mu.Lock()
	close(p.loading)
	p.loading = nil
	if err == nil && int64(len(data)) <= c.maxBytes/2 {
		p.data = data
		p.elem = c.lru.PushFront(p)
		c.used += int64(len(data))
		for c.used > c.maxBytes {
			old := c.lru.Remove(c.lru.Back()).(*cachedPack)
			c.used -= int64(len(old.data))
			old.data, old.elem, old.evicted = nil, nil, true
		}
	} else {
		p.evicted = true // too large to cache, or failed: range reads
	}
	c.mu.Unlock()
	if err != nil {
		return c.ObjectStore.GetRange(ctx, name, off, length)
	}
	return sliceRange(name, data, off, length)
}

// sliceRange serves a range of a cached object with the ObjectStore contract.
func sliceRange(name string, data []byte, off, length int64) (io.ReadCloser, error) {
	size := int64(len(data))
	if length < 0 {
		length = size - off
	}
	if off < 0 || length < 0 || off > size || length > size-off {
		return nil, fmt.Errorf("get %s range %d+%d of %d bytes: %w", name, off, length, size, objstore.ErrOutOfRange)
	}
	return io.NopCloser(bytes.NewReader(data[off : off+length])), nil
}
