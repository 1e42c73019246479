package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/store/internal/directio"
)

// The segment tier keeps unpinned blobs appended to segment files instead
// of one file each: creating a file costs the kernel 20–400 µs (ext4 inode
// allocation), appending a small record a few µs, and extracting a source
// tree uploads one small blob per file. Eviction is a segment at a time,
// the one least recently used (appended to or hit). docs/cache.md has the
// formats.

const (
	segMagic  = "ASSEGV1\n"
	idxMagic  = "ASSIDX1\n"
	recHeader = 8 + crypto.IDSize // length u32 | CRC-32C u32 | ID
	idxRecord = crypto.IDSize + 8 // ID | offset u32 | length u32
	// idxHeader is the magic, the segment's size covered and the count.
	idxHeader = len(idxMagic) + 8 + 4
	// maxSegment bounds a segment file (offsets are 32 bits) and what
	// walkSegment reads into memory.
	maxSegment = 256 << 20
	// segBlobDivisor: a segment holds blobs of at most 1/8 of its target
	// size (4 MiB, the largest chunk, in the daemon's 32 MiB segments).
	segBlobDivisor = 8
	// segPerLimit: a segment is at most 1/32 of the disk limit, so
	// evicting one never frees more than ~3 % of the tier.
	segPerLimit = 32
	// minSegment: with a limit so small that segments would be smaller,
	// the tier is not used.
	minSegment = 64 << 10
)

// segment is one segment file.
type segment struct {
	seq     uint64
	path    string
	f       *os.File
	size    int64     // bytes in the file, counted in diskBytes
	live    int       // index entries pointing into it
	used    time.Time // the last append or disk hit in it
	touched time.Time // when used was last written to the file's time
	entries []segEntry
	indexed bool // an index file lists every entry
	refs    int  // readers and the appender using f
	gone    bool // out of the tier (evicted, emptied, or the cache closed)
	remove  bool // delete the file once refs drops to 0
	// tail buffers the end of the current segment for direct appends;
	// nil once sealed, or where the file system refuses O_DIRECT. Set and
	// cleared with wmu held, cleared under bmu too, which readers take.
	tail *directTail
	bmu  sync.Mutex
}

// segEntry is one record of a segment: the blob's payload offset and length.
type segEntry struct {
	id  crypto.ID
	off uint32
	n   uint32
}

type segLoc struct {
	seg *segment
	off uint32
	n   uint32
}

func (c *Cache) segPath(seq uint64) string {
	return filepath.Join(c.segDir, fmt.Sprintf("%016x.seg", seq))
}

func idxPath(segPath string) string { return strings.TrimSuffix(segPath, ".seg") + ".idx" }

// segTargetLocked is the size at which the current segment is sealed, and
// segBlobMaxLocked the largest blob the tier takes (0: the tier is off).
func (c *Cache) segTargetLocked() int64 {
	return min(c.segBytes, c.diskLimit/segPerLimit, maxSegment)
}

func (c *Cache) segBlobMaxLocked() int64 {
	t := c.segTargetLocked()
	if t < minSegment {
		return 0
	}
	return t / segBlobDivisor
}

// recordHeader encodes the header of a segment record.
func recordHeader(id crypto.ID, sealed []byte) [recHeader]byte {
	var h [recHeader]byte
	binary.LittleEndian.PutUint32(h[0:], uint32(len(sealed)))
	copy(h[8:], id[:])
	crc := crc32.Update(crc32.Checksum(h[8:], crcTable), crcTable, sealed)
	binary.LittleEndian.PutUint32(h[4:], crc)
	return h
}

// appendRecord encodes one segment record.
func appendRecord(dst []byte, id crypto.ID, sealed []byte) []byte {
	h := recordHeader(id, sealed)
	dst = append(dst, h[:]...)
	return append(dst, sealed...)
}

// writeRecord writes one segment record at off: a small blob with its
// header in one write (it is copied next to it), a large one in writePiece
// pieces without a copy (see writePiece: one 1 MiB write of new pages costs
// this VM's kernel twice as much).
func writeRecord(f *os.File, off int64, id crypto.ID, sealed []byte) error {
	if len(sealed) <= writePiece {
		var buf [recHeader + writePiece]byte
		rec := appendRecord(buf[:0], id, sealed)
		_, err := f.WriteAt(rec, off)
		return err
	}
	h := recordHeader(id, sealed)
	if _, err := f.WriteAt(h[:], off); err != nil {
		return err
	}
	for done := 0; done < len(sealed); {
		end := min(done+writePiece, len(sealed))
		if _, err := f.WriteAt(sealed[done:end], off+recHeader+int64(done)); err != nil {
			return err
		}
		done = end
	}
	return nil
}

// walkSegment decodes the records of a segment file's contents and returns
// them with the length of the valid prefix: the walk stops at the first
// record that is torn or fails its checksum (an interrupted append).
func walkSegment(data []byte) ([]segEntry, int, error) {
	if len(data) < len(segMagic) || string(data[:len(segMagic)]) != segMagic {
		return nil, 0, errors.New("not a segment file")
	}
	var entries []segEntry
	off := len(segMagic)
	for len(data)-off >= recHeader {
		h := data[off : off+recHeader]
		n := int(binary.LittleEndian.Uint32(h[0:]))
		start := off + recHeader
		if n == 0 || n > len(data)-start {
			break
		}
		payload := data[start : start+n]
		crc := crc32.Update(crc32.Checksum(h[8:], crcTable), crcTable, payload)
		if crc != binary.LittleEndian.Uint32(h[4:]) {
			break
		}
		entries = append(entries, segEntry{id: crypto.ID(h[8:]), off: uint32(start), n: uint32(n)})
		off = start + n
	}
	return entries, off, nil
}

// encodeIndex writes a segment's index file contents.
func encodeIndex(size int64, entries []segEntry) []byte {
	b := make([]byte, 0, idxHeader+len(entries)*idxRecord+4)
	b = append(b, idxMagic...)
	b = binary.LittleEndian.AppendUint64(b, uint64(size))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(entries)))
	for _, e := range entries {
		b = append(b, e.id[:]...)
		b = binary.LittleEndian.AppendUint32(b, e.off)
		b = binary.LittleEndian.AppendUint32(b, e.n)
	}
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

// decodeIndex reads an index file's contents for a segment of size bytes.
// Any damage, or an index of a different size of segment, is an error: the
// caller walks the segment instead.
func decodeIndex(b []byte, size int64) ([]segEntry, error) {
	if len(b) < idxHeader+4 || string(b[:len(idxMagic)]) != idxMagic {
		return nil, errors.New("not an index file")
	}
	body, sum := b[:len(b)-4], binary.LittleEndian.Uint32(b[len(b)-4:])
	if crc32.Checksum(body, crcTable) != sum {
		return nil, errors.New("index checksum mismatch")
	}
	if got := binary.LittleEndian.Uint64(body[len(idxMagic):]); got != uint64(size) {
		return nil, fmt.Errorf("index covers %d bytes of a %d-byte segment", got, size)
	}
	count := int(binary.LittleEndian.Uint32(body[len(idxMagic)+8:]))
	recs := body[idxHeader:]
	if len(recs) != count*idxRecord || count < 0 {
		return nil, errors.New("index length does not match its count")
	}
	entries := make([]segEntry, 0, count)
	for r := range slices.Chunk(recs, idxRecord) {
		e := segEntry{id: crypto.ID(r[:crypto.IDSize]), off: binary.LittleEndian.Uint32(r[crypto.IDSize:]), n: binary.LittleEndian.Uint32(r[crypto.IDSize+4:])}
		if e.n == 0 || int64(e.off) < int64(len(segMagic)+recHeader) || int64(e.off)+int64(e.n) > size {
			return nil, fmt.Errorf("index entry %s out of the segment", e.id.Short())
		}
		entries = append(entries, e)
	}
	return entries, nil
}

// scanSegments loads the segment tier at Open: segments in order, each
// from its index file or, without a valid one (a crash), by walking it and
// cutting a torn tail. A later copy of a blob (fetched again after the
// earlier one failed to open) wins over an earlier one, and a blob file (a
// pinned copy) over both.
func (c *Cache) scanSegments() error {
	if err := os.MkdirAll(c.segDir, 0o700); err != nil {
		return fmt.Errorf("scan segments: %w", err)
	}
	names, err := os.ReadDir(c.segDir)
	if err != nil {
		return fmt.Errorf("scan segments: %w", err)
	}
	var seqs []uint64
	present := make(map[string]bool, len(names))
	for _, d := range names {
		present[d.Name()] = true
	}
	for _, d := range names {
		name := d.Name()
		// Leftovers: an index being written, or one whose segment went
		// (eviction deletes the segment first).
		if strings.HasSuffix(name, ".tmp") || (strings.HasSuffix(name, ".idx") && !present[strings.TrimSuffix(name, ".idx")+".seg"]) {
			_ = os.Remove(filepath.Join(c.segDir, name))
			continue
		}
		seq, ok := parseSegName(name)
		if ok && d.Type().IsRegular() {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	for _, seq := range seqs {
		if err := c.loadSegment(seq); err != nil {
			return err
		}
		c.nextSeq = seq + 1
	}
	for _, s := range slices.Clone(c.segs) {
		if s.live == 0 {
			c.dropSegmentLocked(s)
		}
	}
	return nil
}

func parseSegName(name string) (uint64, bool) {
	hex, ok := strings.CutSuffix(name, ".seg")
	if !ok || len(hex) != 16 {
		return 0, false
	}
	seq, err := strconv.ParseUint(hex, 16, 64)
	if err != nil || fmt.Sprintf("%016x", seq) != hex {
		return 0, false
	}
	return seq, true
}

func (c *Cache) loadSegment(seq uint64) error {
	p := c.segPath(seq)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open segment %s: %w", p, err)
	}
	info, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return fmt.Errorf("open segment %s: %w", p, err)
	}
	size := info.Size()
	var entries []segEntry
	indexed := false
	if b, err := os.ReadFile(idxPath(p)); err == nil {
		if entries, err = decodeIndex(b, size); err == nil {
			indexed = true
		}
	}
	if !indexed {
		if size > maxSegment {
			size = maxSegment
		}
		data := make([]byte, size)
		n, err := io.ReadFull(f, data)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			_ = f.Close()
			return fmt.Errorf("read segment %s: %w", p, err)
		}
		var valid int
		entries, valid, err = walkSegment(data[:n])
		if err != nil || valid != n || info.Size() != int64(n) {
			// Cut what cannot be read back, so appends never follow garbage.
			if err != nil {
				valid = 0
			}
			if terr := f.Truncate(int64(valid)); terr != nil {
				_ = f.Close()
				return fmt.Errorf("cut torn tail of segment %s: %w", p, terr)
			}
			size = int64(valid)
		}
	}
	s := &segment{seq: seq, path: p, f: f, size: size, used: info.ModTime(), touched: info.ModTime(), entries: entries, indexed: indexed}
	if !indexed {
		// Nothing appends to it any more: index it for the next Open.
		s.indexed = writeIndex(s, size, entries) == nil
	}
	c.segs = append(c.segs, s)
	c.diskBytes += size
	for _, e := range entries {
		if _, pinned := c.pinnedDisk[e.id]; pinned || c.disk.Contains(e.id) {
			continue // the blob file wins
		}
		if old, ok := c.segIndex[e.id]; ok {
			old.seg.live--
		}
		c.segIndex[e.id] = segLoc{seg: s, off: e.off, n: e.n}
		s.live++
	}
	if s.used.After(c.lastStamp) {
		c.lastStamp = s.used
	}
	return nil
}

// writeIndex saves the index file of a segment no longer appended to, so
// the next Open reads it instead of the whole segment. Not synced: a torn
// or missing index only costs that walk.
func writeIndex(s *segment, size int64, entries []segEntry) error {
	tmp := idxPath(s.path) + ".tmp"
	if err := os.WriteFile(tmp, encodeIndex(size, entries), 0o600); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return rename(tmp, idxPath(s.path))
}

// sealLocked writes the index of segment s, which no longer grows.
// Called with wmu held (no append runs), c.mu held.
func (c *Cache) sealLocked(s *segment) {
	if s == nil || s.indexed || s.gone {
		return
	}
	if s.tail != nil {
		s.bmu.Lock()
		err := s.tail.finish()
		s.tail = nil
		s.bmu.Unlock()
		if err != nil {
			// Blobs already counted as cached are not in the file.
			c.stats.DiskWriteErrors++
			c.dropSegmentLocked(s)
			return
		}
	}
	if err := writeIndex(s, s.size, s.entries); err == nil {
		s.indexed = true
	}
}

// appendKind says where a blob comes from, which decides how it is
// appended (docs/cache.md, "Direct appends").
type appendKind int

const (
	// ownWrite: this device's upload (PutSealed). Through the page cache:
	// while a commit runs, the disk belongs to it, and the kernel writes
	// these back later.
	ownWrite appendKind = iota
	// fetched: a blob a read fetched. With direct I/O where the file
	// system allows it (directTail): the reader's data is in memory
	// already, and page-cache pages for a second copy cost more than the
	// write.
	fetched
)

// isCurrentLocked reports whether s is appended to.
func (c *Cache) isCurrentLocked(s *segment) bool { return s == c.cur[ownWrite] || s == c.cur[fetched] }

// newSegmentLocked starts the next segment file. Called with wmu and c.mu.
func (c *Cache) newSegmentLocked(kind appendKind) (*segment, error) {
	seq := c.nextSeq
	p := c.segPath(seq)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	for tries := 0; errors.Is(err, os.ErrExist) && tries < 8; tries++ {
		// Something Open did not take for a segment has the name.
		c.nextSeq++
		seq, p = c.nextSeq, c.segPath(c.nextSeq)
		f, err = os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	}
	if err != nil {
		return nil, fmt.Errorf("create segment %s: %w", p, err)
	}
	var tail *directTail
	if kind == fetched {
		if df, derr := directio.Open(p, os.O_WRONLY, 0); derr == nil {
			tail = newDirectTail(df, 0)
		}
	}
	if tail != nil {
		err = tail.append([]byte(segMagic)) // fits the buffer: no write
	} else {
		_, err = f.Write([]byte(segMagic))
	}
	if err != nil {
		if tail != nil {
			tail.stop()
		}
		_ = f.Close()
		_ = os.Remove(p)
		return nil, fmt.Errorf("create segment %s: %w", p, err)
	}
	c.nextSeq++
	s := &segment{seq: seq, path: p, f: f, size: int64(len(segMagic)), used: c.stampLocked(), tail: tail}
	c.segs = append(c.segs, s)
	c.diskBytes += s.size
	return s, nil
}

// appendBlob appends a sealed blob to the current segment and indexes it,
// reporting whether the blob is now on disk.
func (c *Cache) appendBlob(id crypto.ID, sealed []byte, kind appendKind) (bool, error) {
	stored, pinned, err := c.appendBlobLocked(id, sealed, kind)
	if pinned {
		// Pinned while we appended: pinned blobs live in files.
		return c.storeDisk(id, sealed, kind)
	}
	return stored, err
}

func (c *Cache) appendBlobLocked(id crypto.ID, sealed []byte, kind appendKind) (stored, pinned bool, err error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false, false, ErrClosed
	}
	if c.onDiskLocked(id) {
		c.mu.Unlock()
		return true, false, nil // already cached: nothing to write
	}
	s := c.cur[kind]
	if s == nil || s.gone || s.size+int64(recHeader+len(sealed)) > c.segTargetLocked() && s.size > int64(len(segMagic)) {
		c.sealLocked(s)
		old := s
		var err error
		if s, err = c.newSegmentLocked(kind); err != nil {
			c.stats.DiskWriteErrors++
			c.mu.Unlock()
			return false, false, err
		}
		c.cur[kind] = s
		if old != nil && old.live == 0 {
			c.dropSegmentLocked(old) // emptied while it was current
		}
	}
	s.refs++
	off := s.size
	c.mu.Unlock()
	if c.testAppending != nil {
		c.testAppending()
	}

	recLen := int64(recHeader + len(sealed))
	if s.tail != nil {
		h := recordHeader(id, sealed)
		err = s.tail.append(h[:])
		if err == nil {
			err = s.tail.append(sealed)
		}
	} else {
		err = writeRecord(s.f, off, id, sealed)
		if err != nil {
			// Cut the partial record, so the next append follows valid data.
			_ = s.f.Truncate(off)
		}
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	defer c.releaseLocked(s)
	if err != nil {
		c.stats.DiskWriteErrors++
		if s.tail != nil {
			// The buffer that failed held records counted as cached.
			c.dropSegmentLocked(s)
		}
		return false, false, fmt.Errorf("append blob %s to segment: %w", id.Short(), err)
	}
	if s.gone {
		// Evicted (or the cache closed) while we wrote: the bytes went
		// with it, and were subtracted with it.
		return false, false, nil
	}
	s.size = off + recLen
	c.diskBytes += recLen
	s.used = c.stampLocked()
	e := segEntry{id: id, off: uint32(off) + recHeader, n: uint32(len(sealed))}
	s.entries = append(s.entries, e)
	// A blob pinned meanwhile goes to a file, and one that got a file
	// meanwhile keeps it: this record is dead then.
	_, pinned = c.pins[id]
	if pinned || c.onDiskLocked(id) {
		c.evictLocked()
		return c.onDiskLocked(id), pinned, nil
	}
	c.segIndex[id] = segLoc{seg: s, off: e.off, n: e.n}
	s.live++
	c.evictLocked()
	return true, false, nil
}

// onDiskLocked reports whether the blob is in the disk tier.
func (c *Cache) onDiskLocked(id crypto.ID) bool {
	if _, ok := c.pinnedDisk[id]; ok {
		return true
	}
	if _, ok := c.segIndex[id]; ok {
		return true
	}
	return c.disk.Contains(id)
}

// usedLocked marks segment s used at t, a disk hit in it. Its file time
// keeps the order across restarts, set at most once a second per segment:
// reading a large file hits each segment some 30 times in a row.
func (c *Cache) usedLocked(s *segment, t time.Time) (touch bool) {
	s.used = t
	if t.Sub(s.touched) < time.Second {
		return false
	}
	s.touched = t
	return true
}

// oldestSegmentLocked returns the segment least recently used, if any.
func (c *Cache) oldestSegmentLocked() *segment {
	var oldest *segment
	for _, s := range c.segs {
		if oldest == nil || s.used.Before(oldest.used) {
			oldest = s
		}
	}
	return oldest
}

// readSegment reads a blob's sealed bytes from its segment into a pooled
// buffer, and drops the reference the caller took on the segment.
func (c *Cache) readSegment(loc segLoc) (*[]byte, error) {
	bp := c.getBuf(int(loc.n))
	s, off := loc.seg, int64(loc.off)
	fromFile := len(*bp)
	var err error
	s.bmu.Lock()
	if s.tail != nil {
		fromFile, err = s.tail.readAt(*bp, off)
	}
	s.bmu.Unlock()
	if err == nil && fromFile > 0 { // below the tail's base: in the file for good
		_, err = s.f.ReadAt((*bp)[:fromFile], off)
	}
	c.mu.Lock()
	c.releaseLocked(loc.seg)
	c.mu.Unlock()
	if err != nil {
		c.putBuf(bp)
		return nil, err
	}
	return bp, nil
}

// releaseLocked drops a reference to s's file, closing (and deleting, if
// it was evicted) the file with the last one.
func (c *Cache) releaseLocked(s *segment) {
	s.refs--
	if s.refs == 0 && s.gone {
		c.closeSegment(s)
	}
}

func (c *Cache) closeSegment(s *segment) {
	if s.f == nil {
		return
	}
	s.bmu.Lock()
	if s.tail != nil { // evicted while current: its bytes go with it
		s.tail.stop()
		s.tail = nil
	}
	s.bmu.Unlock()
	_ = s.f.Close()
	s.f = nil
	if s.remove {
		_ = os.Remove(s.path)
		_ = os.Remove(idxPath(s.path))
	}
}

// dropSegmentLocked takes segment s out of the tier and deletes it (once
// no reader uses it): eviction, or nothing live left in it.
func (c *Cache) dropSegmentLocked(s *segment) (blobs int) {
	if s.gone {
		return 0
	}
	for _, e := range s.entries {
		if loc, ok := c.segIndex[e.id]; ok && loc.seg == s {
			delete(c.segIndex, e.id)
			blobs++
		}
	}
	s.entries, s.live = nil, 0
	s.gone, s.remove = true, true
	c.diskBytes -= s.size
	if i := slices.Index(c.segs, s); i >= 0 {
		c.segs = slices.Delete(c.segs, i, i+1)
	}
	for k, cur := range c.cur {
		if cur == s {
			c.cur[k] = nil
		}
	}
	if s.refs == 0 {
		c.closeSegment(s)
	}
	return blobs
}

// closeSegmentsLocked is Close's part: index the current segment and close
// every file (the last reader closes a busy one). Called with wmu and c.mu.
func (c *Cache) closeSegmentsLocked() {
	for _, s := range c.cur {
		c.sealLocked(s)
	}
	for _, s := range c.segs {
		s.gone = true
		if s.refs == 0 {
			c.closeSegment(s)
		}
	}
	c.segs, c.cur = nil, [2]*segment{}
	clear(c.segIndex)
}
