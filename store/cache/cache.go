// Package cache is the client's chunk cache: a memory tier of decrypted
// blobs and a disk tier of sealed blobs (as stored), both LRU and bounded in
// bytes, with pinned blobs exempt from disk eviction. Concurrent reads of one
// blob fetch it once. docs/cache.md describes the layout and the policies.
package cache

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/gofrs/flock"
	"github.com/hashicorp/golang-lru/v2/simplelru"

	"github.com/anysync/anysync/crypto"
)

var (
	// ErrLocked is returned (wrapped, naming the folder) by Open when
	// another Cache, in this process or another, has the folder open.
	ErrLocked = errors.New("cache folder is in use by another anysync process")
	// ErrClosed is returned by methods of a closed Cache.
	ErrClosed = errors.New("cache is closed")
	// ErrNotCached is returned (wrapped) by a Get with a nil fetch for a
	// blob in neither tier: how to read only what is local (offline).
	ErrNotCached = errors.New("blob not cached")
)

// Options bounds the two tiers. Zero disables a tier, except that pinned
// blobs are always kept on disk.
type Options struct {
	MemBytes  int64 // memory tier: decrypted blobs
	DiskBytes int64 // disk tier: sealed blobs, pinned ones included
	// SegmentBytes, when positive, turns on the disk tier's segment
	// files: unpinned blobs of at most 1/8 of a segment are appended to
	// segments of about this size (at most 1/32 of DiskBytes) instead of
	// getting a file each. docs/cache.md says why.
	SegmentBytes int64
}

// Stats is a snapshot of the cache's state and counters.
type Stats struct {
	MemBytes  int64 // plaintext bytes in the memory tier
	MemItems  int
	MemLimit  int64
	DiskBytes int64 // sealed bytes on disk, pinned ones included, segment files whole
	DiskItems int
	Segments  int // segment files
	DiskLimit int64
	// PinnedBytes/PinnedItems count the pinned blobs present on disk
	// (included in DiskBytes/DiskItems). PinnedBytes may exceed DiskLimit:
	// see OverLimit.
	PinnedBytes int64
	PinnedItems int
	Pins        int // pinned blob IDs, present on disk or not

	Hits            uint64 // Gets answered from memory
	Misses          uint64 // Gets not answered from memory
	DiskHits        uint64 // misses answered from the disk tier
	Fetches         uint64 // calls of a Get's fetch function
	Corrupt         uint64 // disk copies dropped because open failed on them
	Evictions       uint64 // blobs evicted from disk
	DiskWriteErrors uint64 // blobs that could not be written to disk
	PinLogDamaged   int    // pin log records found damaged (skipped) at Open
}

// OverLimit reports whether pinned data alone exceeds the disk limit, so
// the caller can warn: nothing unpinned can be cached on disk then.
func (s Stats) OverLimit() bool { return s.PinnedBytes > s.DiskLimit }

// Cache is the chunk cache. All methods are safe for concurrent use.
type Cache struct {
	dir   string
	lock  *flock.Flock
	blobs string // dir/blobs
	tmp   string // dir/tmp

	mu     sync.Mutex
	closed bool

	memLimit int64
	mem      *simplelru.LRU[crypto.ID, []byte]
	memBytes int64

	diskLimit   int64
	disk        *simplelru.LRU[crypto.ID, fileEntry] // unpinned blob files
	pinnedDisk  map[crypto.ID]int64                  // pinned blob files → size
	writing     map[crypto.ID]struct{}               // blobs being written in place
	diskBytes   int64                                // both
	pinnedBytes int64
	pins        map[crypto.ID]struct{}
	pinLog      *pinLog

	lastStamp time.Time // of the last use written to a file time

	// The segment tier (segments.go). wmu serializes appends; the rest is
	// guarded by mu.
	segDir   string
	segBytes int64
	wmu      sync.Mutex
	segs     []*segment // oldest first
	segIndex map[crypto.ID]segLoc
	cur      [2]*segment // appended to, per appendKind; nil until the next blob
	nextSeq  uint64
	// testAppending, set by tests only, runs while an append writes its
	// record without holding mu.
	testAppending func()

	flights map[crypto.ID]*flight
	wg      sync.WaitGroup // running flights
	bufs    sync.Pool      // *[]byte for reading disk copies

	stats Stats // counters only; sizes are computed in Stats()
}

// fileEntry is an unpinned blob file: its size and last use.
type fileEntry struct {
	size int64
	used time.Time
}

// flight is one load of a blob, shared by every Get waiting for it.
type flight struct {
	done    chan struct{}
	cancel  context.CancelFunc
	waiters int
	val     []byte
	err     error
}

// Open opens (creating it 0700 if needed) the cache in dir and takes an
// exclusive lock on dir/lock for as long as it is open. The disk tier of an
// earlier run is kept, in its old LRU order, and so are the pins.
func Open(dir string, opts Options) (*Cache, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open cache %s: %w", dir, err)
	}
	lk := flock.New(filepath.Join(dir, "lock"), flock.SetPermissions(0o600))
	locked, err := lk.TryLock()
	if err != nil {
		return nil, fmt.Errorf("open cache %s: lock: %w", dir, err)
	}
	if !locked {
		_ = lk.Close()
		return nil, fmt.Errorf("open cache %s: %w", dir, ErrLocked)
	}
	c, err := open(dir, lk, opts)
	if err != nil {
		_ = lk.Unlock()
		_ = lk.Close()
		return nil, fmt.Errorf("open cache %s: %w", dir, err)
	}
	return c, nil
}

func open(dir string, lk *flock.Flock, opts Options) (*Cache, error) {
	mem, err := simplelru.NewLRU[crypto.ID, []byte](math.MaxInt, nil)
	if err != nil {
		return nil, err
	}
	disk, err := simplelru.NewLRU[crypto.ID, fileEntry](math.MaxInt, nil)
	if err != nil {
		return nil, err
	}
	c := &Cache{
		dir:        dir,
		lock:       lk,
		blobs:      filepath.Join(dir, "blobs"),
		tmp:        filepath.Join(dir, "tmp"),
		memLimit:   max(opts.MemBytes, 0),
		mem:        mem,
		diskLimit:  max(opts.DiskBytes, 0),
		disk:       disk,
		pinnedDisk: make(map[crypto.ID]int64),
		writing:    make(map[crypto.ID]struct{}),
		flights:    make(map[crypto.ID]*flight),
		segDir:     filepath.Join(dir, "segments"),
		segBytes:   max(opts.SegmentBytes, 0),
		segIndex:   make(map[crypto.ID]segLoc),
	}
	// Leftovers of an interrupted write are garbage: we hold the lock, so
	// no one else is writing.
	if err := os.RemoveAll(c.tmp); err != nil {
		return nil, fmt.Errorf("clear temporary files: %w", err)
	}
	for _, d := range []string{c.blobs, c.tmp} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	if leftovers, err := filepath.Glob(filepath.Join(dir, "pins.tmp*")); err == nil {
		for _, p := range leftovers {
			_ = os.Remove(p)
		}
	}
	log, pins, info, err := openPinLog(filepath.Join(dir, "pins"))
	if err != nil {
		return nil, err
	}
	c.pinLog, c.pins = log, pins
	c.stats.PinLogDamaged = info.damaged
	if err := c.scanDisk(); err != nil {
		_ = log.close()
		return nil, err
	}
	if err := c.scanSegments(); err != nil {
		c.closeSegmentsLocked()
		_ = log.close()
		return nil, err
	}
	c.evictLocked()
	return c, nil
}

// Close waits for running fetches (canceling them), closes the pin log and
// releases the lock. Returned slices stay valid.
func (c *Cache) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	for id, f := range c.flights {
		f.cancel()
		delete(c.flights, id)
	}
	c.mu.Unlock()
	c.wg.Wait()

	c.wmu.Lock() // appends in progress end first
	defer c.wmu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closeSegmentsLocked()
	err := c.pinLog.close()
	c.mem.Purge()
	c.memBytes = 0
	if uerr := c.lock.Unlock(); uerr != nil && err == nil {
		err = fmt.Errorf("unlock cache %s: %w", c.dir, uerr)
	}
	_ = c.lock.Close()
	return err
}

// Get returns the plaintext of blob id: from memory; else the sealed bytes
// from disk, opened with open; else fetch(ctx), whose sealed bytes are
// written to disk and opened. The plaintext is then kept in memory. A
// pinned blob missing from disk is fetched even if memory has it, so
// getting a pinned blob always leaves it on disk. With a nil fetch, Get
// reads only the cache and fails with ErrNotCached.
//
// The returned slice is shared with the cache and other callers: it must
// not be modified. (Copying a 1 MiB chunk per hit would cost more than the
// rest of a hit; the read path copies into the caller's buffer anyway.)
//
// Concurrent Gets of one id share a single load, run with the fetch and
// open of the Get that started it. A Get whose ctx ends returns ctx's error
// at once; the load is canceled when no Get waits for it any more. open
// authenticates: when it fails on the disk copy, that copy is dropped and
// the blob fetched again, once; when it fails on fetched data, nothing is
// cached. Errors of fetch and open are returned (wrapped) and not cached.
// open may decrypt in place, but must not keep sealed otherwise: the
// cache reuses the buffer of a disk copy once open returns.
func (c *Cache) Get(ctx context.Context, id crypto.ID, fetch func(ctx context.Context) ([]byte, error), open func(sealed []byte) ([]byte, error)) ([]byte, error) {
	if open == nil {
		return nil, fmt.Errorf("get blob %s: no open function", id.Short())
	}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil, fmt.Errorf("get blob %s: %w", id.Short(), ErrClosed)
	}
	if b, ok := c.mem.Get(id); ok && !c.pinnedMissingLocked(id) {
		c.stats.Hits++
		c.mu.Unlock()
		return b, nil
	}
	c.stats.Misses++
	if err := ctx.Err(); err != nil {
		c.mu.Unlock()
		return nil, fmt.Errorf("get blob %s: %w", id.Short(), err)
	}
	f := c.flights[id]
	if f == nil {
		// The load outlives the Get that started it if others wait, so
		// it keeps ctx's values but not its cancellation.
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		f = &flight{done: make(chan struct{}), cancel: cancel}
		c.flights[id] = f
		c.wg.Add(1)
		go c.run(fctx, f, id, fetch, open)
	}
	f.waiters++
	c.mu.Unlock()

	select {
	case <-f.done:
		return f.val, f.err
	case <-ctx.Done():
		c.mu.Lock()
		f.waiters--
		if f.waiters == 0 {
			select {
			case <-f.done:
			default:
				// Nobody wants it any more; a new Get starts afresh.
				f.cancel()
				if c.flights[id] == f {
					delete(c.flights, id)
				}
			}
		}
		c.mu.Unlock()
		return nil, fmt.Errorf("get blob %s: %w", id.Short(), ctx.Err())
	}
}

func (c *Cache) run(ctx context.Context, f *flight, id crypto.ID, fetch func(context.Context) ([]byte, error), open func([]byte) ([]byte, error)) {
	defer c.wg.Done()
	defer f.cancel()
	val, err := c.load(ctx, id, fetch, open)
	c.mu.Lock()
	if err == nil && !c.closed {
		c.addMemLocked(id, val)
	}
	f.val, f.err = val, err
	if c.flights[id] == f {
		delete(c.flights, id)
	}
	close(f.done)
	c.mu.Unlock()
}

// load gets a blob from disk or, failing that, from fetch.
func (c *Cache) load(ctx context.Context, id crypto.ID, fetch func(context.Context) ([]byte, error), open func([]byte) ([]byte, error)) ([]byte, error) {
	if bp, ok := c.readDisk(id); ok {
		plain, err := open(*bp)
		if !overlaps(plain, *bp) {
			c.putBuf(bp)
		}
		if err == nil {
			c.mu.Lock()
			c.stats.DiskHits++
			c.mu.Unlock()
			return plain, nil
		}
		c.dropDisk(id, true)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("get blob %s: %w", id.Short(), err)
	}
	if fetch == nil {
		return nil, fmt.Errorf("get blob %s: %w", id.Short(), ErrNotCached)
	}
	c.mu.Lock()
	c.stats.Fetches++
	c.mu.Unlock()
	sealed, err := fetch(ctx)
	if err != nil {
		return nil, fmt.Errorf("fetch blob %s: %w", id.Short(), err)
	}
	// Stored before open, which may decrypt in place.
	// A failed disk write still serves the Get (it shows in Stats).
	stored, _ := c.storeDisk(id, sealed, fetched)
	plain, err := open(sealed)
	if err != nil {
		if stored {
			c.dropDisk(id, false)
		}
		return nil, fmt.Errorf("open blob %s: %w", id.Short(), err)
	}
	return plain, nil
}

// pinnedMissingLocked reports a pinned blob without a file of its own (none,
// or a segment's copy only): a Get of it must reach load even if memory
// holds the plaintext, so that getting every pinned blob (what pinning a
// file does) leaves them all in durable files.
func (c *Cache) pinnedMissingLocked(id crypto.ID) bool {
	if _, pinned := c.pins[id]; !pinned {
		return false
	}
	_, onDisk := c.pinnedDisk[id]
	return !onDisk
}

// addMemLocked puts a plaintext in the memory tier and evicts the least
// recently used ones beyond the limit. A blob larger than the whole tier is
// not kept.
func (c *Cache) addMemLocked(id crypto.ID, plain []byte) {
	size := int64(len(plain))
	if size > c.memLimit {
		return
	}
	if old, ok := c.mem.Peek(id); ok {
		c.memBytes -= int64(len(old))
	}
	c.mem.Add(id, plain)
	c.memBytes += size
	for c.memBytes > c.memLimit {
		_, old, ok := c.mem.RemoveOldest()
		if !ok {
			break
		}
		c.memBytes -= int64(len(old))
	}
}

// PutSealed stores a blob's sealed bytes on disk, e.g. right after
// uploading it, so this device's own writes are cached. An unpinned blob
// larger than the disk limit is not stored.
func (c *Cache) PutSealed(id crypto.ID, sealed []byte) error {
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return fmt.Errorf("put blob %s: %w", id.Short(), ErrClosed)
	}
	if _, err := c.storeDisk(id, sealed, ownWrite); err != nil {
		return fmt.Errorf("put blob %s: %w", id.Short(), err)
	}
	return nil
}

// PinnedOnDisk reports whether a pinned blob has its durable file: a
// pinned blob found in a segment gets one on its next Get.
func (c *Cache) PinnedOnDisk(id crypto.ID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.pinnedDisk[id]
	return ok
}

// HasSealed reports whether the blob is in the disk tier.
func (c *Cache) HasSealed(id crypto.ID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.onDiskLocked(id)
}

// Pin marks blobs as never to be evicted from disk, durably, whether or not
// they are on disk yet: a pinned blob is kept once a Get or PutSealed
// brings it.
func (c *Cache) Pin(ids ...crypto.ID) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return fmt.Errorf("pin: %w", ErrClosed)
	}
	fresh := make([]crypto.ID, 0, len(ids))
	seen := make(map[crypto.ID]struct{}, len(ids))
	for _, id := range ids {
		if _, ok := c.pins[id]; ok {
			continue
		}
		if _, ok := seen[id]; ok {
			continue
		}
		seen[id] = struct{}{}
		fresh = append(fresh, id)
	}
	if err := c.pinLog.append(opPin, fresh); err != nil {
		c.mu.Unlock()
		return fmt.Errorf("pin: %w", err)
	}
	for _, id := range fresh {
		c.pins[id] = struct{}{}
		if e, ok := c.disk.Peek(id); ok {
			c.disk.Remove(id)
			c.pinnedDisk[id] = e.size
			c.pinnedBytes += e.size
		}
	}
	c.mu.Unlock()
	return nil
}

// Unpin makes blobs evictable again; they count as just used.
func (c *Cache) Unpin(ids ...crypto.ID) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("unpin: %w", ErrClosed)
	}
	gone := make([]crypto.ID, 0, len(ids))
	seen := make(map[crypto.ID]struct{}, len(ids))
	for _, id := range ids {
		if _, ok := c.pins[id]; !ok {
			continue
		}
		if _, ok := seen[id]; ok {
			continue
		}
		seen[id] = struct{}{}
		gone = append(gone, id)
	}
	if err := c.pinLog.append(opUnpin, gone); err != nil {
		return fmt.Errorf("unpin: %w", err)
	}
	for _, id := range gone {
		delete(c.pins, id)
		if size, ok := c.pinnedDisk[id]; ok {
			delete(c.pinnedDisk, id)
			c.pinnedBytes -= size
			c.disk.Add(id, fileEntry{size, c.stampLocked()})
		}
	}
	c.evictLocked()
	if err := c.pinLog.compact(c.pins); err != nil {
		return fmt.Errorf("unpin: %w", err)
	}
	return nil
}

// IsPinned reports whether the blob is pinned.
func (c *Cache) IsPinned(id crypto.ID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.pins[id]
	return ok
}

// SetDiskLimit changes the disk tier's limit, evicting at once if needed.
func (c *Cache) SetDiskLimit(n int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.diskLimit = max(n, 0)
	if !c.closed {
		c.evictLocked()
	}
}

// Stats returns a snapshot of sizes and counters.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.MemBytes, s.MemItems, s.MemLimit = c.memBytes, c.mem.Len(), c.memLimit
	s.DiskBytes, s.DiskItems, s.DiskLimit = c.diskBytes, c.disk.Len()+len(c.pinnedDisk)+len(c.segIndex), c.diskLimit
	s.Segments = len(c.segs)
	s.PinnedBytes, s.PinnedItems, s.Pins = c.pinnedBytes, len(c.pinnedDisk), len(c.pins)
	return s
}
