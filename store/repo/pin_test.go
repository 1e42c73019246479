package repo

import (
	"bytes"
	"context"
	"errors"
	"testing"

	"github.com/anysync/anysync/store/cache"
	"github.com/anysync/anysync/store/objstore"
	"github.com/anysync/anysync/store/tree"
)

// pinSetup stores a file of 2 MiB (data, refs) and another of otherSize
// bytes, and opens a repository over them with a cache of opts.
func pinSetup(t *testing.T, otherSize int, opts cache.Options) (fx *fixture, data []byte, refs, other []tree.ChunkRef, c *cache.Cache, r *Repo) {
	t.Helper()
	fx = newFixture()
	w := fx.open(t, &smallChunks)
	data = randomData(2<<20, 21)
	refs = writeFile(t, w, data)
	other = writeFile(t, w, randomData(otherSize, 22))
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	c, err := cache.Open(t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r, err = Open(Config{Keys: fx.keys, Objects: fx.objs, Index: fx.index, Cache: c, Chunker: &smallChunks})
	if err != nil {
		t.Fatal(err)
	}
	return fx, data, refs, other, c, r
}

func TestPinDownloadsAndSurvivesEviction(t *testing.T) {
	// A disk tier smaller than both files together.
	fx, data, refs, other, c, r := pinSetup(t, 2<<20, cache.Options{MemBytes: 1 << 20, DiskBytes: 3 << 20})
	var last, total int64
	if err := r.Pin(context.Background(), refs, func(d, tot int64) { last, total = d, tot }); err != nil {
		t.Fatal(err)
	}
	if last != int64(len(data)) || total != int64(len(data)) {
		t.Fatalf("progress ended at %d of %d, want %d", last, total, len(data))
	}
	if st, _ := r.CacheState(refs); st.Cached != len(refs) || st.Pinned != len(refs) || st.CachedBytes != int64(len(data)) {
		t.Fatalf("after pin: %+v for %d chunks", st, len(refs))
	}
	// Reading another file through the small cache evicts unpinned chunks
	// only; the pinned file still reads with the store gone.
	_ = readAll(t, r, other)
	// An empty store: every fetch fails, so what reads comes from disk.
	offline, err := Open(Config{Keys: fx.keys, Objects: objstore.NewMem(), Index: fx.index, Cache: c, Chunker: &smallChunks})
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, offline, refs); !bytes.Equal(got, data) {
		t.Fatal("pinned file does not read back from the cache")
	}
	if err := r.Unpin(refs); err != nil {
		t.Fatal(err)
	}
	if st, _ := r.CacheState(refs); st.Pinned != 0 {
		t.Fatalf("%d chunks still pinned after unpin", st.Pinned)
	}
}

func TestPinWithoutCache(t *testing.T) {
	fx := newFixture()
	r := fx.open(t, &smallChunks)
	if err := r.Pin(context.Background(), nil, nil); !errors.Is(err, ErrNoPinning) {
		t.Fatalf("Pin without a cache: %v", err)
	}
}

// Our own writes are kept on local disk: they read back with no store.
func TestWritesAreCachedLocally(t *testing.T) {
	fx := newFixture()
	c, err := cache.Open(t.TempDir(), cache.Options{MemBytes: 1 << 20, DiskBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w, err := Open(Config{Keys: fx.keys, Objects: fx.objs, Index: fx.index, Cache: c, Chunker: &smallChunks})
	if err != nil {
		t.Fatal(err)
	}
	data := randomData(1<<20, 31)
	refs := writeFile(t, w, data)
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st, _ := w.CacheState(refs); st.Cached != len(refs) {
		t.Fatalf("%d of %d written chunks on local disk", st.Cached, len(refs))
	}
	offline, err := Open(Config{Keys: fx.keys, Objects: objstore.NewMem(), Index: fx.index, Cache: c, Chunker: &smallChunks})
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, offline, refs); !bytes.Equal(got, data) {
		t.Fatal("a written file does not read back from the local cache")
	}
}

// With the cache's segments on, chunks already cached sit in segments,
// which are evicted whole: pinning copies them out to durable files.
func TestPinCopiesCachedChunksOutOfSegments(t *testing.T) {
	// 2 MiB segments take every chunk (up to 256 KiB).
	fx, data, refs, other, c, r := pinSetup(t, 80<<20, cache.Options{MemBytes: 1 << 20, DiskBytes: 64 << 20, SegmentBytes: 2 << 20})
	_ = readAll(t, r, refs)
	if s := c.Stats(); s.Segments == 0 || s.DiskItems != len(refs) {
		t.Fatalf("chunks not cached in segments: %+v", s)
	}
	if err := r.Pin(context.Background(), refs, nil); err != nil {
		t.Fatal(err)
	}
	for _, ref := range refs {
		if !c.PinnedOnDisk(ref.ID) {
			t.Fatalf("pinned chunk %s has no durable copy", ref.ID.Short())
		}
	}
	_ = readAll(t, r, other) // evicts every segment
	offline, err := Open(Config{Keys: fx.keys, Objects: objstore.NewMem(), Index: fx.index, Cache: c, Chunker: &smallChunks})
	if err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, offline, refs); !bytes.Equal(got, data) {
		t.Fatal("pinned file does not read back from the cache")
	}
}
