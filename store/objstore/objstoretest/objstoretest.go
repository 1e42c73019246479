// Package objstoretest is the conformance suite for objstore.ObjectStore
// implementations: every implementation runs the same tests.
package objstoretest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/anysync/anysync/store/objstore"
)

// Run runs the conformance suite. newStore must return an empty store; it
// is called once per subtest.
func Run(t *testing.T, newStore func(t *testing.T) objstore.ObjectStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s objstore.ObjectStore)
	}{
		{"PutGetStat", testPutGetStat},
		{"RangeEdges", testRangeEdges},
		{"EmptyObject", testEmptyObject},
		{"NotFound", testNotFound},
		{"InvalidNames", testInvalidNames},
		{"Overwrite", testOverwrite},
		{"List", testList},
		{"ListStopsOnError", testListStopsOnError},
		{"Delete", testDelete},
		{"ShortReaderLeavesNothing", testShortReader},
		{"LongReaderLeavesNothing", testLongReader},
		{"FailingReaderLeavesNothing", testFailingReader},
		{"FailedReplaceKeepsOld", testFailedReplaceKeepsOld},
		{"CanceledPut", testCanceledPut},
		{"ConcurrentPuts", testConcurrentPuts},
		{"ChunkReader", testChunkReader},
		{"ShortChunkReaderLeavesNothing", testShortChunkReader},
		{"LongChunkReaderLeavesNothing", testLongChunkReader},
		{"FailingChunkReaderLeavesNothing", testFailingChunkReader},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, newStore(t)) })
	}
}

// Data returns n deterministic pseudo-random bytes.
func Data(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// MustPut stores data under name or fails the test.
func MustPut(t testing.TB, s objstore.ObjectStore, name string, data []byte) {
	t.Helper()
	if err := s.Put(context.Background(), name, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put(%s, %d bytes): %v", name, len(data), err)
	}
}

// ReadRange returns the bytes of GetRange or an error from it or its reader.
func ReadRange(s objstore.ObjectStore, name string, off, length int64) ([]byte, error) {
	rc, err := s.GetRange(context.Background(), name, off, length)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(rc)
	if cerr := rc.Close(); err == nil {
		err = cerr
	}
	return b, err
}

func mustRead(t *testing.T, s objstore.ObjectStore, name string, off, length int64) []byte {
	t.Helper()
	b, err := ReadRange(s, name, off, length)
	if err != nil {
		t.Fatalf("GetRange(%s, %d, %d): %v", name, off, length, err)
	}
	return b
}

func listAll(t *testing.T, s objstore.ObjectStore) map[string]int64 {
	t.Helper()
	got := map[string]int64{}
	err := s.List(context.Background(), func(oi objstore.ObjectInfo) error {
		if _, dup := got[oi.Name]; dup {
			return fmt.Errorf("%s listed twice", oi.Name)
		}
		got[oi.Name] = oi.Size
		return nil
	})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return got
}

func assertAbsent(t *testing.T, s objstore.ObjectStore, name string) {
	t.Helper()
	if _, err := s.Stat(context.Background(), name); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("Stat(%s) after failed put = %v, want ErrNotFound", name, err)
	}
	if got := listAll(t, s); len(got) != 0 {
		t.Errorf("List after failed put = %v, want nothing", got)
	}
}

func testPutGetStat(t *testing.T, s objstore.ObjectStore) {
	data := Data(1, 3<<20+17)
	name := "0123456789abcdef0123456789abcdef"
	MustPut(t, s, name, data)
	info, err := s.Stat(context.Background(), name)
	if err != nil {
		t.Fatalf("Stat: %v", err)
	}
	if info.Name != name || info.Size != int64(len(data)) {
		t.Errorf("Stat = %+v, want %s/%d", info, name, len(data))
	}
	if got := mustRead(t, s, name, 0, -1); !bytes.Equal(got, data) {
		t.Errorf("full read: got %d bytes, differs from the %d put", len(got), len(data))
	}
	r := rand.New(rand.NewPCG(7, 7))
	for range 20 {
		off := r.Int64N(int64(len(data)))
		n := r.Int64N(int64(len(data)) - off + 1)
		if got := mustRead(t, s, name, off, n); !bytes.Equal(got, data[off:off+n]) {
			t.Fatalf("GetRange(%d, %d) returned wrong bytes", off, n)
		}
	}
}

func testRangeEdges(t *testing.T, s objstore.ObjectStore) {
	data := Data(2, 1000)
	size := int64(len(data))
	MustPut(t, s, "edges", data)
	ok := []struct{ off, n int64 }{
		{0, 0}, {0, 1}, {0, size}, {0, -1}, {1, -1}, {size - 1, 1}, {size - 1, -1},
		{size, 0}, {size, -1}, {10, 20}, {999, 1},
	}
	for _, c := range ok {
		want := data[c.off:]
		if c.n >= 0 {
			want = data[c.off : c.off+c.n]
		}
		if got := mustRead(t, s, "edges", c.off, c.n); !bytes.Equal(got, want) {
			t.Errorf("GetRange(%d, %d) = %d bytes, want %d", c.off, c.n, len(got), len(want))
		}
	}
	bad := []struct{ off, n int64 }{
		{-1, 1}, {-1, -1}, {size + 1, 0}, {size + 1, -1}, {size, 1}, {size - 10, 11}, {0, size + 1},
	}
	for _, c := range bad {
		if _, err := ReadRange(s, "edges", c.off, c.n); !errors.Is(err, objstore.ErrOutOfRange) {
			t.Errorf("GetRange(%d, %d) = %v, want ErrOutOfRange", c.off, c.n, err)
		}
	}
}

func testEmptyObject(t *testing.T, s objstore.ObjectStore) {
	MustPut(t, s, "empty", nil)
	info, err := s.Stat(context.Background(), "empty")
	if err != nil || info.Size != 0 {
		t.Fatalf("Stat(empty) = %+v, %v", info, err)
	}
	if got := mustRead(t, s, "empty", 0, -1); len(got) != 0 {
		t.Errorf("read of empty object = %d bytes", len(got))
	}
	if _, err := ReadRange(s, "empty", 0, 1); !errors.Is(err, objstore.ErrOutOfRange) {
		t.Errorf("GetRange(0,1) of empty = %v, want ErrOutOfRange", err)
	}
	if got := listAll(t, s); len(got) != 1 || got["empty"] != 0 {
		t.Errorf("List = %v, want empty:0", got)
	}
}

func testNotFound(t *testing.T, s objstore.ObjectStore) {
	ctx := context.Background()
	if _, err := s.Stat(ctx, "missing"); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("Stat = %v, want ErrNotFound", err)
	}
	if _, err := s.GetRange(ctx, "missing", 0, -1); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("GetRange = %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "missing"); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("Delete = %v, want ErrNotFound", err)
	}
	if got := listAll(t, s); len(got) != 0 {
		t.Errorf("List of empty store = %v", got)
	}
}

func testInvalidNames(t *testing.T, s objstore.ObjectStore) {
	ctx := context.Background()
	for _, name := range []string{"", "ABC", "a/b", "../x", "a.b", "a b", "é", strings.Repeat("a", objstore.MaxNameLen+1)} {
		if err := s.Put(ctx, name, strings.NewReader("x"), 1); !errors.Is(err, objstore.ErrInvalidName) {
			t.Errorf("Put(%q) = %v, want ErrInvalidName", name, err)
		}
		if _, err := s.Stat(ctx, name); !errors.Is(err, objstore.ErrInvalidName) {
			t.Errorf("Stat(%q) = %v, want ErrInvalidName", name, err)
		}
		if _, err := s.GetRange(ctx, name, 0, -1); !errors.Is(err, objstore.ErrInvalidName) {
			t.Errorf("GetRange(%q) = %v, want ErrInvalidName", name, err)
		}
		if err := s.Delete(ctx, name); !errors.Is(err, objstore.ErrInvalidName) {
			t.Errorf("Delete(%q) = %v, want ErrInvalidName", name, err)
		}
	}
	MustPut(t, s, strings.Repeat("z", objstore.MaxNameLen), []byte("longest name"))
	if got := listAll(t, s); len(got) != 1 {
		t.Errorf("List = %v, want the one longest name", got)
	}
}

func testOverwrite(t *testing.T, s objstore.ObjectStore) {
	MustPut(t, s, "same", []byte("first version"))
	if got := mustRead(t, s, "same", 0, -1); string(got) != "first version" {
		t.Fatalf("read = %q", got)
	}
	MustPut(t, s, "same", []byte("second"))
	if got := mustRead(t, s, "same", 0, -1); string(got) != "second" {
		t.Errorf("read after overwrite = %q, want second", got)
	}
	if got := listAll(t, s); len(got) != 1 || got["same"] != 6 {
		t.Errorf("List = %v, want same:6", got)
	}
}

func testList(t *testing.T, s objstore.ObjectStore) {
	want := map[string]int64{}
	for i, name := range []string{"a", "z", "ab", "abc", "abd", "b0", "zz9", "0", "00", "000", "deadbeef"} {
		data := Data(uint64(i), i*37)
		MustPut(t, s, name, data)
		want[name] = int64(len(data))
	}
	if got := listAll(t, s); !maps.Equal(got, want) {
		t.Errorf("List = %v\nwant %v", got, want)
	}
}

func testListStopsOnError(t *testing.T, s objstore.ObjectStore) {
	for _, name := range []string{"aa", "bb", "cc"} {
		MustPut(t, s, name, []byte(name))
	}
	stop := errors.New("stop here")
	calls := 0
	err := s.List(context.Background(), func(objstore.ObjectInfo) error {
		calls++
		return stop
	})
	if !errors.Is(err, stop) {
		t.Errorf("List = %v, want the callback's error", err)
	}
	if calls != 1 {
		t.Errorf("callback called %d times after failing, want 1", calls)
	}
}

func testDelete(t *testing.T, s objstore.ObjectStore) {
	ctx := context.Background()
	MustPut(t, s, "keep", []byte("keep"))
	MustPut(t, s, "gone", []byte("gone"))
	if _, err := ReadRange(s, "gone", 0, -1); err != nil { // warm any handle cache
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "gone"); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := s.Stat(ctx, "gone"); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("Stat after delete = %v, want ErrNotFound", err)
	}
	if _, err := ReadRange(s, "gone", 0, -1); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("GetRange after delete = %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "gone"); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("second Delete = %v, want ErrNotFound", err)
	}
	if got := listAll(t, s); len(got) != 1 || got["keep"] != 4 {
		t.Errorf("List after delete = %v, want keep:4", got)
	}
}

func testShortReader(t *testing.T, s objstore.ObjectStore) {
	data := Data(3, 100<<10)
	err := s.Put(context.Background(), "short", bytes.NewReader(data[:len(data)-1]), int64(len(data)))
	if !errors.Is(err, objstore.ErrSizeMismatch) {
		t.Errorf("Put with a short reader = %v, want ErrSizeMismatch", err)
	}
	assertAbsent(t, s, "short")
}

func testLongReader(t *testing.T, s objstore.ObjectStore) {
	data := Data(4, 10<<10)
	err := s.Put(context.Background(), "long", bytes.NewReader(data), int64(len(data)-1))
	if !errors.Is(err, objstore.ErrSizeMismatch) {
		t.Errorf("Put with a long reader = %v, want ErrSizeMismatch", err)
	}
	assertAbsent(t, s, "long")
	err = s.Put(context.Background(), "long", strings.NewReader("x"), 0)
	if !errors.Is(err, objstore.ErrSizeMismatch) {
		t.Errorf("Put of size 0 with a 1-byte reader = %v, want ErrSizeMismatch", err)
	}
	assertAbsent(t, s, "long")
}

// failingReader returns n bytes of data and then err.
type failingReader struct {
	data []byte
	err  error
}

func (f *failingReader) Read(p []byte) (int, error) {
	if len(f.data) == 0 {
		return 0, f.err
	}
	n := copy(p, f.data)
	f.data = f.data[n:]
	return n, nil
}

var errBoom = errors.New("boom: connection reset")

func testFailingReader(t *testing.T, s objstore.ObjectStore) {
	data := Data(5, 300<<10)
	err := s.Put(context.Background(), "failing", &failingReader{data: data[:200<<10], err: errBoom}, int64(len(data)))
	if !errors.Is(err, errBoom) {
		t.Errorf("Put with a failing reader = %v, want the reader's error", err)
	}
	assertAbsent(t, s, "failing")
}

func testFailedReplaceKeepsOld(t *testing.T, s objstore.ObjectStore) {
	old := Data(6, 5000)
	MustPut(t, s, "pack", old)
	err := s.Put(context.Background(), "pack", &failingReader{data: Data(7, 100), err: errBoom}, 5000)
	if err == nil {
		t.Fatal("Put with a failing reader succeeded")
	}
	if got := mustRead(t, s, "pack", 0, -1); !bytes.Equal(got, old) {
		t.Errorf("failed replace changed the stored object (%d bytes)", len(got))
	}
}

func testCanceledPut(t *testing.T, s objstore.ObjectStore) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	data := Data(8, 1000)
	if err := s.Put(ctx, "canceled", bytes.NewReader(data), int64(len(data))); err == nil {
		t.Error("Put with a canceled context succeeded")
	}
	assertAbsent(t, s, "canceled")
}

func testConcurrentPuts(t *testing.T, s objstore.ObjectStore) {
	const distinct, sameWriters = 12, 4
	var wg sync.WaitGroup
	errs := make(chan error, distinct+sameWriters)
	same := Data(99, 64<<10)
	for i := range distinct {
		wg.Go(func() {
			data := Data(uint64(100+i), 32<<10+i)
			if err := s.Put(context.Background(), fmt.Sprintf("obj%02d", i), bytes.NewReader(data), int64(len(data))); err != nil {
				errs <- err
			}
		})
	}
	for range sameWriters {
		wg.Go(func() {
			if err := s.Put(context.Background(), "shared", bytes.NewReader(same), int64(len(same))); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent Put: %v", err)
	}
	got := listAll(t, s)
	if len(got) != distinct+1 {
		t.Errorf("List has %d objects, want %d: %v", len(got), distinct+1, got)
	}
	for i := range distinct {
		want := Data(uint64(100+i), 32<<10+i)
		if b := mustRead(t, s, fmt.Sprintf("obj%02d", i), 0, -1); !bytes.Equal(b, want) {
			t.Errorf("obj%02d has wrong content", i)
		}
	}
	if b := mustRead(t, s, "shared", 0, -1); !bytes.Equal(b, same) {
		t.Error("shared object has wrong content")
	}
}

// ChunkReader is an objstore.ChunkReader over data, in chunks of the
// given sizes (cycled), ending with err (io.EOF if nil). Like the server's
// upload stream it reuses one buffer: handing out a chunk overwrites the
// previous one, so a store that keeps a chunk after asking for the next
// stores the wrong bytes.
type ChunkReader struct {
	data  []byte
	sizes []int
	err   error
	buf   []byte
	i     int
}

// NewChunkReader returns a ChunkReader.
func NewChunkReader(data []byte, sizes []int, err error) *ChunkReader {
	return &ChunkReader{data: data, sizes: sizes, err: err}
}

// NextChunk implements objstore.ChunkReader.
func (c *ChunkReader) NextChunk() ([]byte, error) {
	if len(c.data) == 0 {
		if c.err != nil {
			return nil, c.err
		}
		return nil, io.EOF
	}
	n := min(max(c.sizes[c.i%len(c.sizes)], 1), len(c.data))
	c.i++
	clear(c.buf) // the previous chunk is gone
	c.buf = append(c.buf[:0], c.data[:n]...)
	c.data = c.data[n:]
	return c.buf, nil
}

// Read implements io.Reader.
func (c *ChunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		if c.err != nil {
			return 0, c.err
		}
		return 0, io.EOF
	}
	n := copy(p, c.data)
	c.data = c.data[n:]
	return n, nil
}

var chunkSizes = []int{1 << 20, 7, 64 << 10, 1}

func testChunkReader(t *testing.T, s objstore.ObjectStore) {
	for _, n := range []int{1, 5000, 3<<20 + 11} {
		data := Data(uint64(20+n), n)
		name := fmt.Sprintf("chunked%d", n)
		if err := s.Put(context.Background(), name, NewChunkReader(data, chunkSizes, nil), int64(n)); err != nil {
			t.Fatalf("Put of %d bytes from a ChunkReader: %v", n, err)
		}
		if got := mustRead(t, s, name, 0, -1); !bytes.Equal(got, data) {
			t.Fatalf("%d bytes from a ChunkReader stored as %d other bytes", n, len(got))
		}
	}
	if err := s.Put(context.Background(), "chunkedempty", NewChunkReader(nil, chunkSizes, nil), 0); err != nil {
		t.Fatalf("Put of 0 bytes from a ChunkReader: %v", err)
	}
	if got := mustRead(t, s, "chunkedempty", 0, -1); len(got) != 0 {
		t.Fatalf("empty object reads %d bytes", len(got))
	}
}

func testShortChunkReader(t *testing.T, s objstore.ObjectStore) {
	data := Data(21, 2<<20)
	err := s.Put(context.Background(), "short", NewChunkReader(data[:len(data)-1], chunkSizes, nil), int64(len(data)))
	if !errors.Is(err, objstore.ErrSizeMismatch) {
		t.Errorf("Put with a short ChunkReader = %v, want ErrSizeMismatch", err)
	}
	assertAbsent(t, s, "short")
}

func testLongChunkReader(t *testing.T, s objstore.ObjectStore) {
	data := Data(22, 2<<20)
	// One byte too many, in the last chunk or in a chunk of its own.
	for _, sizes := range [][]int{chunkSizes, {1 << 20, 1<<20 - 1, 1}} {
		err := s.Put(context.Background(), "long", NewChunkReader(data, sizes, nil), int64(len(data)-1))
		if !errors.Is(err, objstore.ErrSizeMismatch) {
			t.Errorf("Put with a long ChunkReader (chunks %v) = %v, want ErrSizeMismatch", sizes, err)
		}
		assertAbsent(t, s, "long")
	}
	err := s.Put(context.Background(), "long", NewChunkReader([]byte("x"), chunkSizes, nil), 0)
	if !errors.Is(err, objstore.ErrSizeMismatch) {
		t.Errorf("Put of size 0 with a 1-byte ChunkReader = %v, want ErrSizeMismatch", err)
	}
	assertAbsent(t, s, "long")
}

func testFailingChunkReader(t *testing.T, s objstore.ObjectStore) {
	data := Data(23, 3<<20)
	// The failure comes after all the data: the source did not end cleanly.
	for _, have := range []int{2 << 20, len(data)} {
		err := s.Put(context.Background(), "failing", NewChunkReader(data[:have], chunkSizes, errBoom), int64(len(data)))
		if !errors.Is(err, errBoom) {
			t.Errorf("Put with a ChunkReader failing after %d bytes = %v, want the reader's error", have, err)
		}
		assertAbsent(t, s, "failing")
	}
}
