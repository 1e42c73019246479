package cache

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/anysync/anysync/store/internal/directio"
)

// directDir returns a temporary folder whose file system takes O_DIRECT,
// or skips.
func directDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "probe")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := directio.Open(p, os.O_WRONLY, 0)
	if err != nil {
		t.Skipf("no direct appends here: %v", err)
	}
	f.Close()
	return dir
}

// Appends of any size, across many buffers, read back whole or in part at
// every moment, from the buffer, the file or both; finish leaves exactly
// the bytes appended.
func TestDirectTailReadsBack(t *testing.T) {
	p := filepath.Join(directDir(t), "seg")
	rf, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer rf.Close()
	df, err := directio.Open(p, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	tail := newDirectTail(df, 0)
	rng := rand.New(rand.NewPCG(1, 2))
	var want []byte
	for len(want) < 3*tailBuf+12345 {
		piece := make([]byte, 1+rng.IntN(tailBuf/3))
		for i := range piece {
			piece[i] = byte(rng.Uint32())
		}
		if err := tail.append(piece); err != nil {
			t.Fatal(err)
		}
		want = append(want, piece...)
		for range 4 {
			off := rng.Int64N(int64(len(want)))
			n := 1 + rng.Int64N(min(int64(len(want))-off, tailBuf))
			got := make([]byte, n)
			k, err := tail.readAt(got, off)
			if err != nil {
				t.Fatal(err)
			}
			if k > 0 {
				if _, err := rf.ReadAt(got[:k], off); err != nil {
					t.Fatalf("read [%d,+%d) from the file: %v", off, k, err)
				}
			}
			if !bytes.Equal(got, want[off:off+n]) {
				t.Fatalf("[%d,+%d) of %d bytes (base %d) reads back wrong", off, n, len(want), tail.base)
			}
		}
	}
	if tail.base < 2*tailBuf {
		t.Fatalf("only %d bytes handed to the writer", tail.base)
	}
	if err := tail.finish(); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("file holds %d bytes, want the %d appended (%v)", len(got), len(want), err)
	}
}

// fetchAll gets blobs that are not cached, each fetched once.
func fetchAll(t *testing.T, c *Cache, b *blobs, bs []testBlob) {
	t.Helper()
	for _, x := range bs {
		fe := &fetcher{sealed: x.sealed}
		mustGet(t, c, b, x.id, fe.fetch, x.plain)
		if fe.calls.Load() != 1 {
			t.Errorf("blob %s: %d fetches, want 1", x.id.Short(), fe.calls.Load())
		}
	}
}

// Fetched blobs are appended through a direct tail where the file system
// allows it, this device's uploads through the page cache, each to a
// segment of its own; a crash loses what the tail held and nothing else,
// and the cache reopens consistent.
func TestSegmentTailLostInCrash(t *testing.T) {
	b := newBlobs(t)
	dir := directDir(t)
	c := mustOpen(t, dir, segOpts)
	own := makeBlobs(t, b, "own", 3, 300)
	putAll(t, c, own)
	first := makeBlobs(t, b, "first", 3, 300)
	fetchAll(t, c, b, first)
	if s := c.cur[fetched]; s == nil || s.tail == nil {
		t.Fatal("fetched blobs are appended through the page cache")
	}
	if s := c.cur[ownWrite]; s == nil || s.tail != nil || s == c.cur[fetched] {
		t.Fatal("uploads are not appended through the page cache, to a segment of their own")
	}
	flushTail(t, c) // as a full buffer would have been
	late := makeBlobs(t, b, "late", 2, 300)
	fetchAll(t, c, b, late)
	getAll(t, c, b, append(append(own, first...), late...))

	crashed := t.TempDir()
	if err := os.CopyFS(crashed, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	_ = os.Remove(filepath.Join(crashed, "lock"))
	c2 := mustOpen(t, crashed, segOpts)
	getAll(t, c2, b, append(own, first...))
	fetchAll(t, c2, b, late)
	checkAccounting(t, c2)
	if _, err := c2.Get(context.Background(), late[0].id, noFetch(t), b.opener(late[0].id)); err != nil {
		t.Fatal(err)
	}
}
