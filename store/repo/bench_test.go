package repo

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"strconv"
	"testing"

	"github.com/anysync/anysync/store/cache"
	"github.com/anysync/anysync/store/objstore"
)

// The chunk cache is the repository's cache.
var _ Cache = (*cache.Cache)(nil)

// discardStore drops uploads, so the write benchmark measures the pipeline
// and not the test store's copying.
type discardStore struct{ objstore.ObjectStore }

func (discardStore) Put(_ context.Context, _ string, r io.Reader, _ int64) error {
	_, err := io.Copy(io.Discard, r)
	return err
}

// BenchmarkWriteFile measures the whole write pipeline on incompressible
// data: chunk, ID, compression probe, seal, pack, upload to memory.
func BenchmarkWriteFile(b *testing.B) {
	data := randomData(64<<20, 11)
	for _, workers := range []int{1, 0} {
		name := fmt.Sprintf("workers=%d", workers)
		if workers == 0 {
			name = "workers=GOMAXPROCS"
		}
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(data)))
			for i := 0; b.Loop(); i++ {
				// A new account each round, so nothing dedups.
				keys := testKeys(byte(i))
				r, err := Open(Config{Keys: keys, Objects: discardStore{objstore.NewMem()}, Index: NewMemIndex(), Workers: workers})
				if err != nil {
					b.Fatal(err)
				}
				if _, _, err := r.WriteFile(context.Background(), bytes.NewReader(data)); err != nil {
					b.Fatal(err)
				}
				if err := r.Flush(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkReadCached reads a file whose chunks are all in the cache: from
// the memory tier (decrypted), and from the disk tier (sealed: each read
// opens and verifies). ANYSYNC_BENCH_MIB sets the file size (default 256).
func BenchmarkReadCached(b *testing.B) {
	size := 256 << 20
	if v := os.Getenv("ANYSYNC_BENCH_MIB"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatal(err)
		}
		size = n << 20
	}
	data := randomData(size, 12)
	for _, tier := range []string{"memory", "disk"} {
		b.Run(tier, func(b *testing.B) {
			opts := cache.Options{MemBytes: int64(size) * 2, DiskBytes: int64(size) * 2}
			if tier == "disk" {
				opts.MemBytes = 8 << 20
			}
			c, err := cache.Open(b.TempDir(), opts)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			fx := newFixture()
			w := fx.open(b, nil)
			refs := writeFile(b, w, data)
			if err := w.Flush(context.Background()); err != nil {
				b.Fatal(err)
			}
			r, err := Open(Config{Keys: fx.keys, Objects: fx.objs, Index: fx.index, Cache: c})
			if err != nil {
				b.Fatal(err)
			}
			buf := make([]byte, 1<<20)
			readFile := func() {
				fr := r.NewReader(context.Background(), refs)
				for off := int64(0); off < fr.Size(); off += int64(len(buf)) {
					if _, err := fr.ReadAt(buf, off); err != nil && err != io.EOF {
						b.Fatal(err)
					}
				}
			}
			readFile() // warm the cache
			b.SetBytes(int64(size))
			b.ResetTimer()
			for b.Loop() {
				readFile()
			}
		})
	}
}

// handOverStore returns each range as a fresh buffer it hands over, as the
// server's pack store does, so the read path may decrypt it in place.
type handOverStore struct{ objstore.ObjectStore }

func (h handOverStore) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	rc, err := h.ObjectStore.GetRange(ctx, name, off, length)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b := make([]byte, length)
	if _, err := io.ReadFull(rc, b); err != nil {
		return nil, err
	}
	return objstore.NewBytesReader(b), nil
}

// BenchmarkReadCold reads a 64 MiB incompressible file with nothing cached:
// every chunk is fetched (a fresh buffer from the store, as the network
// gives), decrypted, kept in a 32 MiB memory tier; the disk tier is off, so
// this is the CPU and allocation cost of the cold read path above the
// network and below FUSE.
func BenchmarkReadCold(b *testing.B) {
	const size = 64 << 20
	data := randomData(size, 13)
	fx := newFixture()
	w := fx.open(b, nil)
	refs := writeFile(b, w, data)
	if err := w.Flush(context.Background()); err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		c, err := cache.Open(b.TempDir(), cache.Options{MemBytes: 32 << 20})
		if err != nil {
			b.Fatal(err)
		}
		r, err := Open(Config{Keys: fx.keys, Objects: handOverStore{fx.objs}, Index: fx.index, Cache: c})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		fr := r.NewReader(context.Background(), refs)
		for off := int64(0); off < fr.Size(); off += int64(len(buf)) {
			if _, err := fr.ReadAt(buf, off); err != nil && err != io.EOF {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		if err := c.Close(); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

// BenchmarkResumeFile measures what closing a file stored ahead while it
// was written costs: every chunk of the prefix read and hashed again, and
// found stored.
func BenchmarkResumeFile(b *testing.B) {
	data := randomData(64<<20, 12)
	r, err := Open(Config{Keys: testKeys(1), Objects: discardStore{objstore.NewMem()}, Index: NewMemIndex()})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	prefix, _, err := r.WritePrefix(ctx, bytes.NewReader(data))
	if err != nil {
		b.Fatal(err)
	}
	if err := r.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, _, err := r.ResumeFile(ctx, bytes.NewReader(data), prefix); err != nil {
			b.Fatal(err)
		}
	}
}
