package localdb

import (
	"context"
	"crypto/rand"
	"sync"
	"testing"

	"github.com/anysync/anysync/crypto"
)

func blobIDs(t testing.TB, n int) []crypto.ID {
	t.Helper()
	ids := make([]crypto.ID, n)
	for i := range ids {
		if _, err := rand.Read(ids[i][:]); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}

func openBlobDB(t testing.TB, stored []crypto.ID) *DB {
	t.Helper()
	db := openTestDB(t)
	entries := make([]BlobEntry, len(stored))
	for i, id := range stored {
		entries[i] = BlobEntry{ID: id, BlobLocation: BlobLocation{Pack: "p", Offset: uint32(i), Length: 40}}
	}
	if err := db.AddBlobs(context.Background(), entries, false); err != nil {
		t.Fatal(err)
	}
	return db
}

// TestHasBlobs checks batched lookups against single ones: more IDs than
// one query carries, stored and absent ones interleaved, a repeated ID.
func TestHasBlobs(t *testing.T) {
	ids := blobIDs(t, 200)
	var stored []crypto.ID
	for i, id := range ids {
		if i%3 != 0 {
			stored = append(stored, id)
		}
	}
	db := openBlobDB(t, stored)
	ctx := context.Background()
	query := append(append([]crypto.ID{}, ids...), ids[1], ids[0])
	got, err := db.HasBlobs(ctx, query)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(query) {
		t.Fatalf("%d answers for %d IDs", len(got), len(query))
	}
	for i, id := range query {
		_, want, err := db.LookupBlob(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if got[i] != want {
			t.Errorf("ID %d: HasBlobs %v, LookupBlob %v", i, got[i], want)
		}
	}
	if got, err := db.HasBlobs(ctx, nil); err != nil || len(got) != 0 {
		t.Fatalf("no IDs: %v, %v", got, err)
	}
}

// BenchmarkLookupBlobs compares one query per ID with HasBlobs, for 128
// IDs (a backup's batch) half of them stored, in an index of 20 000.
func BenchmarkLookupBlobs(b *testing.B) {
	stored := blobIDs(b, 20_000)
	db := openBlobDB(b, stored)
	ctx := context.Background()
	query := append(blobIDs(b, 64), stored[:64]...)
	b.Run("single", func(b *testing.B) {
		for b.Loop() {
			for _, id := range query {
				if _, _, err := db.LookupBlob(ctx, id); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("batched", func(b *testing.B) {
		for b.Loop() {
			if _, err := db.HasBlobs(ctx, query); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestMarkBlobsCommitted marks more entries than one statement carries,
// some of them unknown: exactly the others stay uncommitted.
func TestMarkBlobsCommitted(t *testing.T) {
	ids := blobIDs(t, 150)
	db := openBlobDB(t, ids)
	ctx := context.Background()
	var mark []BlobEntry
	kept := map[crypto.ID]bool{}
	for i, id := range ids {
		if i%5 == 0 {
			kept[id] = true
		} else {
			mark = append(mark, BlobEntry{ID: id})
		}
	}
	for _, id := range blobIDs(t, 3) {
		mark = append(mark, BlobEntry{ID: id}) // not in the index: no effect
	}
	if err := db.Update(ctx, func(tx *Tx) error { return tx.MarkBlobsCommitted(mark) }); err != nil {
		t.Fatal(err)
	}
	left, err := db.UncommittedBlobs(ctx, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != len(kept) {
		t.Fatalf("%d uncommitted, want %d", len(left), len(kept))
	}
	for _, e := range left {
		if !kept[e.ID] {
			t.Fatalf("%s is uncommitted though it was marked", e.ID.Short())
		}
	}
}

func BenchmarkMarkBlobsCommitted(b *testing.B) {
	ids := blobIDs(b, 13_000)
	db := openBlobDB(b, ids)
	ctx := context.Background()
	entries := make([]BlobEntry, len(ids))
	for i, id := range ids {
		entries[i] = BlobEntry{ID: id}
	}
	for b.Loop() {
		if err := db.Update(ctx, func(tx *Tx) error { return tx.MarkBlobsCommitted(entries) }); err != nil {
			b.Fatal(err)
		}
	}
}

// TestAddBlobsKeepsFirstLocation adds more entries than one statement
// carries, then some again with other locations: the first stays.
func TestAddBlobsKeepsFirstLocation(t *testing.T) {
	ids := blobIDs(t, 130)
	db := openBlobDB(t, ids) // offsets 0..129, pack "p", uncommitted
	ctx := context.Background()
	again := make([]BlobEntry, 0, 70)
	for i, id := range ids[:70] {
		again = append(again, BlobEntry{ID: id, BlobLocation: BlobLocation{Pack: "q", Offset: 1000 + uint32(i), Length: 1}})
	}
	if err := db.AddBlobs(ctx, again, true); err != nil {
		t.Fatal(err)
	}
	for i, id := range ids {
		loc, ok, err := db.LookupBlob(ctx, id)
		if err != nil || !ok {
			t.Fatalf("entry %d: %v, %v", i, ok, err)
		}
		if loc != (BlobLocation{Pack: "p", Offset: uint32(i), Length: 40}) {
			t.Fatalf("entry %d at %+v, want its first location", i, loc)
		}
	}
	left, err := db.UncommittedBlobs(ctx, 1000)
	if err != nil || len(left) != len(ids) {
		t.Fatalf("%d uncommitted (%v), want all %d: adding again must not mark them committed", len(left), err, len(ids))
	}
}

func BenchmarkAddBlobs(b *testing.B) {
	for b.Loop() {
		b.StopTimer()
		ids := blobIDs(b, 13_000)
		db := openBlobDB(b, nil)
		entries := make([]BlobEntry, len(ids))
		for i, id := range ids {
			entries[i] = BlobEntry{ID: id, BlobLocation: BlobLocation{Pack: "p", Offset: uint32(i), Length: 40}}
		}
		b.StartTimer()
		if err := db.AddBlobs(context.Background(), entries, false); err != nil {
			b.Fatal(err)
		}
	}
}

// TestConcurrentAddBlobs adds entries from several goroutines at once, in
// batches whose last statement has a different size each time (a pack's
// entries): no transaction may wait on another for a connection.
func TestConcurrentAddBlobs(t *testing.T) {
	db := openBlobDB(t, nil)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for round := range 5 {
				ids := blobIDs(t, 70+g*7+round)
				entries := make([]BlobEntry, len(ids))
				for i, id := range ids {
					entries[i] = BlobEntry{ID: id, BlobLocation: BlobLocation{Pack: "p", Offset: uint32(i), Length: 40}}
				}
				if err := db.AddBlobs(ctx, entries, false); err != nil {
					errs <- err
					return
				}
				if err := db.Update(ctx, func(tx *Tx) error { return tx.MarkBlobsCommitted(entries[:len(entries)-3]) }); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
