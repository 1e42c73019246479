package repo

import (
	"sync"

	"github.com/anysync/anysync/crypto"
)

// Location is where a sealed blob lives: a byte range of a pack.
type Location struct {
	Pack   string
	Offset uint32
	Length uint32 // sealed length
}

// IndexEntry maps a blob ID to its location. These are what a commit carries
// to the server, and what a device syncs from it.
type IndexEntry struct {
	ID crypto.ID
	Location
}

// Index maps blob IDs to locations. The client keeps it in its local
// database so memory does not grow with the repository; tests use MemIndex.
type Index interface {
	Lookup(id crypto.ID) (Location, bool, error)
	Add(entries []IndexEntry) error
}

// DedupIndex is an Index with a cheaper lookup for deduplication that may
// miss entries added in the last moments. A miss there only stores a blob
// twice (the index keeps the first location); reads use Lookup.
type DedupIndex interface {
	Index
	Known(id crypto.ID) (bool, error)
}

// BatchIndex is an Index that also looks many IDs up at once (a backup
// looks up thousands of small files' blobs; one query per blob costs more
// than hashing them).
type BatchIndex interface {
	Index
	// Contains reports, for each of ids, whether the index holds it.
	Contains(ids []crypto.ID) ([]bool, error)
}

// MemIndex is an in-memory Index, safe for concurrent use.
type MemIndex struct {
	mu sync.RWMutex
	m  map[crypto.ID]Location
}

// NewMemIndex returns an empty in-memory index.
func NewMemIndex() *MemIndex { return &MemIndex{m: make(map[crypto.ID]Location)} }

// Lookup implements Index.
func (x *MemIndex) Lookup(id crypto.ID) (Location, bool, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	loc, ok := x.m[id]
	return loc, ok, nil
}

// Contains implements BatchIndex.
func (x *MemIndex) Contains(ids []crypto.ID) ([]bool, error) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	out := make([]bool, len(ids))
	for i, id := range ids {
		_, out[i] = x.m[id]
	}
	return out, nil
}

// Add implements Index.
func (x *MemIndex) Add(entries []IndexEntry) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, e := range entries {
		x.m[e.ID] = e.Location
	}
	return nil
}

// Len returns the number of entries.
func (x *MemIndex) Len() int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return len(x.m)
}
