package daemon

import (
	"context"
	"sync"

	lru "github.com/hashicorp/golang-lru/v2"

	"github.com/anysync/anysync/crypto"
)

// memCache is a memory LRU of decrypted blobs where concurrent readers of
// one blob share a fetch. It stands in for the store's two-tier chunk cache
// (memory and disk) where that is not wired in.
type memCache struct {
	mu       sync.Mutex
	lru      *lru.Cache[crypto.ID, []byte]
	bytes    int64
	limit    int64
	inflight map[crypto.ID]*fetch
}

type fetch struct {
	done  chan struct{}
	plain []byte
	err   error
}

func newMemCache(limit int64) *memCache {
	c := &memCache{limit: limit, inflight: map[crypto.ID]*fetch{}}
	// Entries are bounded by bytes below; the count bound only caps the
	// bookkeeping.
	c.lru, _ = lru.NewWithEvict(1<<20, func(_ crypto.ID, v []byte) { c.bytes -= int64(len(v)) })
	return c
}

// Get implements repo.Cache.
func (c *memCache) Get(ctx context.Context, id crypto.ID, get func(context.Context) ([]byte, error), open func([]byte) ([]byte, error)) ([]byte, error) {
	c.mu.Lock()
	if v, ok := c.lru.Get(id); ok {
		c.mu.Unlock()
		return v, nil
	}
	if f, ok := c.inflight[id]; ok {
		c.mu.Unlock()
		select {
		case <-f.done:
			return f.plain, f.err
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	f := &fetch{done: make(chan struct{})}
	c.inflight[id] = f
	c.mu.Unlock()

	sealed, err := get(ctx)
	if err == nil {
		f.plain, err = open(sealed)
	}
	f.err = err

	c.mu.Lock()
	delete(c.inflight, id)
	if err == nil {
		c.lru.Add(id, f.plain)
		c.bytes += int64(len(f.plain))
		for c.bytes > c.limit && c.lru.Len() > 1 {
			c.lru.RemoveOldest()
		}
	}
	c.mu.Unlock()
	close(f.done)
	return f.plain, f.err
}

// Usage returns the bytes cached and the limit.
func (c *memCache) Usage() (used, limit int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.bytes, c.limit
}
