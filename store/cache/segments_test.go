package cache

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/anysync/anysync/crypto"
)

// segOpts: 64 KiB segments (1/32 of the limit), blobs of at most 8 KiB.
var segOpts = Options{MemBytes: 0, DiskBytes: 2 << 20, SegmentBytes: 64 << 10}

// diskUse counts the tier's files: blob files, segment files and the bytes of both.
func diskUse(t *testing.T, dir string) (blobFiles, segFiles int, total int64) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case strings.HasSuffix(p, ".seg"):
			segFiles++
		case strings.Contains(p, string(filepath.Separator)+"blobs"+string(filepath.Separator)):
			blobFiles++
		default:
			return nil
		}
		total += info.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return blobFiles, segFiles, total
}

// flushTail writes the current segment's buffered end to its file (as
// sealing it would, but appends go on), so a test can look at the files of
// an open cache.
func flushTail(t *testing.T, c *Cache) {
	t.Helper()
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, s := range c.cur {
		if s != nil && s.tail != nil {
			s.bmu.Lock()
			err := s.tail.flushPadded()
			s.bmu.Unlock()
			if err != nil {
				t.Fatal(err)
			}
		}
	}
}

// checkAccounting fails unless Stats agree with the files on disk.
func checkAccounting(t *testing.T, c *Cache) Stats {
	t.Helper()
	flushTail(t, c)
	s := c.Stats()
	blobFiles, segFiles, total := diskUse(t, c.dir)
	if segFiles != s.Segments || total != s.DiskBytes || blobFiles != s.DiskItems-len(c.segIndex) {
		t.Errorf("stats say %d segments, %d bytes, %d blob files; disk has %d, %d, %d",
			s.Segments, s.DiskBytes, s.DiskItems-len(c.segIndex), segFiles, total, blobFiles)
	}
	return s
}

type testBlob struct {
	id            crypto.ID
	plain, sealed []byte
}

func makeBlobs(t *testing.T, b *blobs, prefix string, count, size int) []testBlob {
	out := make([]testBlob, count)
	for i := range out {
		id, plain, sealed := b.make(t, fmt.Sprint(prefix, i), size)
		out[i] = testBlob{id, plain, sealed}
	}
	return out
}

// getAll gets every blob from the cache alone (no fetch) and checks it.
func getAll(t *testing.T, c *Cache, b *blobs, bs []testBlob) {
	t.Helper()
	for _, x := range bs {
		mustGet(t, c, b, x.id, noFetch(t), x.plain)
	}
}

func putAll(t *testing.T, c *Cache, bs []testBlob) {
	t.Helper()
	for _, x := range bs {
		if err := c.PutSealed(x.id, x.sealed); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSegmentsHoldSmallBlobs(t *testing.T) {
	b := newBlobs(t)
	dir := t.TempDir()
	c := mustOpen(t, dir, segOpts)
	small := makeBlobs(t, b, "small", 400, 300) // ~130 KiB: three segments
	putAll(t, c, small)
	bigID, bigPlain, bigSealed := b.make(t, "big", 10000)
	if err := c.PutSealed(bigID, bigSealed); err != nil {
		t.Fatal(err)
	}
	s := checkAccounting(t, c)
	if s.Segments != 3 || s.DiskItems != 401 || len(c.segIndex) != 400 {
		t.Fatalf("want 400 blobs in 3 segments and 1 blob file, got %+v", s)
	}
	getAll(t, c, b, small)
	mustGet(t, c, b, bigID, noFetch(t), bigPlain)
	if s := c.Stats(); s.DiskHits != 401 || s.Fetches != 0 {
		t.Errorf("want 401 disk hits, got %+v", s)
	}

	// A clean restart reads the index files and keeps everything.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if idx, _ := filepath.Glob(filepath.Join(dir, "segments", "*.idx")); len(idx) == 0 {
		t.Error("no index files after Close")
	}
	// Leftovers of a crash: an index half written, one whose segment
	// was deleted.
	orphan := filepath.Join(dir, "segments", "00000000000000ff.idx")
	tmp := filepath.Join(dir, "segments", "0000000000000000.idx.tmp")
	for _, p := range []string{orphan, tmp} {
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c = mustOpen(t, dir, segOpts)
	for _, p := range []string{orphan, tmp} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("leftover %s kept: %v", filepath.Base(p), err)
		}
	}
	getAll(t, c, b, small)
	checkAccounting(t, c)
}

func TestSegmentCrashRecovery(t *testing.T) {
	b := newBlobs(t)
	dir := t.TempDir()
	c := mustOpen(t, dir, segOpts)
	bs := makeBlobs(t, b, "x", 50, 300)
	putAll(t, c, bs)

	// A crash: the files as they are while the cache is open (the current
	// segment has no index), plus a torn append at the end.
	flushTail(t, c)
	crashed := t.TempDir()
	if err := os.CopyFS(crashed, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	segs, _ := filepath.Glob(filepath.Join(crashed, "segments", "*.seg"))
	if len(segs) != 1 {
		t.Fatalf("want one segment, got %v", segs)
	}
	torn := appendRecord(nil, crypto.ID{7}, bytes.Repeat([]byte{1}, 300))[:200]
	f, err := os.OpenFile(segs[0], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(torn); err != nil {
		t.Fatal(err)
	}
	f.Close()
	before, _ := os.Stat(segs[0])
	_ = os.Remove(filepath.Join(crashed, "lock"))

	c2 := mustOpen(t, crashed, segOpts)
	after, err := os.Stat(segs[0])
	if err != nil || after.Size() != before.Size()-200 {
		t.Fatalf("torn tail not cut: %d bytes before, after: %v, %v", before.Size(), after, err)
	}
	getAll(t, c2, b, bs)
	if s := checkAccounting(t, c2); s.DiskItems != 50 {
		t.Errorf("want 50 blobs, got %+v", s)
	}
	// Appends after the cut read back too.
	more := makeBlobs(t, b, "more", 10, 300)
	putAll(t, c2, more)
	getAll(t, c2, b, more)
}

// LRU a segment at a time: a segment read from now and then stays, the
// others go oldest first.
func TestSegmentsEvictLeastRecentlyUsed(t *testing.T) {
	b := newBlobs(t)
	c := mustOpen(t, t.TempDir(), segOpts)
	first := makeBlobs(t, b, "first", 300, 400) // ~130 KiB: a few segments
	putAll(t, c, first)
	hot := first[0]
	hotSeg := c.segIndex[hot.id].seg
	var others []testBlob // early blobs in other segments
	for _, x := range first {
		if c.segIndex[x.id].seg != hotSeg {
			others = append(others, x)
		}
	}
	if len(others) == 0 {
		t.Fatal("all early blobs in one segment")
	}
	// ~6 MiB through a 2 MiB tier, reading one early blob now and then.
	for round := range 15 {
		putAll(t, c, makeBlobs(t, b, fmt.Sprint("fill", round, "-"), 1000, 400))
		mustGet(t, c, b, hot.id, noFetch(t), hot.plain)
	}
	s := checkAccounting(t, c)
	if s.DiskBytes > segOpts.DiskBytes || s.Evictions == 0 {
		t.Fatalf("tier over its limit or nothing evicted: %+v", s)
	}
	if s.DiskBytes < segOpts.DiskBytes*9/10 {
		t.Errorf("eviction freed far more than needed: %+v", s)
	}
	if !c.HasSealed(hot.id) {
		t.Error("a blob read all along was evicted")
	}
	for _, x := range others {
		if c.HasSealed(x.id) {
			t.Fatalf("an early blob never read again survived 6 MiB of newer ones")
		}
	}
}

func TestPinnedBlobLeavesItsSegment(t *testing.T) {
	b := newBlobs(t)
	dir := t.TempDir()
	c := mustOpen(t, dir, Options{MemBytes: 1 << 20, DiskBytes: segOpts.DiskBytes, SegmentBytes: segOpts.SegmentBytes})
	bs := makeBlobs(t, b, "p", 10, 300)
	putAll(t, c, bs)
	mustGet(t, c, b, bs[3].id, noFetch(t), bs[3].plain) // now in memory too
	if err := c.Pin(bs[3].id); err != nil {
		t.Fatal(err)
	}
	// Pinning a file gets every blob of it: the Get copies it out, even
	// with the plaintext in memory.
	mustGet(t, c, b, bs[3].id, noFetch(t), bs[3].plain)
	if _, err := os.Stat(c.blobPath(bs[3].id)); err != nil {
		t.Fatalf("pinned blob not copied to a file of its own: %v", err)
	}
	if s := checkAccounting(t, c); s.PinnedItems != 1 || s.DiskItems != 10 {
		t.Errorf("want 10 blobs, 1 pinned: %+v", s)
	}
	// A restart finds the old segment copy too: the file wins.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = mustOpen(t, dir, segOpts)
	if _, inSeg := c.segIndex[bs[3].id]; inSeg {
		t.Errorf("pinned blob indexed in its old segment after a restart")
	}
	if s := checkAccounting(t, c); s.PinnedItems != 1 || s.DiskItems != 10 {
		t.Errorf("after restart: want 10 blobs, 1 pinned: %+v", s)
	}
	// Push every segment out: the pinned blob stays.
	for round := range 6 {
		putAll(t, c, makeBlobs(t, b, fmt.Sprint("fill", round, "-"), 1000, 400))
	}
	mustGet(t, c, b, bs[3].id, noFetch(t), bs[3].plain)
	if c.HasSealed(bs[4].id) {
		t.Error("unpinned neighbour survived")
	}
	// And a restart keeps the file, not a segment copy, as the blob's home.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = mustOpen(t, dir, segOpts)
	if _, inSeg := c.segIndex[bs[3].id]; inSeg || c.Stats().PinnedItems != 1 {
		t.Errorf("pinned blob indexed in a segment after restart")
	}
	checkAccounting(t, c)
}

func TestCorruptSegmentRecordIsRefetched(t *testing.T) {
	b := newBlobs(t)
	dir := t.TempDir()
	c := mustOpen(t, dir, segOpts)
	bs := makeBlobs(t, b, "c", 3, 300)
	putAll(t, c, bs)
	// Reopened, so the records are read from the file, not from the end
	// of the segment that appends keep in memory.
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = mustOpen(t, dir, segOpts)
	loc := c.segIndex[bs[1].id]
	f, err := os.OpenFile(loc.seg.path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0xff, 0xee}, int64(loc.off)+10); err != nil {
		t.Fatal(err)
	}
	f.Close()
	fe := &fetcher{sealed: bs[1].sealed}
	mustGet(t, c, b, bs[1].id, fe.fetch, bs[1].plain)
	if s := c.Stats(); fe.calls.Load() != 1 || s.Corrupt != 1 {
		t.Errorf("corrupt record: %d fetches, %+v", fe.calls.Load(), s)
	}
	// Its neighbours are untouched, and the refetched copy is cached.
	mustGet(t, c, b, bs[0].id, noFetch(t), bs[0].plain)
	mustGet(t, c, b, bs[2].id, noFetch(t), bs[2].plain)
	mustGet(t, c, b, bs[1].id, noFetch(t), bs[1].plain)
}

func TestSegmentsOffForSmallLimits(t *testing.T) {
	b := newBlobs(t)
	c := mustOpen(t, t.TempDir(), Options{DiskBytes: 64 << 10, SegmentBytes: 32 << 20})
	putAll(t, c, makeBlobs(t, b, "s", 5, 100))
	if s := checkAccounting(t, c); s.Segments != 0 || s.DiskItems != 5 {
		t.Errorf("a 64 KiB tier used segments: %+v", s)
	}
}

func TestSegmentsConcurrentUse(t *testing.T) {
	b := newBlobs(t)
	c := mustOpen(t, t.TempDir(), Options{MemBytes: 8 << 10, DiskBytes: 2 << 20, SegmentBytes: 64 << 10})
	all := makeBlobs(t, b, "c", 40, 300)
	fill := makeBlobs(t, b, "fill", 4000, 400)
	var wg sync.WaitGroup
	wg.Go(func() { // eviction pressure all along
		for _, x := range fill {
			if err := c.PutSealed(x.id, x.sealed); err != nil {
				t.Error(err)
				return
			}
		}
	})
	mixedUse(t, &wg, c, b, all, 6, 400)
	wg.Wait()
	s := checkAccounting(t, c)
	if s.DiskBytes-s.PinnedBytes > 2<<20 && s.DiskItems > s.PinnedItems {
		t.Errorf("disk tier over its limit with unpinned blobs left: %+v", s)
	}
	for id := range c.pins {
		if _, inSeg := c.segIndex[id]; inSeg {
			t.Errorf("pinned blob %s lives in a segment", id.Short())
		}
	}
}

func TestClosedDuringAppends(t *testing.T) {
	b := newBlobs(t)
	dir := t.TempDir()
	c, err := Open(dir, segOpts)
	if err != nil {
		t.Fatal(err)
	}
	bs := makeBlobs(t, b, "x", 500, 300)
	done := make(chan error, 1)
	go func() {
		for _, x := range bs {
			if err := c.PutSealed(x.id, x.sealed); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil && !errors.Is(err, ErrClosed) {
		t.Fatalf("PutSealed during Close = %v, want nil or ErrClosed", err)
	}
	// Whatever was appended reads back after a reopen.
	c = mustOpen(t, dir, segOpts)
	for _, x := range bs {
		if c.HasSealed(x.id) {
			mustGet(t, c, b, x.id, noFetch(t), x.plain)
		}
	}
	checkAccounting(t, c)
}

func FuzzWalkSegment(f *testing.F) {
	seg := []byte(segMagic)
	seg = appendRecord(seg, crypto.ID{1}, []byte("sealed one"))
	seg = appendRecord(seg, crypto.ID{2}, bytes.Repeat([]byte{2}, 100))
	f.Add(seg)
	f.Add(seg[:len(seg)-5])
	f.Add([]byte(segMagic))
	f.Add([]byte("ASSEGV1\n\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		entries, valid, err := walkSegment(data)
		if err != nil {
			return
		}
		if valid > len(data) || valid < len(segMagic) {
			t.Fatalf("valid prefix %d of %d bytes", valid, len(data))
		}
		// The valid prefix is exactly its records, each one re-encodes
		// to the same bytes, and the index round-trips.
		again := []byte(segMagic)
		for _, e := range entries {
			if int(e.off)+int(e.n) > valid {
				t.Fatalf("entry past the valid prefix")
			}
			again = appendRecord(again, e.id, data[e.off:e.off+e.n])
		}
		if !bytes.Equal(again, data[:valid]) {
			t.Fatalf("records do not re-encode to the valid prefix")
		}
		back, err := decodeIndex(encodeIndex(int64(valid), entries), int64(valid))
		if err != nil || !slices.Equal(back, entries) {
			t.Fatalf("index round trip: %v", err)
		}
	})
}

func FuzzDecodeIndex(f *testing.F) {
	entries := []segEntry{{id: crypto.ID{1}, off: 48, n: 10}, {id: crypto.ID{2}, off: 98, n: 100}}
	f.Add(encodeIndex(200, entries), int64(200))
	f.Add(encodeIndex(8, nil), int64(8))
	f.Add([]byte("ASSIDX1\n"), int64(0))
	f.Fuzz(func(t *testing.T, data []byte, size int64) {
		entries, err := decodeIndex(data, size)
		if err != nil {
			return
		}
		for _, e := range entries {
			if e.n == 0 || int64(e.off)+int64(e.n) > size {
				t.Fatalf("entry %+v outside a %d-byte segment", e, size)
			}
		}
		if !bytes.Equal(encodeIndex(size, entries), data) {
			t.Fatalf("decoded index does not re-encode to its bytes")
		}
	})
}

func TestParseSegName(t *testing.T) {
	for name, want := range map[string]bool{
		"00000000000000a1.seg": true, "00000000000000A1.seg": false, "a1.seg": false,
		"00000000000000a1.idx": false, "00000000000000a1.seg.tmp": false, "000000000000000g.seg": false,
	} {
		if _, ok := parseSegName(name); ok != want {
			t.Errorf("parseSegName(%q) = %v, want %v", name, ok, want)
		}
	}
}

// A segment evicted while a record is being appended to it: the blob is
// not cached, and the tier's byte count still matches the files.
func TestSegmentEvictedDuringAppend(t *testing.T) {
	b := newBlobs(t)
	c := mustOpen(t, t.TempDir(), segOpts)
	putAll(t, c, makeBlobs(t, b, "x", 10, 300))
	c.testAppending = func() {
		c.testAppending = nil
		c.SetDiskLimit(0) // evicts every segment, the current one included
	}
	late := makeBlobs(t, b, "late", 1, 300)[0]
	if err := c.PutSealed(late.id, late.sealed); err != nil {
		t.Fatal(err)
	}
	if c.HasSealed(late.id) {
		t.Error("a blob appended to an evicted segment is indexed")
	}
	if s := checkAccounting(t, c); s.DiskBytes != 0 || s.Segments != 0 {
		t.Errorf("after evicting everything: %+v", s)
	}
	// The tier goes on with a new segment.
	c.SetDiskLimit(segOpts.DiskBytes)
	putAll(t, c, []testBlob{late})
	mustGet(t, c, b, late.id, noFetch(t), late.plain)
	checkAccounting(t, c)
}

// A file in the way of the next segment's name does not stop appends.
func TestSegmentNameTaken(t *testing.T) {
	b := newBlobs(t)
	dir := t.TempDir()
	c := mustOpen(t, dir, segOpts)
	// A directory is not taken for a segment at Open, but holds the name.
	if err := os.MkdirAll(filepath.Join(dir, "segments", fmt.Sprintf("%016x.seg", c.nextSeq)), 0o700); err != nil {
		t.Fatal(err)
	}
	bs := makeBlobs(t, b, "x", 3, 300)
	putAll(t, c, bs)
	getAll(t, c, b, bs)
}

// A segment whose blobs all went while it was current is deleted once
// the next one replaces it, not kept until eviction.
func TestEmptiedCurrentSegmentGoes(t *testing.T) {
	b := newBlobs(t)
	c := mustOpen(t, t.TempDir(), segOpts)
	blobs := makeBlobs(t, b, "x", 400, 300)
	// Fill the current segment until the next record would not fit.
	var in []testBlob
	for _, x := range blobs {
		if cur := c.cur[ownWrite]; cur != nil && cur.size+int64(recHeader+len(x.sealed)) > c.segTargetLocked() {
			break
		}
		putAll(t, c, []testBlob{x})
		in = append(in, x)
	}
	old := c.cur[ownWrite]
	for _, x := range in {
		c.dropDisk(x.id, false) // as copies that failed to open
	}
	if _, err := os.Stat(old.path); err != nil {
		t.Fatalf("the current segment went while current: %v", err)
	}
	putAll(t, c, blobs[len(in):len(in)+1]) // starts the next segment
	if c.cur[ownWrite] == old {
		t.Fatal("no new segment")
	}
	if _, err := os.Stat(old.path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("emptied segment kept: %v", err)
	}
	checkAccounting(t, c)
}
