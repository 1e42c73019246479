package localdb

import (
	"bytes"
	"errors"
	"testing"

	"github.com/anysync/anysync/crypto"
)

func TestXattrsRoundTrip(t *testing.T) {
	xs := []Xattr{{Name: "user.b", Value: []byte("2")}, {Name: "user.a", Value: nil}, {Name: "user.c", Value: bytes.Repeat([]byte{7}, 300)}}
	got, err := DecodeXattrs(EncodeXattrs(xs))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0].Name != "user.a" || got[1].Name != "user.b" || string(got[1].Value) != "2" || len(got[2].Value) != 300 {
		t.Fatalf("round trip: %+v", got)
	}
	if EncodeXattrs(nil) != nil {
		t.Fatal("empty list should encode to nil")
	}
	for _, bad := range [][]byte{{1}, {1, 0, 0}, {2, 1, 'a', 0, 1, 'a', 0}, {1, 1, 'a', 5, 1}, {1, 1, 'a', 0, 9}} {
		if _, err := DecodeXattrs(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("DecodeXattrs(%v) = %v, want ErrCorrupt", bad, err)
		}
	}
}

func TestChunksRoundTrip(t *testing.T) {
	cs := []ChunkRef{{ID: crypto.ID{1, 2}, Length: 5}, {ID: crypto.ID{9}, Length: 1 << 31}}
	got, err := DecodeChunks(EncodeChunks(cs))
	if err != nil || len(got) != 2 || got[0] != cs[0] || got[1] != cs[1] {
		t.Fatalf("round trip: %v %v", got, err)
	}
	if _, err := DecodeChunks(make([]byte, 37)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("odd length: %v", err)
	}
}

func FuzzDecodeXattrs(f *testing.F) {
	f.Add(EncodeXattrs([]Xattr{{Name: "user.a", Value: []byte("x")}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		xs, err := DecodeXattrs(b)
		if err != nil {
			return
		}
		// Whatever decodes survives a round trip unchanged.
		again, err := DecodeXattrs(EncodeXattrs(xs))
		if err != nil || len(again) != len(xs) {
			t.Fatalf("round trip: %v, %d of %d", err, len(again), len(xs))
		}
		for i := range xs {
			if again[i].Name != xs[i].Name || !bytes.Equal(again[i].Value, xs[i].Value) {
				t.Fatalf("round trip changed %q", xs[i].Name)
			}
		}
	})
}

func FuzzDecodeChunks(f *testing.F) {
	f.Add(EncodeChunks([]ChunkRef{{ID: crypto.ID{1}, Length: 3}}))
	f.Fuzz(func(t *testing.T, b []byte) {
		cs, err := DecodeChunks(b)
		if err != nil {
			return
		}
		if again := EncodeChunks(cs); !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs")
		}
	})
}
