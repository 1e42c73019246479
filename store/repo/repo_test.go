package repo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/store/chunker"
	"github.com/anysync/anysync/store/objstore"
	"github.com/anysync/anysync/store/tree"
)

func testKeys(seed byte) *crypto.AccountKeys {
	k := &crypto.AccountKeys{}
	for i := range k.FileKey {
		k.FileKey[i] = seed
		k.AuthKey[i] = seed + 1
	}
	return k
}

// smallChunks keeps tests fast while still producing many chunks per file.
var smallChunks = chunker.Params{Min: 16 << 10, Avg: 64 << 10, Max: 256 << 10}

type fixture struct {
	keys  *crypto.AccountKeys
	objs  objstore.ObjectStore
	index *MemIndex
}

func newFixture() *fixture {
	return &fixture{keys: testKeys(7), objs: objstore.NewMem(), index: NewMemIndex()}
}

func (fx *fixture) open(t testing.TB, params *chunker.Params) *Repo {
	t.Helper()
	r, err := Open(Config{Keys: fx.keys, Objects: fx.objs, Index: fx.index, Chunker: params, PackSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func randomData(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := rng.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func writeFile(t testing.TB, r *Repo, data []byte) []tree.ChunkRef {
	t.Helper()
	refs, size, err := r.WriteFile(context.Background(), bytes.NewReader(data))
	if err != nil {
		t.Fatalf("WriteFile: %v", err)
	}
	if size != int64(len(data)) {
		t.Fatalf("WriteFile size = %d, want %d", size, len(data))
	}
	return refs
}

func readAll(t testing.TB, r *Repo, refs []tree.ChunkRef) []byte {
	t.Helper()
	fr := r.NewReader(context.Background(), refs)
	got := make([]byte, fr.Size())
	n, err := fr.ReadAt(got, 0)
	if err != nil && !(errors.Is(err, io.EOF) && n == len(got)) {
		t.Fatalf("ReadAt: n=%d err=%v", n, err)
	}
	return got
}

func TestRoundTripSizes(t *testing.T) {
	fx := newFixture()
	sizes := []int{0, 1, 100, 16<<10 - 1, 16 << 10, 64 << 10, 256<<10 + 1, 3<<20 + 17}
	if !testing.Short() {
		sizes = append(sizes, 64<<20)
	}
	w := fx.open(t, &smallChunks)
	files := make(map[int][]tree.ChunkRef)
	for i, n := range sizes {
		files[n] = writeFile(t, w, randomData(n, uint64(i)))
	}
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	// A fresh repository over the same storage: nothing served from memory.
	r := fx.open(t, &smallChunks)
	for i, n := range sizes {
		want := randomData(n, uint64(i))
		if got := readAll(t, r, files[n]); !bytes.Equal(got, want) {
			t.Fatalf("size %d: read back differs", n)
		}
	}
}

func TestRandomRangeReads(t *testing.T) {
	fx := newFixture()
	w := fx.open(t, &smallChunks)
	data := randomData(5<<20+333, 42)
	refs := writeFile(t, w, data)
	if err := w.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	fr := fx.open(t, &smallChunks).NewReader(context.Background(), refs)
	rng := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		off := rng.Int64N(int64(len(data)) + 10)
		n := rng.IntN(600 << 10)
		buf := make([]byte, n)
		got, err := fr.ReadAt(buf, off)
		wantEnd := min(off+int64(n), int64(len(data)))
		wantN := max(0, int(wantEnd-off))
		if got != wantN {
			t.Fatalf("ReadAt(%d, %d) = %d bytes, want %d (err %v)", n, off, got, wantN, err)
		}
		if wantN < n && !errors.Is(err, io.EOF) {
			t.Fatalf("short read at %d without EOF: %v", off, err)
		}
		if wantN == n && err != nil {
			t.Fatalf("full read at %d: %v", off, err)
		}
		if !bytes.Equal(buf[:got], data[off:off+int64(got)]) {
			t.Fatalf("ReadAt(%d, %d): wrong bytes", n, off)
		}
	}
}

// TestKnownChunksStayInList is the regression test for the original
// client's bug: chunks already stored must still be listed in the file.
func TestKnownChunksStayInList(t *testing.T) {
	fx := newFixture()
	r := fx.open(t, &smallChunks)
	a := randomData(2<<20, 1)
	refsA := writeFile(t, r, a)
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	stored := fx.index.Len()

	// The same content again, and the content twice in one file: every
	// chunk is known, yet every chunk must be in the lists.
	again := writeFile(t, r, a)
	double := writeFile(t, r, append(append([]byte{}, a...), a...))
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(again) != len(refsA) {
		t.Fatalf("rewrite lists %d chunks, first write %d", len(again), len(refsA))
	}
	var sum int64
	for _, c := range double {
		sum += int64(c.Length)
	}
	if sum != int64(2*len(a)) {
		t.Fatalf("doubled file's chunk list covers %d bytes, want %d", sum, 2*len(a))
	}
	if got := readAll(t, fx.open(t, &smallChunks), double); !bytes.Equal(got[:len(a)], a) || !bytes.Equal(got[len(a):], a) {
		t.Fatal("doubled file reads back wrong")
	}
	// Only chunks around the seam of the doubled file are new.
	if extra := fx.index.Len() - stored; extra > len(refsA)/4 {
		t.Fatalf("writing known content stored %d new blobs (file has %d chunks)", extra, len(refsA))
	}
}

func TestDedupInsertedByte(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB dedup test")
	}
	fx := newFixture()
	r := fx.open(t, nil) // the real 256K/1M/4M parameters
	data := randomData(64<<20, 9)
	writeFile(t, r, data)
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := fx.index.Len()
	mid := len(data) / 2
	edited := append(append(append([]byte{}, data[:mid]...), 0x5a), data[mid:]...)
	refs := writeFile(t, r, edited)
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if added := fx.index.Len() - before; added > 3 {
		t.Fatalf("one inserted byte stored %d new chunks, want ≤ 3", added)
	}
	if got := readAll(t, fx.open(t, nil), refs); !bytes.Equal(got, edited) {
		t.Fatal("edited file reads back wrong")
	}
}

func TestTreesAndVersionsBeforeAndAfterFlush(t *testing.T) {
	fx := newFixture()
	r := fx.open(t, &smallChunks)
	ctx := context.Background()
	fileRefs := writeFile(t, r, []byte("hello"))
	tr := &tree.Tree{Entries: []tree.Entry{
		{Name: "a.txt", Kind: tree.KindFile, Mode: 0o644, Size: 5, ModTime: 1, Chunks: fileRefs},
	}}
	treeID, err := r.SaveTree(ctx, tr)
	if err != nil {
		t.Fatal(err)
	}
	v := &tree.Version{Root: treeID, Time: 123, Device: "dev1", Message: "test"}
	verID, err := r.SaveVersion(ctx, v)
	if err != nil {
		t.Fatal(err)
	}
	// Readable while still pending in an unfinished pack.
	if got, err := r.LoadTree(ctx, treeID); err != nil || got.Entries[0].Name != "a.txt" {
		t.Fatalf("LoadTree before flush: %v", err)
	}
	if err := r.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	entries := r.TakeNewEntries()
	if len(entries) != 3 {
		t.Fatalf("TakeNewEntries = %d entries, want 3 (chunk, tree, version)", len(entries))
	}
	if again := r.TakeNewEntries(); len(again) != 0 {
		t.Fatalf("second TakeNewEntries = %d entries, want 0", len(again))
	}
	r2 := fx.open(t, &smallChunks)
	gotV, err := r2.LoadVersion(ctx, verID)
	if err != nil || gotV.Root != treeID || gotV.Device != "dev1" {
		t.Fatalf("LoadVersion after flush: %+v %v", gotV, err)
	}
	if _, err := r2.LoadVersion(ctx, treeID); err == nil {
		t.Fatal("a tree blob loaded as a version")
	}
}

// flakyStore fails the first n Puts, like a server that went away.
type flakyStore struct {
	objstore.ObjectStore
	failures atomic.Int32
}

func (s *flakyStore) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if s.failures.Add(-1) >= 0 {
		return errors.New("connection refused")
	}
	return s.ObjectStore.Put(ctx, name, r, size)
}

func TestUploadFailureIsRetriedByFlush(t *testing.T) {
	fx := newFixture()
	flaky := &flakyStore{ObjectStore: fx.objs}
	flaky.failures.Store(1)
	r, err := Open(Config{Keys: fx.keys, Objects: flaky, Index: fx.index, Chunker: &smallChunks, PackSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	data := randomData(600<<10, 3)
	refs := writeFile(t, r, data)
	if err := r.Flush(context.Background()); err == nil {
		t.Fatal("Flush with a failing store succeeded")
	}
	if r.PendingBlobs() == 0 {
		t.Fatal("blobs of a failed upload were dropped")
	}
	if err := r.Flush(context.Background()); err != nil {
		t.Fatalf("retry Flush: %v", err)
	}
	if got := readAll(t, fx.open(t, &smallChunks), refs); !bytes.Equal(got, data) {
		t.Fatal("file reads back wrong after retried upload")
	}
}

func TestTamperedPackIsAnErrorNeverWrongBytes(t *testing.T) {
	fx := newFixture()
	r := fx.open(t, &smallChunks)
	data := randomData(300<<10, 5)
	refs := writeFile(t, r, data)
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	mem := fx.objs.(*objstore.Mem)
	var names []string
	_ = mem.List(context.Background(), func(o objstore.ObjectInfo) error { names = append(names, o.Name); return nil })
	if len(names) != 1 {
		t.Fatalf("want one pack, have %d", len(names))
	}
	loc, _, _ := fx.index.Lookup(refs[0].ID)
	orig := getObject(t, mem, names[0])
	for _, pos := range []int{int(loc.Offset), int(loc.Offset) + 20, int(loc.Offset+loc.Length) - 1} {
		bad := append([]byte{}, orig...)
		bad[pos] ^= 0x01
		putObject(t, mem, names[0], bad)
		fr := fx.open(t, &smallChunks).NewReader(context.Background(), refs)
		buf := make([]byte, len(data))
		if _, err := fr.ReadAt(buf, 0); !errors.Is(err, crypto.ErrAuth) {
			t.Fatalf("bit flip at %d: err = %v, want crypto.ErrAuth", pos, err)
		}
	}
	// A chunk list that names a blob under another's location (swap).
	putObject(t, mem, names[0], orig)
	if len(refs) > 1 {
		loc1, _, _ := fx.index.Lookup(refs[1].ID)
		_ = fx.index.Add([]IndexEntry{{ID: refs[0].ID, Location: loc1}})
		buf := make([]byte, refs[0].Length)
		if _, err := fx.open(t, &smallChunks).NewReader(context.Background(), refs[:1]).ReadAt(buf, 0); !errors.Is(err, crypto.ErrAuth) {
			t.Fatalf("swapped blob: err = %v, want crypto.ErrAuth", err)
		}
	}
}

func getObject(t *testing.T, s objstore.ObjectStore, name string) []byte {
	t.Helper()
	rc, err := s.GetRange(context.Background(), name, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func putObject(t *testing.T, s objstore.ObjectStore, name string, b []byte) {
	t.Helper()
	_ = s.Delete(context.Background(), name)
	if err := s.Put(context.Background(), name, bytes.NewReader(b), int64(len(b))); err != nil {
		t.Fatal(err)
	}
}

func TestMissingBlobIsTypedError(t *testing.T) {
	fx := newFixture()
	r := fx.open(t, &smallChunks)
	_, err := r.LoadTree(context.Background(), crypto.ID{1})
	if !errors.Is(err, ErrBlobNotFound) {
		t.Fatalf("err = %v, want ErrBlobNotFound", err)
	}
}

func ExampleRepo_WriteFile() {
	r, _ := Open(Config{Keys: testKeys(1), Objects: objstore.NewMem(), Index: NewMemIndex()})
	refs, size, _ := r.WriteFile(context.Background(), bytes.NewReader([]byte("hello, world")))
	fmt.Println(len(refs), size)
	// Output: 1 12
}

func TestReadBeforeFlush(t *testing.T) {
	fx := newFixture()
	r := fx.open(t, &smallChunks)
	data := randomData(200<<10, 8)
	refs := writeFile(t, r, data)
	if got := readAll(t, r, refs); !bytes.Equal(got, data) {
		t.Fatal("a file read back before Flush differs")
	}
	if r.PendingBlobs() != 0 {
		t.Fatal("reading a pending chunk did not store it")
	}
}

func TestVerifyBlob(t *testing.T) {
	fx := newFixture()
	r := fx.open(t, &smallChunks)
	refs := writeFile(t, r, randomData(100<<10, 4))
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, c := range refs {
		if err := r.VerifyBlob(context.Background(), crypto.BlobData, c.ID); err != nil {
			t.Fatalf("VerifyBlob(%s): %v", c.ID.Short(), err)
		}
	}
	// An index entry that points a chunk's ID at another chunk's bytes
	// fails authentication rather than verifying.
	if len(refs) > 1 {
		loc, _, _ := fx.index.Lookup(refs[1].ID)
		_ = fx.index.Add([]IndexEntry{{ID: refs[0].ID, Location: loc}})
		if err := fx.open(t, &smallChunks).VerifyBlob(context.Background(), crypto.BlobData, refs[0].ID); !errors.Is(err, crypto.ErrAuth) {
			t.Fatalf("VerifyBlob of a swapped chunk: %v", err)
		}
	}
}

// gatedStore holds every Put until the gate opens, counting how many wait
// at once.
type gatedStore struct {
	objstore.ObjectStore
	gate    chan struct{}
	entered chan struct{}
	mu      sync.Mutex
	active  int
	peak    int
}

func (g *gatedStore) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	g.mu.Lock()
	g.active++
	g.peak = max(g.peak, g.active)
	g.mu.Unlock()
	g.entered <- struct{}{}
	<-g.gate
	g.mu.Lock()
	g.active--
	g.mu.Unlock()
	return g.ObjectStore.Put(ctx, name, r, size)
}

// TestUploadsOverlapUpToTheBound checks that maxInflightUploads packs upload
// in parallel, so that one waiting for the server to make it durable does
// not stall the next, and that no more ran at once while the first ones
// were held (the writer may not have reached the limit by then, so an
// excess can go unnoticed; a shortfall cannot).
func TestUploadsOverlapUpToTheBound(t *testing.T) {
	g := &gatedStore{ObjectStore: objstore.NewMem(), gate: make(chan struct{}), entered: make(chan struct{}, 64)}
	r, err := Open(Config{Keys: testKeys(5), Objects: g, Index: NewMemIndex(), Chunker: &smallChunks, PackSize: 256 << 10})
	if err != nil {
		t.Fatal(err)
	}
	data := randomData(4<<20, 9) // about 16 packs
	done := make(chan error, 1)
	go func() {
		_, _, err := r.WriteFile(context.Background(), bytes.NewReader(data))
		if err == nil {
			err = r.Flush(context.Background())
		}
		done <- err
	}()
	for range maxInflightUploads {
		select {
		case <-g.entered:
		case err := <-done:
			t.Fatalf("the write ended (%v) before %d uploads ran at once", err, maxInflightUploads)
		case <-time.After(time.Minute): // a hang guard, not a timing assertion
			t.Fatalf("fewer than %d uploads ran at once", maxInflightUploads)
		}
	}
	close(g.gate)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if g.peak != maxInflightUploads {
		t.Fatalf("at most %d uploads ran at once, want %d", g.peak, maxInflightUploads)
	}
}
