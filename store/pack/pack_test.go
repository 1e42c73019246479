package pack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/store/objstore"
)

// memStore is a minimal in-memory objstore.ObjectStore for these tests.
type memStore struct {
	mu   sync.Mutex
	objs map[string][]byte
}

func newMemStore() *memStore { return &memStore{objs: map[string][]byte{}} }

func (m *memStore) Put(_ context.Context, name string, r io.Reader, size int64) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if int64(len(b)) != size {
		return fmt.Errorf("put %s: %d bytes, want %d", name, len(b), size)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.objs[name] = b
	return nil
}

func (m *memStore) GetRange(_ context.Context, name string, off, length int64) (io.ReadCloser, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.objs[name]
	if !ok {
		return nil, objstore.ErrNotFound
	}
	if length < 0 {
		length = int64(len(b)) - off
	}
	if off < 0 || off+length > int64(len(b)) {
		return nil, fmt.Errorf("get %s: range %d+%d past end %d", name, off, length, len(b))
	}
	return io.NopCloser(bytes.NewReader(b[off : off+length])), nil
}

func (m *memStore) Stat(_ context.Context, name string) (objstore.ObjectInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.objs[name]
	if !ok {
		return objstore.ObjectInfo{}, objstore.ErrNotFound
	}
	return objstore.ObjectInfo{Name: name, Size: int64(len(b))}, nil
}

func (m *memStore) List(_ context.Context, fn func(objstore.ObjectInfo) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for n, b := range m.objs {
		if err := fn(objstore.ObjectInfo{Name: n, Size: int64(len(b))}); err != nil {
			return err
		}
	}
	return nil
}

func (m *memStore) Delete(_ context.Context, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.objs[name]; !ok {
		return objstore.ErrNotFound
	}
	delete(m.objs, name)
	return nil
}

func (m *memStore) put(t *testing.T, name string, data []byte) {
	t.Helper()
	if err := m.Put(context.Background(), name, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
}

func testKey(seed byte) crypto.Key {
	var k crypto.Key
	for i := range k {
		k[i] = seed + byte(i)
	}
	return k
}

func testCodec(t testing.TB, seed byte) *Codec {
	t.Helper()
	c, err := NewCodec(crypto.NewBlobCipher(testKey(seed)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func compressible(n int) []byte {
	return bytes.Repeat([]byte("anysync compressible text 0123456789 "), n/37+1)[:n]
}

func idOf(b []byte) crypto.ID {
	return crypto.NewIDHasher(testKey(99)).Sum(b)
}

type testBlob struct {
	t     crypto.BlobType
	plain []byte
}

func testBlobs() []testBlob {
	return []testBlob{
		{crypto.BlobData, randomBytes(100<<10, 1)},
		{crypto.BlobData, compressible(300 << 10)},
		{crypto.BlobData, randomBytes(10, 2)},
		{crypto.BlobData, nil},
		{crypto.BlobTree, compressible(5000)},
		{crypto.BlobVersion, []byte("v")},
		{crypto.BlobData, append(compressible(40<<10), randomBytes(40<<10, 3)...)},
	}
}

// buildPack writes blobs into one pack and returns its name, bytes, entries.
func buildPack(t *testing.T, c *Codec, blobs []testBlob) (string, []byte, []Entry) {
	t.Helper()
	w := NewWriter(c, 0)
	for _, b := range blobs {
		if err := w.Add(b.t, idOf(b.plain), b.plain); err != nil {
			t.Fatal(err)
		}
	}
	if w.Len() != len(blobs) {
		t.Fatalf("Len = %d, want %d", w.Len(), len(blobs))
	}
	size := w.Size()
	name, data, entries, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(data)) != size {
		t.Fatalf("Size() said %d before Finish, pack has %d bytes", size, len(data))
	}
	if w.Len() != 0 || w.Size() != int64(sealedHeaderLen(0))+TrailerSize {
		t.Fatalf("writer not reset after Finish")
	}
	return name, data, entries
}

func TestCodecRoundTrip(t *testing.T) {
	c := testCodec(t, 1)
	for i, b := range testBlobs() {
		id := idOf(b.plain)
		sealed, err := c.Encode([]byte("prefix"), b.plain, id, b.t)
		if err != nil {
			t.Fatal(err)
		}
		if string(sealed[:6]) != "prefix" {
			t.Fatal("Encode did not append to dst")
		}
		sealed = sealed[6:]
		if len(sealed) > len(b.plain)+minSealedLen {
			t.Errorf("blob %d: sealed %d bytes for %d plain", i, len(sealed), len(b.plain))
		}
		got, err := c.Decode([]byte("x"), sealed, id, b.t, 0)
		if err != nil {
			t.Fatalf("blob %d: %v", i, err)
		}
		if !bytes.Equal(got[1:], b.plain) || got[0] != 'x' {
			t.Fatalf("blob %d: round trip changed the bytes", i)
		}
	}
}

func TestCodecCompresses(t *testing.T) {
	c := testCodec(t, 1)
	plain := compressible(1 << 20)
	sealed, err := c.Encode(nil, plain, idOf(plain), crypto.BlobData)
	if err != nil {
		t.Fatal(err)
	}
	if len(sealed) > len(plain)/10 {
		t.Fatalf("compressible 1 MiB sealed to %d bytes", len(sealed))
	}
	random := randomBytes(1<<20, 5)
	sealed, err = c.Encode(nil, random, idOf(random), crypto.BlobData)
	if err != nil {
		t.Fatal(err)
	}
	if len(sealed) != len(random)+minSealedLen {
		t.Fatalf("random 1 MiB sealed to %d bytes, want raw %d", len(sealed), len(random)+minSealedLen)
	}
}

func TestPackRoundTrip(t *testing.T) {
	ctx := context.Background()
	c := testCodec(t, 1)
	blobs := testBlobs()
	name, data, entries := buildPack(t, c, blobs)
	if _, err := ParseName(name); err != nil {
		t.Fatal(err)
	}
	s := newMemStore()
	s.put(t, name, data)

	got, err := ReadHeader(ctx, s, c, name)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(got) != fmt.Sprint(entries) {
		t.Fatalf("header entries differ from Finish's:\n%v\n%v", got, entries)
	}
	byID := map[crypto.ID]testBlob{}
	for _, b := range blobs {
		byID[idOf(b.plain)] = b
	}
	for _, e := range got {
		b := byID[e.ID]
		if e.Type != b.t || int(e.RawLength) != len(b.plain) {
			t.Fatalf("entry %v does not match its blob", e)
		}
		sealed, err := ReadBlob(ctx, s, name, e)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := c.Decode(nil, sealed, e.ID, e.Type, int(e.RawLength))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(plain, b.plain) {
			t.Fatalf("blob %s changed", e.ID.Short())
		}
	}
}

func TestPackOrderIsRandom(t *testing.T) {
	c := testCodec(t, 1)
	var blobs []testBlob
	for i := range 20 {
		blobs = append(blobs, testBlob{crypto.BlobData, randomBytes(100, uint64(i))})
	}
	orders := map[string]bool{}
	for range 5 {
		_, _, entries := buildPack(t, c, blobs)
		var ids []string
		for _, e := range entries {
			ids = append(ids, e.ID.Short())
		}
		orders[fmt.Sprint(ids)] = true
	}
	if len(orders) < 2 {
		t.Fatal("five packs of the same 20 blobs all had the same order")
	}
}

func TestWriterDuplicateAndFull(t *testing.T) {
	c := testCodec(t, 1)
	w := NewWriter(c, 6000) // the header alone is 4 KiB
	b := randomBytes(600, 1)
	for range 2 {
		if err := w.Add(crypto.BlobData, idOf(b), b); err != nil {
			t.Fatal(err)
		}
	}
	if w.Len() != 1 {
		t.Fatalf("duplicate add gave %d blobs", w.Len())
	}
	if w.Full() {
		t.Fatal("full too early")
	}
	b2 := randomBytes(1500, 2)
	sealed, err := c.Encode(nil, b2, idOf(b2), crypto.BlobData)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.AddSealed(crypto.BlobData, idOf(b2), sealed, len(b2)); err != nil {
		t.Fatal(err)
	}
	if !w.Full() {
		t.Fatalf("not full at %d bytes, target 6000", w.Size())
	}
	if _, _, _, err := NewWriter(c, 0).Finish(); !errors.Is(err, ErrEmptyPack) {
		t.Fatalf("empty Finish = %v", err)
	}
}

func TestEncodeLimits(t *testing.T) {
	c := testCodec(t, 1)
	big := make([]byte, MaxDataLen+1)
	if _, err := c.Encode(nil, big, crypto.ID{}, crypto.BlobData); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized data blob: %v", err)
	}
	if _, err := c.Encode(nil, []byte("x"), crypto.ID{}, crypto.BlobPackHeader); !errors.Is(err, ErrBlobType) {
		t.Fatalf("pack header as blob: %v", err)
	}
	w := NewWriter(c, 0)
	if err := w.AddSealed(crypto.BlobData, crypto.ID{}, []byte("short"), 5); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("short sealed blob: %v", err)
	}
	if err := w.AddSealed(crypto.BlobData, crypto.ID{}, make([]byte, 100), MaxDataLen+1); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized raw length: %v", err)
	}
}

// DecodeInPlace gives what Decode gives; a raw blob's plaintext lives in
// the sealed buffer itself.
func TestCodecDecodeInPlace(t *testing.T) {
	c := testCodec(t, 1)
	for i, b := range testBlobs() {
		id := idOf(b.plain)
		sealed, err := c.Encode(nil, b.plain, id, b.t)
		if err != nil {
			t.Fatal(err)
		}
		want, err := c.Decode(nil, sealed, id, b.t, 0)
		if err != nil {
			t.Fatal(err)
		}
		raw := len(sealed) == len(b.plain)+minSealedLen // compressed frames are shorter
		got, err := c.DecodeInPlace(sealed, id, b.t, 0)
		if err != nil {
			t.Fatalf("blob %d: %v", i, err)
		}
		if !bytes.Equal(got, b.plain) || !bytes.Equal(got, want) {
			t.Fatalf("blob %d: in-place decode changed the bytes", i)
		}
		if cap(got) != len(got) {
			t.Fatalf("blob %d: cap %d for %d bytes", i, cap(got), len(got))
		}
		if raw && len(got) > 0 && &got[0] != &sealed[crypto.NonceSize+1] {
			t.Fatalf("blob %d: stored raw but copied", i)
		}
	}
}

func TestCodecDecodeInPlaceRejects(t *testing.T) {
	c := testCodec(t, 1)
	plain := randomBytes(1000, 9)
	id := idOf(plain)
	seal := func() []byte {
		s, err := c.Encode(nil, plain, id, crypto.BlobData)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s := seal()
	s[len(s)/2] ^= 1
	if _, err := c.DecodeInPlace(s, id, crypto.BlobData, 0); !errors.Is(err, crypto.ErrAuth) {
		t.Fatalf("flipped bit: %v", err)
	}
	if _, err := c.DecodeInPlace(seal(), idOf([]byte("other")), crypto.BlobData, 0); !errors.Is(err, crypto.ErrAuth) {
		t.Fatalf("wrong ID: %v", err)
	}
	if _, err := c.DecodeInPlace(seal(), id, crypto.BlobTree, 0); !errors.Is(err, crypto.ErrAuth) {
		t.Fatalf("wrong type: %v", err)
	}
	if _, err := c.DecodeInPlace(seal(), id, crypto.BlobData, 999); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("over maxLen: %v", err)
	}
	for _, n := range []int{0, 5, crypto.Overhead} {
		if _, err := c.DecodeInPlace(seal()[:n], id, crypto.BlobData, 0); !errors.Is(err, crypto.ErrAuth) {
			t.Fatalf("%d bytes: %v", n, err)
		}
	}
	if _, err := c.DecodeInPlace(seal(), id, crypto.BlobPackHeader, 0); !errors.Is(err, ErrBlobType) {
		t.Fatalf("pack header type: %v", err)
	}
}

// handOver is a store whose GetRange hands its bytes over, as the
// server's pack store does.
type handOver struct {
	*memStore
	gave [][]byte
}

func (h *handOver) GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error) {
	rc, err := h.memStore.GetRange(ctx, name, off, length)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(rc)
	if err != nil {
		return nil, err
	}
	h.gave = append(h.gave, b)
	return objstore.NewBytesReader(b), nil
}

func TestReadBlobTakesHandedOverBytes(t *testing.T) {
	c := testCodec(t, 1)
	blobs := testBlobs()
	name, data, entries := buildPack(t, c, blobs)
	s := &handOver{memStore: newMemStore()}
	s.put(t, name, data)
	got, err := ReadBlob(context.Background(), s, name, entries[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(s.gave) != 1 || &got[0] != &s.gave[0][0] {
		t.Fatal("ReadBlob copied bytes the store handed over")
	}
	if !bytes.Equal(got, data[entries[0].Offset:entries[0].Offset+entries[0].Length]) {
		t.Fatal("wrong bytes")
	}
}
