package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/store/objstore"
)

func openBatched(t testing.TB, fx *fixture, index Index, batch int) *Repo {
	t.Helper()
	r, err := Open(Config{Keys: fx.keys, Objects: fx.objs, Index: index, PackSize: 1 << 20, LookupBatch: batch})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func smallBlob(i int) []byte {
	return []byte(fmt.Sprintf("small file %d: %s", i, bytes.Repeat([]byte{byte(i)}, i%50)))
}

// TestBatchedLookups saves small blobs through batched lookups, some of
// them stored before: the known ones are not uploaded again, every one
// reads back before and after Flush, and SaveBlob's caller may reuse its
// buffer at once.
func TestBatchedLookups(t *testing.T) {
	fx := newFixture()
	ctx := context.Background()
	first := fx.open(t, nil)
	for i := 0; i < 30; i += 3 {
		if _, err := first.SaveBlob(ctx, crypto.BlobData, smallBlob(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := first.Flush(ctx); err != nil {
		t.Fatal(err)
	}

	r := openBatched(t, fx, fx.index, 4)
	ids := make([]crypto.ID, 30)
	buf := make([]byte, 0, 100)
	for i := range ids {
		buf = append(buf[:0], smallBlob(i)...)
		id, err := r.SaveBlob(ctx, crypto.BlobData, buf)
		if err != nil {
			t.Fatal(err)
		}
		clear(buf) // the repository kept its own copy
		ids[i] = id
		if ok, err := r.Has(id); err != nil || !ok {
			t.Fatalf("blob %d: Has = %v, %v right after SaveBlob", i, ok, err)
		}
	}
	// 30 is not a multiple of 4: the last blobs wait for Flush, and a
	// load stores them first.
	got, err := r.LoadBlob(ctx, crypto.BlobData, ids[29])
	if err != nil || !bytes.Equal(got, smallBlob(29)) {
		t.Fatalf("load a deferred blob before Flush: %q, %v", got, err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := r.PendingBlobs(); n != 0 {
		t.Fatalf("%d blobs pending after Flush", n)
	}
	if n := len(r.TakeNewEntries()); n != 20 {
		t.Fatalf("uploaded %d blobs, want the 20 not stored before", n)
	}
	for i, id := range ids {
		got, err := r.LoadBlob(ctx, crypto.BlobData, id)
		if err != nil || !bytes.Equal(got, smallBlob(i)) {
			t.Fatalf("blob %d after Flush: %q, %v", i, got, err)
		}
	}
}

// TestBatchedLookupsConcurrent saves the same blobs from several
// goroutines: each is stored once.
func TestBatchedLookupsConcurrent(t *testing.T) {
	fx := newFixture()
	r := openBatched(t, fx, fx.index, 16)
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				if _, err := r.SaveBlob(ctx, crypto.BlobData, smallBlob((i*7+g)%200)); err != nil {
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
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(r.TakeNewEntries()); n != 200 {
		t.Fatalf("uploaded %d blobs, want 200 distinct ones once each", n)
	}
	if n := fx.index.Len(); n != 200 {
		t.Fatalf("index holds %d blobs, want 200", n)
	}
}

// failingIndex is a batch index whose batched lookups fail.
type failingIndex struct{ *MemIndex }

var errIndexDown = errors.New("index unreadable")

func (failingIndex) Contains([]crypto.ID) ([]bool, error) { return nil, errIndexDown }

// TestBatchedLookupFailureFailsFlush: blobs SaveBlob accepted are lost
// when their batch cannot be looked up, so no Flush may succeed after
// that (a commit would name blobs that were never stored).
func TestBatchedLookupFailureFailsFlush(t *testing.T) {
	fx := newFixture()
	r := openBatched(t, fx, failingIndex{fx.index}, 3)
	ctx := context.Background()
	var err error
	for i := 0; i < 3 && err == nil; i++ {
		_, err = r.SaveBlob(ctx, crypto.BlobData, smallBlob(i))
	}
	if !errors.Is(err, errIndexDown) {
		t.Fatalf("the SaveBlob that filled the batch: %v, want the index error", err)
	}
	for range 2 {
		if err := r.Flush(ctx); !errors.Is(err, errIndexDown) {
			t.Fatalf("Flush after a lost batch: %v, want the index error", err)
		}
	}
	if _, err := r.SaveBlob(ctx, crypto.BlobData, smallBlob(9)); !errors.Is(err, errIndexDown) {
		t.Fatalf("SaveBlob after a lost batch: %v", err)
	}
	if n := r.PendingBlobs(); n != 0 {
		t.Fatalf("%d lost blobs still pending", n)
	}
}

func TestBatchedLookupNeedsBatchIndex(t *testing.T) {
	fx := newFixture()
	_, err := Open(Config{Keys: fx.keys, Objects: objstore.NewMem(), Index: plainIndex{fx.index}, LookupBatch: 8})
	if err == nil {
		t.Fatal("LookupBatch accepted with an index without batch lookups")
	}
}

// plainIndex hides MemIndex's batch lookups.
type plainIndex struct{ x *MemIndex }

func (p plainIndex) Lookup(id crypto.ID) (Location, bool, error) { return p.x.Lookup(id) }
func (p plainIndex) Add(e []IndexEntry) error                    { return p.x.Add(e) }

// dedupIndex answers deduplication from its own set (DedupIndex) and
// reads from the index below it.
type dedupIndex struct {
	plainIndex
	known map[crypto.ID]bool
	asked int
}

func (d *dedupIndex) Known(id crypto.ID) (bool, error) {
	d.asked++
	return d.known[id], nil
}

// Deduplication asks DedupIndex.Known, not Lookup: what Known reports as
// stored is not stored again.
func TestSaveBlobDedupsThroughKnown(t *testing.T) {
	data := []byte("known elsewhere")
	idx := &dedupIndex{plainIndex: plainIndex{NewMemIndex()}, known: map[crypto.ID]bool{}}
	r, err := Open(Config{Keys: testKeys(3), Objects: objstore.NewMem(), Index: idx})
	if err != nil {
		t.Fatal(err)
	}
	idx.known[r.ID(data)] = true
	if _, err := r.SaveBlob(context.Background(), crypto.BlobData, data); err != nil {
		t.Fatal(err)
	}
	if idx.asked != 1 || r.PendingBlobs() != 0 {
		t.Fatalf("Known asked %d times, %d blobs pending; want 1 and 0", idx.asked, r.PendingBlobs())
	}
	if _, err := r.SaveBlob(context.Background(), crypto.BlobData, []byte("new")); err != nil {
		t.Fatal(err)
	}
	if r.PendingBlobs() != 1 {
		t.Fatalf("%d blobs pending after a new blob, want 1", r.PendingBlobs())
	}
}
