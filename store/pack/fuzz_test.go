package pack

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/anysync/anysync/crypto"
)

// fuzzPackName is the name the seed packs' headers are sealed to.
var fuzzPackName = strings.Repeat("a5", crypto.IDSize)

// checkEntries asserts entries tile [0, blobsLen) in order with sane lengths.
func checkEntries(t *testing.T, entries []Entry, blobsLen int64) {
	t.Helper()
	var off int64
	for _, e := range entries {
		if int64(e.Offset) != off || e.Length < minSealedLen || int(e.RawLength) > MaxLen(e.Type) {
			t.Fatalf("bad entry %+v at %d", e, off)
		}
		off += int64(e.Length)
	}
	if off != blobsLen {
		t.Fatalf("entries cover %d of %d bytes", off, blobsLen)
	}
}

// FuzzReadHeader feeds whole packs (trailer, header, blobs) to ReadHeader.
func FuzzReadHeader(f *testing.F) {
	c := testCodec(f, 1)
	f.Add([]byte{})
	f.Add([]byte("ASP\x01\x00\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s := newMemStore()
		s.put(t, fuzzPackName, data)
		entries, err := ReadHeader(context.Background(), s, c, fuzzPackName)
		if err != nil {
			if !isTyped(err) && !errors.Is(err, ErrBlobType) {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		hlen, err := ParseTrailer(data[len(data)-TrailerSize:])
		if err != nil {
			t.Fatalf("header read but trailer bad: %v", err)
		}
		checkEntries(t, entries, int64(len(data)-TrailerSize-hlen))
	})
}

// FuzzParseHeader fuzzes the authenticated header plaintext, which a rogue
// key holder controls.
func FuzzParseHeader(f *testing.F) {
	f.Add([]byte{headerVersion, 1}, int64(1000))
	f.Fuzz(func(t *testing.T, plain []byte, blobsLen int64) {
		entries, err := parseHeader(plain, blobsLen)
		if err != nil {
			if !isTyped(err) && !errors.Is(err, ErrBlobType) {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		checkEntries(t, entries, blobsLen)
	})
}

// FuzzDecode feeds sealed blobs to Codec.Decode.
func FuzzDecode(f *testing.F) {
	c := testCodec(f, 1)
	f.Add([]byte{}, uint8(crypto.BlobData))
	f.Fuzz(func(t *testing.T, sealed []byte, typ uint8) {
		var id crypto.ID
		plain, err := c.Decode(nil, sealed, id, crypto.BlobType(typ), 1<<20)
		if err != nil {
			if !isTyped(err) && !errors.Is(err, ErrBlobType) {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		if len(plain) > 1<<20 {
			t.Fatalf("decoded %d bytes past the limit", len(plain))
		}
	})
}

// FuzzUnframe fuzzes the authenticated framing (flag, length, zstd), which a
// rogue key holder controls: decompression bombs live here.
func FuzzUnframe(f *testing.F) {
	c := testCodec(f, 1)
	f.Add([]byte{flagRaw, 'h', 'i'}, uint32(10))
	f.Fuzz(func(t *testing.T, framed []byte, maxLen uint32) {
		limit := int(maxLen % (MaxDataLen + 1))
		out, err := c.unframe([]byte("x"), framed, limit)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		if len(out)-1 > limit || out[0] != 'x' {
			t.Fatalf("unframe gave %d bytes for limit %d", len(out)-1, limit)
		}
		if framed[0] == flagRaw && !bytes.Equal(out[1:], framed[1:]) {
			t.Fatal("raw frame changed")
		}
	})
}
