package cache

import (
	"context"
	"crypto/sha256"
	"fmt"
	"strconv"
	"testing"

	"github.com/anysync/anysync/crypto"
)

func BenchmarkGetMemHit1MiB(b *testing.B) {
	bl := newBlobs(b)
	c := mustOpen(b, b.TempDir(), Options{MemBytes: 64 << 20, DiskBytes: 64 << 20})
	id, plain, sealed := bl.make(b, "x", 1<<20)
	mustGet(b, c, bl, id, (&fetcher{sealed: sealed}).fetch, plain)
	open := bl.opener(id)
	ctx := context.Background()
	b.SetBytes(1 << 20)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Get(ctx, id, nil, open); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetMemHitParallel(b *testing.B) {
	bl := newBlobs(b)
	c := mustOpen(b, b.TempDir(), Options{MemBytes: 64 << 20, DiskBytes: 64 << 20})
	var ids []crypto.ID
	var opens []func([]byte) ([]byte, error)
	for i := range 16 {
		id, plain, sealed := bl.make(b, string(rune('a'+i)), 1<<20)
		mustGet(b, c, bl, id, (&fetcher{sealed: sealed}).fetch, plain)
		ids = append(ids, id)
		opens = append(opens, bl.opener(id))
	}
	ctx := context.Background()
	b.SetBytes(1 << 20)
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			// Memory hits; the opener is there for the odd blob the memory
			// tier's shards evicted.
			if _, err := c.Get(ctx, ids[i%len(ids)], nil, opens[i%len(ids)]); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// From the disk tier, opened with the real blob cipher (AES-256-GCM), as
// the read path does.
func BenchmarkGetDiskHit1MiB(b *testing.B) {
	bl := newBlobs(b)
	c := mustOpen(b, b.TempDir(), Options{MemBytes: 0, DiskBytes: 64 << 20})
	id, _, sealed := bl.make(b, "x", 1<<20)
	if err := c.PutSealed(id, sealed); err != nil {
		b.Fatal(err)
	}
	open := bl.opener(id)
	ctx := context.Background()
	b.SetBytes(int64(len(sealed)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Get(ctx, id, nil, open); err != nil {
			b.Fatal(err)
		}
	}
}

// A miss: fetch (from memory here), write to disk, open, keep in memory;
// the disk copy a file each (segments off) or appended to a segment (the
// daemon's way: direct appends where the file system allows them).
func BenchmarkGetMissStore1MiB(b *testing.B) {
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"files", Options{MemBytes: 4 << 20, DiskBytes: 32 << 20}},
		{"segments", Options{MemBytes: 4 << 20, DiskBytes: 1 << 30, SegmentBytes: 32 << 20}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			bl := newBlobs(b)
			c := mustOpen(b, b.TempDir(), tc.opts)
			_, _, sealed := bl.make(b, "x", 1<<20)
			fetch := func(context.Context) ([]byte, error) { return sealed, nil }
			identity := func(s []byte) ([]byte, error) { return s, nil }
			ctx := context.Background()
			b.SetBytes(int64(len(sealed)))
			for i := 0; b.Loop(); i++ {
				var id crypto.ID
				id[0], id[1], id[2] = byte(i), byte(i>>8), byte(i>>16)
				if _, err := c.Get(ctx, id, fetch, identity); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A blob stored right after its upload: a small file's (each file of an
// extracted tree) and a large file's 1 MiB chunk; a file each (segments
// off) against appended to segments (the daemon's way).
func BenchmarkPutSealed(b *testing.B) {
	for _, size := range []int{4 << 10, 1 << 20} {
		for _, seg := range []int64{0, 32 << 20} {
			name := fmt.Sprintf("%dKiB/%s", size>>10, map[bool]string{false: "files", true: "segments"}[seg > 0])
			b.Run(name, func(b *testing.B) {
				bl := newBlobs(b)
				c := mustOpen(b, b.TempDir(), Options{MemBytes: 0, DiskBytes: 1 << 40, SegmentBytes: seg})
				_, _, sealed := bl.make(b, "x", size)
				b.SetBytes(int64(size))
				b.ReportAllocs()
				i := 0
				for b.Loop() {
					// Distinct IDs, so every put writes.
					id := crypto.ID(sha256.Sum256([]byte(strconv.Itoa(i))))
					i++
					if err := c.PutSealed(id, sealed); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// A blob from the disk tier, a file of its own against a segment record
// (in the current segment, so no move), opened with the real cipher.
func BenchmarkGetDiskHitSizes(b *testing.B) {
	for _, size := range []int{4 << 10, 1 << 20} {
		for _, seg := range []int64{0, 32 << 20} {
			name := fmt.Sprintf("%dKiB/%s", size>>10, map[bool]string{false: "files", true: "segments"}[seg > 0])
			b.Run(name, func(b *testing.B) {
				bl := newBlobs(b)
				c := mustOpen(b, b.TempDir(), Options{MemBytes: 0, DiskBytes: 1 << 30, SegmentBytes: seg})
				id, _, sealed := bl.make(b, "x", size)
				if err := c.PutSealed(id, sealed); err != nil {
					b.Fatal(err)
				}
				open := bl.opener(id)
				ctx := context.Background()
				b.SetBytes(int64(size))
				b.ReportAllocs()
				for b.Loop() {
					if _, err := c.Get(ctx, id, nil, open); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
