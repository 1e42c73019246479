package chunker

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
)

// testGear stands in for crypto.GearTable: any table of random words.
func testGear(seed uint64) *[256]uint64 {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	var g [256]uint64
	for i := range g {
		g[i] = r.Uint64()
	}
	return &g
}

func randomData(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// smallParams keeps tests fast while exercising many boundaries.
var smallParams = Params{Min: 2 << 10, Avg: 8 << 10, Max: 32 << 10}

// chunkAll returns copies of every chunk of r.
func chunkAll(t testing.TB, r io.Reader, gear *[256]uint64, p Params) [][]byte {
	t.Helper()
	c := New(r, gear, p)
	var out [][]byte
	for {
		b, err := c.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		out = append(out, bytes.Clone(b))
	}
}

func lengths(chunks [][]byte) []int {
	var l []int
	for _, c := range chunks {
		l = append(l, len(c))
	}
	return l
}

func checkChunks(t *testing.T, data []byte, chunks [][]byte, p Params) {
	t.Helper()
	if got := bytes.Join(chunks, nil); !bytes.Equal(got, data) {
		t.Fatalf("concatenated chunks (%d bytes) differ from input (%d bytes)", len(got), len(data))
	}
	for i, c := range chunks {
		if len(c) > p.Max || len(c) == 0 {
			t.Fatalf("chunk %d has %d bytes, max %d", i, len(c), p.Max)
		}
		if i < len(chunks)-1 && len(c) < p.Min {
			t.Fatalf("chunk %d of %d has %d bytes, min %d", i, len(chunks), len(c), p.Min)
		}
	}
}

func TestChunkBoundsAndConcat(t *testing.T) {
	gear := testGear(1)
	for _, p := range []Params{smallParams, DefaultParams()} {
		size := 200 * p.Avg / 10
		if testing.Short() {
			size = 40 * p.Avg / 10
		}
		data := randomData(size, 7)
		chunks := chunkAll(t, bytes.NewReader(data), gear, p)
		checkChunks(t, data, chunks, p)
		// Normalized chunking: the mean is near Avg (well within 2x).
		mean := len(data) / len(chunks)
		if mean < p.Avg/2 || mean > 2*p.Avg {
			t.Errorf("params %+v: mean chunk %d far from avg", p, mean)
		}
	}
}

// referenceCuts is the FastCDC definition written plainly, one byte at a
// time, to pin the two-bytes-per-step loop to it.
func referenceCuts(data []byte, gear *[256]uint64, p Params) []int {
	small, large := p.masks()
	var lens []int
	for len(data) > 0 {
		n := min(len(data), p.Max)
		cut := n
		if n > p.Min {
			var h uint64
			for i := p.Min; i < n; i++ {
				h = h<<1 + gear[data[i]]
				mask := large
				if i < p.Avg {
					mask = small
				}
				if h&mask == 0 {
					cut = i + 1
					break
				}
			}
		}
		lens = append(lens, cut)
		data = data[cut:]
	}
	return lens
}

func TestMatchesReference(t *testing.T) {
	for seed := range uint64(4) {
		data := randomData(2<<20+int(seed)*777, seed)
		got := lengths(chunkAll(t, bytes.NewReader(data), testGear(seed), smallParams))
		if want := referenceCuts(data, testGear(seed), smallParams); !equalInts(got, want) {
			t.Fatalf("seed %d: chunk lengths differ from the reference\n got %v\nwant %v", seed, got, want)
		}
	}
}

func TestDeterministic(t *testing.T) {
	data := randomData(1<<20, 3)
	a := lengths(chunkAll(t, bytes.NewReader(data), testGear(1), smallParams))
	b := lengths(chunkAll(t, bytes.NewReader(data), testGear(1), smallParams))
	if len(a) < 10 {
		t.Fatalf("only %d chunks", len(a))
	}
	if !equalInts(a, b) {
		t.Fatal("same input and gear gave different boundaries")
	}
}

func TestGearChangesBoundaries(t *testing.T) {
	data := randomData(1<<20, 3)
	a := lengths(chunkAll(t, bytes.NewReader(data), testGear(1), smallParams))
	b := lengths(chunkAll(t, bytes.NewReader(data), testGear(2), smallParams))
	if equalInts(a, b) {
		t.Fatal("different gear tables gave identical boundaries")
	}
}

func TestShortReads(t *testing.T) {
	data := randomData(300<<10, 5)
	want := chunkAll(t, bytes.NewReader(data), testGear(1), smallParams)
	for name, r := range map[string]io.Reader{
		"onebyte": iotest.OneByteReader(bytes.NewReader(data)),
		"half":    iotest.HalfReader(bytes.NewReader(data)),
		"dataerr": iotest.DataErrReader(bytes.NewReader(data)),
	} {
		got := chunkAll(t, r, testGear(1), smallParams)
		if !equalInts(lengths(got), lengths(want)) {
			t.Errorf("%s: boundaries differ from a full reader", name)
		}
		checkChunks(t, data, got, smallParams)
	}
}

func TestInsertChangesFewChunks(t *testing.T) {
	size := 64 << 20
	p := DefaultParams()
	if testing.Short() {
		size, p = 4<<20, smallParams
	}
	data := randomData(size, 11)
	edited := make([]byte, 0, len(data)+1)
	edited = append(edited, data[:len(data)/2]...)
	edited = append(edited, 0x42)
	edited = append(edited, data[len(data)/2:]...)

	gear := testGear(9)
	a := chunkAll(t, bytes.NewReader(data), gear, p)
	b := chunkAll(t, bytes.NewReader(edited), gear, p)
	seen := make(map[string]bool, len(a))
	for _, c := range a {
		seen[string(c)] = true
	}
	changed := 0
	for _, c := range b {
		if !seen[string(c)] {
			changed++
		}
	}
	if changed == 0 || changed > 3 {
		t.Fatalf("inserting one byte changed %d of %d chunks, want 1..3", changed, len(b))
	}
}

func TestEmptyAndTiny(t *testing.T) {
	if got := chunkAll(t, bytes.NewReader(nil), testGear(1), smallParams); len(got) != 0 {
		t.Fatalf("empty input gave %d chunks", len(got))
	}
	got := chunkAll(t, bytes.NewReader([]byte("hello")), testGear(1), smallParams)
	if len(got) != 1 || string(got[0]) != "hello" {
		t.Fatalf("tiny input gave %q", got)
	}
}

func TestZerosCutAtMax(t *testing.T) {
	// A constant stream never matches (gear[0] repeats), so every chunk is Max.
	data := make([]byte, 5*smallParams.Max+7)
	chunks := chunkAll(t, bytes.NewReader(data), testGear(1), smallParams)
	checkChunks(t, data, chunks, smallParams)
}

func TestReadError(t *testing.T) {
	boom := errors.New("boom")
	r := io.MultiReader(bytes.NewReader(randomData(1000, 1)), iotest.ErrReader(boom))
	c := New(r, testGear(1), smallParams)
	if _, err := c.Next(); !errors.Is(err, boom) {
		t.Fatalf("Next = %v, want boom", err)
	}
	if _, err := c.Next(); !errors.Is(err, boom) {
		t.Fatalf("second Next = %v, want boom again", err)
	}
}

type stuckReader struct{}

func (stuckReader) Read([]byte) (int, error) { return 0, nil }

func TestNoProgress(t *testing.T) {
	if _, err := New(stuckReader{}, testGear(1), smallParams).Next(); !errors.Is(err, io.ErrNoProgress) {
		t.Fatalf("Next on a stuck reader = %v, want io.ErrNoProgress", err)
	}
}

func TestInvalidParams(t *testing.T) {
	for _, p := range []Params{
		{},
		{Min: 10, Avg: 1000, Max: 4000},        // avg not a power of two
		{Min: 1024, Avg: 1024, Max: 4096},      // min == avg
		{Min: 0, Avg: 1024, Max: 4096},         // min 0
		{Min: 256, Avg: 1024, Max: 1024},       // max == avg
		{Min: 256, Avg: 1024, Max: MaxMax + 1}, // max too big
	} {
		if err := p.Validate(); !errors.Is(err, ErrParams) {
			t.Errorf("Validate(%+v) = %v, want ErrParams", p, err)
		}
		if _, err := New(bytes.NewReader([]byte("x")), testGear(1), p).Next(); !errors.Is(err, ErrParams) {
			t.Errorf("Next with %+v = %v, want ErrParams", p, err)
		}
	}
	if _, err := New(bytes.NewReader(nil), nil, smallParams).Next(); !errors.Is(err, ErrParams) {
		t.Errorf("nil gear: %v, want ErrParams", err)
	}
	if err := DefaultParams().Validate(); err != nil {
		t.Fatalf("default params: %v", err)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func FuzzChunker(f *testing.F) {
	f.Add([]byte(""), uint8(1))
	f.Add([]byte("hello world"), uint8(2))
	f.Add(randomData(3000, 1), uint8(3))
	p := Params{Min: 64, Avg: 256, Max: 1024}
	gear := testGear(1)
	f.Fuzz(func(t *testing.T, data []byte, step uint8) {
		var r io.Reader = bytes.NewReader(data)
		if step%2 == 1 {
			r = iotest.OneByteReader(r)
		}
		c := New(r, gear, p)
		var got []byte
		for {
			b, err := c.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(b) == 0 || len(b) > p.Max {
				t.Fatalf("chunk of %d bytes", len(b))
			}
			if len(b) < p.Min && len(got)+len(b) != len(data) {
				t.Fatalf("short chunk of %d bytes before the end", len(b))
			}
			got = append(got, b...)
		}
		if !bytes.Equal(got, data) {
			t.Fatal("chunks do not concatenate to the input")
		}
	})
}

func BenchmarkChunker(b *testing.B) {
	data := randomData(64<<20, 1)
	gear := testGear(1)
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for b.Loop() {
		c := New(bytes.NewReader(data), gear, DefaultParams())
		for {
			_, err := c.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
		}
	}
}

func TestResetReusesChunker(t *testing.T) {
	gear := testGear(3)
	p := Params{Min: 1 << 10, Avg: 4 << 10, Max: 16 << 10}
	a, b := randomData(200<<10, 1), randomData(150<<10, 2)
	c := New(bytes.NewReader(a), gear, p)
	first := collect(t, c)
	c.Reset(bytes.NewReader(b))
	second := collect(t, c)
	fresh := collect(t, New(bytes.NewReader(b), gear, p))
	if !bytes.Equal(bytes.Join(first, nil), a) || !bytes.Equal(bytes.Join(second, nil), b) {
		t.Fatal("chunks do not concatenate to the input")
	}
	if len(second) != len(fresh) {
		t.Fatalf("reset chunker cut %d chunks, a fresh one %d", len(second), len(fresh))
	}
	for i := range fresh {
		if !bytes.Equal(second[i], fresh[i]) {
			t.Fatalf("chunk %d differs after Reset", i)
		}
	}
}

func collect(t *testing.T, c *Chunker) [][]byte {
	t.Helper()
	var out [][]byte
	for {
		chunk, err := c.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, bytes.Clone(chunk))
	}
}
