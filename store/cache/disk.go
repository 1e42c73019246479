package cache

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"time"
	"unsafe"

	"github.com/anysync/anysync/crypto"
)

// blobPath is where a sealed blob lives: blobs/<first two hex digits>/<id>,
// so no folder holds more than 1/256 of the cache.
func (c *Cache) blobPath(id crypto.ID) string {
	name := id.String()
	return filepath.Join(c.blobs, name[:2], name)
}

// parseBlobName accepts only the canonical file name of a blob in the given
// shard folder.
func parseBlobName(shard, name string) (crypto.ID, bool) {
	id, err := crypto.ParseID(name)
	if err != nil || id.String() != name || name[:2] != shard {
		return crypto.ID{}, false
	}
	return id, true
}

// scanDisk rebuilds the disk index from the files, ordered by modification
// time: a disk hit sets it to now, so it is the last use, across restarts
// and crashes alike, with no state file to keep in step.
func (c *Cache) scanDisk() error {
	type entry struct {
		id    crypto.ID
		size  int64
		mtime time.Time
	}
	var entries []entry
	shards, err := os.ReadDir(c.blobs)
	if err != nil {
		return fmt.Errorf("scan disk tier: %w", err)
	}
	for _, sh := range shards {
		if !sh.IsDir() {
			continue
		}
		dir := filepath.Join(c.blobs, sh.Name())
		files, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("scan disk tier: %w", err)
		}
		for _, f := range files {
			id, ok := parseBlobName(sh.Name(), f.Name())
			if !ok || !f.Type().IsRegular() {
				continue // not ours; leave it alone
			}
			info, err := f.Info()
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return fmt.Errorf("scan disk tier: %w", err)
			}
			if info.Size() == 0 {
				// A sealed blob is never empty: a crash before the
				// data reached the disk.
				_ = os.Remove(filepath.Join(dir, f.Name()))
				continue
			}
			entries = append(entries, entry{id, info.Size(), info.ModTime()})
		}
	}
	slices.SortFunc(entries, func(a, b entry) int {
		if d := a.mtime.Compare(b.mtime); d != 0 {
			return d
		}
		return cmp.Compare(a.id.String(), b.id.String())
	})
	for _, e := range entries {
		c.indexLocked(e.id, e.size, e.mtime)
		if e.mtime.After(c.lastStamp) {
			c.lastStamp = e.mtime
		}
	}
	return nil
}

// stampLocked returns a time later than any it returned before. File
// times are the persistent LRU order, and the kernel's own are too coarse
// (a few ms) to order writes made in quick succession.
func (c *Cache) stampLocked() time.Time {
	now := time.Now().Round(0)
	if !now.After(c.lastStamp) {
		now = c.lastStamp.Add(time.Microsecond)
	}
	c.lastStamp = now
	return now
}

// indexLocked records a blob file as on disk, last used at used.
func (c *Cache) indexLocked(id crypto.ID, size int64, used time.Time) {
	c.unindexLocked(id)
	if _, pinned := c.pins[id]; pinned {
		c.pinnedDisk[id] = size
		c.pinnedBytes += size
	} else {
		c.disk.Add(id, fileEntry{size, used})
	}
	c.diskBytes += size
}

// unindexLocked forgets a blob's disk copy, reporting whether it had one.
// A segment's bytes stay counted until the segment goes, which it does at
// once when nothing live is left in it (unless it is still appended to).
func (c *Cache) unindexLocked(id crypto.ID) bool {
	if size, ok := c.pinnedDisk[id]; ok {
		delete(c.pinnedDisk, id)
		c.pinnedBytes -= size
		c.diskBytes -= size
		return true
	}
	if e, ok := c.disk.Peek(id); ok {
		c.disk.Remove(id)
		c.diskBytes -= e.size
		return true
	}
	if loc, ok := c.segIndex[id]; ok {
		delete(c.segIndex, id)
		loc.seg.live--
		if loc.seg.live == 0 && !c.isCurrentLocked(loc.seg) {
			c.dropSegmentLocked(loc.seg)
		}
		return true
	}
	return false
}

// readDisk returns the sealed bytes of a blob on disk, in a buffer from
// the pool, and marks it used. It reads without holding the lock; a copy
// evicted meanwhile is a miss.
func (c *Cache) readDisk(id crypto.ID) (*[]byte, bool) {
	c.mu.Lock()
	used := c.stampLocked()
	_, ok := c.pinnedDisk[id]
	if !ok {
		var e fileEntry
		if e, ok = c.disk.Peek(id); ok {
			c.disk.Add(id, fileEntry{e.size, used}) // moves it to the front
		}
	}
	if !ok {
		loc, inSeg := c.segIndex[id]
		if !inSeg {
			c.mu.Unlock()
			return nil, false
		}
		loc.seg.refs++
		touch := c.usedLocked(loc.seg, used)
		_, pinned := c.pins[id]
		c.mu.Unlock()
		bp, err := c.readSegment(loc)
		if err != nil {
			return nil, false
		}
		if touch {
			_ = os.Chtimes(loc.seg.path, used, used)
		}
		if pinned {
			// Segments are evicted whole, pinned blobs never: the hit
			// gives it a durable file (before open, which may decrypt in
			// place). Pin leaves this to the Gets that follow it, which
			// show progress; a failed write leaves the blob where it is.
			_ = c.writeBlob(id, *bp, true)
		}
		return bp, true
	}
	c.mu.Unlock()
	p := c.blobPath(id)
	buf, err := c.readFile(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			// Deleted behind our back; forget it so Stats stay true.
			c.mu.Lock()
			if _, statErr := os.Stat(p); errors.Is(statErr, os.ErrNotExist) {
				c.unindexLocked(id)
			}
			c.mu.Unlock()
		}
		return nil, false
	}
	_ = os.Chtimes(p, used, used) // the LRU order that survives a restart
	return buf, true
}

// readFile reads a whole file into a pooled buffer. Fresh megabyte buffers
// cost more than the read itself (page faults), and a disk hit's sealed
// bytes are garbage once opened.
func (c *Cache) readFile(p string) (*[]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := info.Size()
	if size > maxBlobFile {
		return nil, fmt.Errorf("blob file %s: %d bytes is too large", p, size)
	}
	bp := c.getBuf(int(size))
	if _, err := io.ReadFull(f, *bp); err != nil {
		c.putBuf(bp)
		return nil, err
	}
	return bp, nil
}

// maxBlobFile bounds what readFile accepts: far above any sealed blob
// (chunks are at most 4 MiB), far below what would hurt.
const maxBlobFile = 64 << 20

// maxPooledBuf keeps rare huge buffers out of the pool.
const maxPooledBuf = 8 << 20

func (c *Cache) getBuf(n int) *[]byte {
	if bp, ok := c.bufs.Get().(*[]byte); ok && cap(*bp) >= n {
		*bp = (*bp)[:n]
		return bp
	}
	b := make([]byte, n)
	return &b
}

func (c *Cache) putBuf(bp *[]byte) {
	if cap(*bp) <= maxPooledBuf {
		c.bufs.Put(bp)
	}
}

// overlaps reports whether two slices share memory, i.e. open decrypted in
// place and the buffer now holds the plaintext we hand out.
func overlaps(a, b []byte) bool {
	if cap(a) == 0 || cap(b) == 0 {
		return false
	}
	a0 := uintptr(unsafe.Pointer(unsafe.SliceData(a)))
	b0 := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	return a0 < b0+uintptr(cap(b)) && b0 < a0+uintptr(cap(a))
}

// storeDisk writes a sealed blob and evicts what no longer fits. Pinned
// blobs are written atomically (temporary file, fsync, rename): they must
// be there offline after a crash. Unpinned ones are written in place, as
// their index entry is only added once the file is complete: a copy torn
// by a crash fails open and is dropped (counted as corrupt), then fetched
// again. The temporary file and rename cost two directory updates per
// blob, about 40 µs here, for each of the tens of thousands of small files
// a tree extraction uploads.
func (c *Cache) storeDisk(id crypto.ID, sealed []byte, kind appendKind) (stored bool, err error) {
	size := int64(len(sealed))
	c.mu.Lock()
	_, pinned := c.pins[id]
	fits := pinned || size <= c.diskLimit
	small := !pinned && size <= c.segBlobMaxLocked()
	c.mu.Unlock()
	if !fits || size == 0 {
		return false, nil
	}
	if small {
		return c.appendBlob(id, sealed, kind)
	}
	if err := c.writeBlob(id, sealed, pinned); err != nil {
		c.mu.Lock()
		c.stats.DiskWriteErrors++
		c.mu.Unlock()
		return false, err
	}
	return true, nil
}

func (c *Cache) writeBlob(id crypto.ID, sealed []byte, durable bool) error {
	if !durable {
		return c.writeBlobInPlace(id, sealed)
	}
	f, err := os.CreateTemp(c.tmp, "blob-*")
	if err != nil {
		return fmt.Errorf("write blob %s: %w", id.Short(), err)
	}
	tmp := f.Name()
	err = writePieces(f, sealed)
	if err == nil && durable {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write blob %s: %w", id.Short(), err)
	}
	dst := c.blobPath(id)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		_ = os.Remove(tmp)
		return ErrClosed
	}
	// Rename and index under the lock, so an eviction can never delete a
	// file that the index then claims is there.
	err = rename(tmp, dst)
	if errors.Is(err, os.ErrNotExist) {
		if err = os.MkdirAll(filepath.Dir(dst), 0o700); err == nil {
			err = rename(tmp, dst)
		}
	}
	if err != nil {
		c.mu.Unlock()
		_ = os.Remove(tmp)
		return fmt.Errorf("write blob %s: %w", id.Short(), err)
	}
	used := c.stampLocked()
	_ = os.Chtimes(dst, used, used)
	c.indexLocked(id, int64(len(sealed)), used)
	c.evictLocked()
	c.mu.Unlock()
	if durable {
		if err := syncDir(filepath.Dir(dst)); err != nil {
			return fmt.Errorf("write blob %s: %w", id.Short(), err)
		}
	}
	return nil
}

// writeBlobInPlace writes an unpinned blob straight to its path (see
// storeDisk). A blob already on disk is only marked used, never rewritten
// under a reader, and one being written by someone else is left to them.
func (c *Cache) writeBlobInPlace(id crypto.ID, sealed []byte) error {
	dst := c.blobPath(id)
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return ErrClosed
	}
	if _, busy := c.writing[id]; busy {
		c.mu.Unlock()
		return nil
	}
	if e, ok := c.disk.Peek(id); ok {
		used := c.stampLocked()
		_ = os.Chtimes(dst, used, used)
		c.indexLocked(id, e.size, used)
		c.mu.Unlock()
		return nil
	}
	c.writing[id] = struct{}{}
	c.mu.Unlock()

	err := writeNew(dst, sealed)
	if errors.Is(err, os.ErrNotExist) {
		if err = os.MkdirAll(filepath.Dir(dst), 0o700); err == nil {
			err = writeNew(dst, sealed)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.writing, id)
	if err == nil && c.closed {
		err = ErrClosed
	}
	if err != nil {
		_ = os.Remove(dst)
		if errors.Is(err, ErrClosed) {
			return err
		}
		return fmt.Errorf("write blob %s: %w", id.Short(), err)
	}
	used := c.stampLocked()
	_ = os.Chtimes(dst, used, used)
	c.indexLocked(id, int64(len(sealed)), used)
	c.evictLocked()
	return nil
}

// writeNew writes data to path, replacing whatever is there.
func writeNew(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	err = writePieces(f, data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// rename is rename(2). os.Rename first stats the target to refuse
// replacing a directory, which the cache's blob paths never are: a
// system call per cached blob (~20 µs on this VM) for nothing.
func rename(from, to string) error {
	if err := syscall.Rename(from, to); err != nil {
		return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
	}
	return nil
}

// writePiece is the most one write hands the kernel. Page-cache writes
// of 1 MiB cost this VM's kernel twice the CPU of the same bytes in
// 32 KiB writes (large folios the host faults in again); the extra system
// calls cost little anywhere.
const writePiece = 32 << 10

func writePieces(f *os.File, b []byte) error {
	for len(b) > 0 {
		n, err := f.Write(b[:min(len(b), writePiece)])
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// dropDisk deletes a disk copy that failed to open; corrupt says it was
// there before (not just written from a bad fetch).
func (c *Cache) dropDisk(id crypto.ID, corrupt bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, inSeg := c.segIndex[id]
	if c.unindexLocked(id) && corrupt {
		c.stats.Corrupt++
	}
	if !inSeg {
		_ = os.Remove(c.blobPath(id))
	}
}

// evictLocked deletes least recently used unpinned blob files and
// segments, whichever was used last longer ago, until the disk tier,
// pinned blobs included, is within its limit or nothing unpinned is left.
func (c *Cache) evictLocked() {
	for c.diskBytes > c.diskLimit {
		id, e, fileOK := c.disk.GetOldest()
		if s := c.oldestSegmentLocked(); s != nil && (!fileOK || s.used.Before(e.used)) {
			c.stats.Evictions += uint64(c.dropSegmentLocked(s))
			continue
		}
		if !fileOK {
			return
		}
		if err := os.Remove(c.blobPath(id)); err != nil && !errors.Is(err, os.ErrNotExist) {
			// Still there: keep counting it rather than lose track.
			return
		}
		c.disk.Remove(id)
		c.diskBytes -= e.size
		c.stats.Evictions++
	}
}
