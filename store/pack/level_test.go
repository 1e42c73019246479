package pack

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/anysync/anysync/crypto"
)

// sourceLike returns n bytes of Go-like text: lines drawn from a small
// vocabulary, as in a source tree (zstd's default level finds more of the
// repetition than its fastest).
func sourceLike(n int, seed uint64) []byte {
	words := []string{"func", "return", "if", "err", "!=", "nil", "{", "}", "for", "range", "x", "y",
		"buf", "len(b)", ":=", "int", "string", "fmt.Errorf(\"%w\", err)", "//", "the", "a", "of", "i++"}
	r := rand.New(rand.NewPCG(seed, 2))
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString("\t")
		for range 3 + r.IntN(8) {
			b.WriteString(words[r.IntN(len(words))])
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%d\n", r.IntN(1000))
	}
	return b.Bytes()[:n]
}

// digits returns n random decimal digits in lines of 80: about 3.3 bits
// per byte, compressible by entropy coding though nothing repeats.
func digits(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 3))
	b := make([]byte, n)
	for i := range b {
		if i%81 == 80 {
			b[i] = '\n'
		} else {
			b[i] = '0' + byte(r.IntN(10))
		}
	}
	return b
}

func levelCodec(t testing.TB, l Level) *Codec {
	t.Helper()
	c, err := NewCodecLevel(crypto.NewBlobCipher(testKey(1)), l)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestByteEntropy(t *testing.T) {
	if e := byteEntropy(bytes.Repeat([]byte{7}, 1000)); e != 0 {
		t.Fatalf("one symbol: %v bits, want 0", e)
	}
	if e := byteEntropy(bytes.Repeat([]byte{1, 2}, 1000)); e != 1 {
		t.Fatalf("two equally frequent symbols: %v bits, want 1", e)
	}
	if e := byteEntropy(randomBytes(probeLen, 9)); e <= entropyRaw {
		t.Fatalf("random sample: %v bits, want above %v", e, entropyRaw)
	}
	if e := byteEntropy(sourceLike(probeLen, 1)); e >= entropyCompress {
		t.Fatalf("source-like sample: %v bits, want below %v", e, entropyCompress)
	}
}

// TestCodecCompressionDecisions checks what each level stores for data the
// probe must get right.
func TestCodecCompressionDecisions(t *testing.T) {
	period := randomBytes(2<<10, 4) // high byte entropy, but it repeats
	cases := []struct {
		name       string
		plain      []byte
		compressed [2]bool // at LevelFastest, LevelDefault
	}{
		{"source 64 KiB", sourceLike(64<<10, 1), [2]bool{true, true}},
		// Digits: no matches, only skewed byte frequencies. The old
		// zstd-only probe (fastest level on 8 KiB) stored such chunks raw
		// at any level; the entropy check sends them to the codec's
		// level, and only the default level entropy-codes literals
		// without matches.
		{"digits 100 KB", digits(100_000, 1), [2]bool{false, true}},
		{"random 1 MiB", randomBytes(1<<20, 5), [2]bool{false, false}},
		{"repeating random 64 KiB", bytes.Repeat(period, 32), [2]bool{true, true}},
		{"small random", randomBytes(1000, 6), [2]bool{false, false}},
	}
	for _, l := range []Level{LevelFastest, LevelDefault} {
		c := levelCodec(t, l)
		for _, tc := range cases {
			sealed, err := c.Encode(nil, tc.plain, idOf(tc.plain), crypto.BlobData)
			if err != nil {
				t.Fatal(err)
			}
			raw := len(tc.plain) + minSealedLen
			switch compressed := tc.compressed[l]; {
			case compressed && len(sealed) > len(tc.plain)*3/4:
				t.Errorf("%v, %s: sealed %d of %d bytes, want compressed below 3/4", l, tc.name, len(sealed), len(tc.plain))
			case !compressed && len(sealed) != raw:
				t.Errorf("%v, %s: sealed %d bytes, want raw %d", l, tc.name, len(sealed), raw)
			}
			got, err := c.Decode(nil, sealed, idOf(tc.plain), crypto.BlobData, len(tc.plain))
			if err != nil || !bytes.Equal(got, tc.plain) {
				t.Fatalf("%v, %s: round trip: %v", l, tc.name, err)
			}
		}
	}
}

// TestCodecLevels checks that the default level stores source-like text
// smaller than the fastest, and that blobs of either level open with a
// codec of the other (the level is not part of the format).
func TestCodecLevels(t *testing.T) {
	fast, def := levelCodec(t, LevelFastest), levelCodec(t, LevelDefault)
	if fast.Level() != LevelFastest || def.Level() != LevelDefault {
		t.Fatalf("levels %v and %v", fast.Level(), def.Level())
	}
	var sizes [2]int
	for i := range 20 {
		plain := sourceLike(4<<10+i*3000, uint64(i))
		id := idOf(plain)
		for j, c := range []*Codec{fast, def} {
			for _, typ := range []crypto.BlobType{crypto.BlobData, crypto.BlobTree} {
				sealed, err := c.Encode(nil, plain, id, typ)
				if err != nil {
					t.Fatal(err)
				}
				if typ == crypto.BlobData {
					sizes[j] += len(sealed)
				}
				other := []*Codec{def, fast}[j]
				got, err := other.Decode(nil, sealed, id, typ, len(plain))
				if err != nil || !bytes.Equal(got, plain) {
					t.Fatalf("%v blob of %d bytes opened by a %v codec: %v", c.Level(), len(plain), other.Level(), err)
				}
			}
		}
	}
	if sizes[1] >= sizes[0] {
		t.Fatalf("default level stored %d bytes, fastest %d: want smaller", sizes[1], sizes[0])
	}
	t.Logf("source-like text: fastest %d bytes, default %d (%.1f %% smaller)", sizes[0], sizes[1], 100*(1-float64(sizes[1])/float64(sizes[0])))
}

func TestCodecUnknownLevel(t *testing.T) {
	if _, err := NewCodecLevel(crypto.NewBlobCipher(testKey(1)), Level(9)); err == nil {
		t.Fatal("level 9 accepted")
	}
	if _, err := NewCodecLevel(nil, LevelDefault); err == nil {
		t.Fatal("nil cipher accepted")
	}
	if s := Level(9).String(); s != "Level(9)" {
		t.Fatalf("Level(9).String() = %q", s)
	}
}

// checkPack reads every blob of a finished pack back and compares it.
func checkPack(t *testing.T, c *Codec, name string, data []byte, want map[crypto.ID][]byte) {
	t.Helper()
	ctx := context.Background()
	s := newMemStore()
	s.put(t, name, data)
	entries, err := ReadHeader(ctx, s, c, name)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != len(want) {
		t.Fatalf("pack holds %d blobs, want %d", len(entries), len(want))
	}
	for _, e := range entries {
		sealed, err := ReadBlob(ctx, s, name, e)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := c.Decode(nil, sealed, e.ID, e.Type, int(e.RawLength))
		if err != nil || !bytes.Equal(plain, want[e.ID]) {
			t.Fatalf("blob %s: %v", e.ID.Short(), err)
		}
	}
}

// fillWriter adds random blobs of base+10i bytes until the pack is full
// and returns them by ID.
func fillWriter(t *testing.T, w *Writer, base, round int) map[crypto.ID][]byte {
	t.Helper()
	want := map[crypto.ID][]byte{}
	for i := 0; !w.Full(); i++ {
		plain := randomBytes(base+i*10, uint64(round*1000+i))
		id := idOf(plain)
		if err := w.Add(crypto.BlobData, id, plain); err != nil {
			t.Fatal(err)
		}
		want[id] = plain
	}
	return want
}

// TestWriterGrowthAndRecycle fills a small writer past several doublings,
// and lays later packs out in a recycled pack's bytes: every pack reads
// back whole, and a recycled buffer is reused only once handed back.
func TestWriterGrowthAndRecycle(t *testing.T) {
	c := testCodec(t, 1)
	for _, w := range []*Writer{NewWriter(c, 4<<20), NewSmallWriter(c, 4<<20)} {
		var prev []byte
		spare := make([]byte, 0, 8<<20)
		for round := range 3 {
			want := fillWriter(t, w, 100<<10, round)
			name, data, _, err := w.Finish()
			if err != nil {
				t.Fatal(err)
			}
			if prev != nil && &data[0] == &prev[0] {
				t.Fatal("Finish reused a pack's bytes that were not handed back")
			}
			checkPack(t, c, name, data, want)
			if round == 2 && &data[:1][0] != &spare[:1][0] {
				t.Fatal("Finish did not lay the pack out in the recycled bytes")
			}
			if round == 1 {
				w.Recycle(spare) // a stored pack's bytes, big enough
			}
			prev = data
		}
	}
}

// TestWriterKeepsSeveralSpares: with packs uploading two at a time, every
// pack handed back is reused, not only the last one.
func TestWriterKeepsSeveralSpares(t *testing.T) {
	c := testCodec(t, 1)
	w := NewWriter(c, 1<<20)
	finish := func(round int) []byte {
		t.Helper()
		want := fillWriter(t, w, 100<<10+round, round)
		name, data, _, err := w.Finish()
		if err != nil {
			t.Fatal(err)
		}
		checkPack(t, c, name, data, want)
		return data
	}
	var first [][]byte
	for round := range maxSpares {
		first = append(first, finish(round))
	}
	for _, data := range first {
		w.Recycle(data)
	}
	reused := map[*byte]bool{}
	for _, data := range first {
		reused[&data[:1][0]] = false
	}
	for round := range maxSpares {
		data := finish(maxSpares + round)
		p := &data[:1][0]
		if done, ok := reused[p]; !ok || done {
			t.Fatalf("pack %d not laid out in a recycled buffer (or in one twice)", round)
		}
		reused[p] = true
	}
}

// TestFinishPieces: a pack finished in pieces joins to a valid pack whose
// entries match its header; the next pack is filled in another buffer
// while the first is not handed back, and in the first once it is.
func TestFinishPieces(t *testing.T) {
	c := testCodec(t, 1)
	for _, w := range []*Writer{NewWriter(c, 1<<20), NewSmallWriter(c, 1<<20)} {
		fill := func(round int) map[crypto.ID][]byte { return fillWriter(t, w, 50<<10, round) }
		want := fill(0)
		f, err := w.FinishPieces()
		if err != nil {
			t.Fatal(err)
		}
		first := f.Bytes()
		if int64(len(first)) != f.Size || len(f.Pieces) != len(want)+1 {
			t.Fatalf("%d pieces of %d bytes for %d blobs, size %d", len(f.Pieces), len(first), len(want), f.Size)
		}
		checkPack(t, c, f.Name, first, want)
		for _, e := range f.Entries {
			sealed := first[e.Offset : e.Offset+e.Length]
			if plain, err := c.Decode(nil, sealed, e.ID, e.Type, int(e.RawLength)); err != nil || !bytes.Equal(plain, want[e.ID]) {
				t.Fatalf("entry %s does not point at its blob: %v", e.ID.Short(), err)
			}
		}
		buf0 := &f.buf[:1][0]

		// Not handed back: the next pack must not touch the first's bytes.
		want2 := fill(1)
		if !bytes.Equal(f.Bytes(), first) {
			t.Fatal("the next pack overwrote a finished pack's pieces")
		}
		f2, err := w.FinishPieces()
		if err != nil {
			t.Fatal(err)
		}
		checkPack(t, c, f2.Name, f2.Bytes(), want2)

		// Handed back: a later pack is laid out in the first's buffer.
		w.RecycleFinished(f)
		w.RecycleFinished(f2)
		fill(2)
		f3, err := w.FinishPieces()
		if err != nil {
			t.Fatal(err)
		}
		reused := false
		for _, p := range f3.Pieces[:len(f3.Pieces)-1] {
			if &p[:1][0] == buf0 {
				reused = true
			}
		}
		if !reused {
			t.Error("a recycled buffer was not reused")
		}
	}
}
