package pack

import (
	"bytes"
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
