package pack

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/anysync/anysync/crypto"
)

// isTyped reports whether err is one of the errors a caller can act on.
func isTyped(err error) bool {
	return errors.Is(err, crypto.ErrAuth) || errors.Is(err, ErrCorrupt) || errors.Is(err, ErrTooLarge)
}

// readAll reads a pack's header and every blob, returning the plaintexts by
// ID, or the first error.
func readAll(s *memStore, c *Codec, name string) (map[crypto.ID][]byte, error) {
	ctx := context.Background()
	entries, err := ReadHeader(ctx, s, c, name)
	if err != nil {
		return nil, err
	}
	out := map[crypto.ID][]byte{}
	for _, e := range entries {
		sealed, err := ReadBlob(ctx, s, name, e)
		if err != nil {
			return nil, err
		}
		plain, err := c.Decode(nil, sealed, e.ID, e.Type, int(e.RawLength))
		if err != nil {
			return nil, err
		}
		out[e.ID] = plain
	}
	return out, nil
}

func TestTamperBitFlips(t *testing.T) {
	c := testCodec(t, 1)
	blobs := testBlobs()
	name, data, entries := buildPack(t, c, blobs)
	want := map[crypto.ID][]byte{}
	for _, b := range blobs {
		want[idOf(b.plain)] = b.plain
	}

	// Every byte of the header and trailer, the first and last bytes of
	// every blob, and random positions inside blobs.
	last := entries[len(entries)-1]
	hdrStart := int(last.Offset + last.Length)
	var positions []int
	for i := hdrStart; i < len(data); i++ {
		positions = append(positions, i)
	}
	for _, e := range entries {
		positions = append(positions, int(e.Offset), int(e.Offset+e.Length)-1, int(e.Offset)+crypto.NonceSize)
	}
	r := rand.New(rand.NewPCG(1, 2))
	for range 200 {
		positions = append(positions, r.IntN(hdrStart))
	}
	if testing.Short() {
		r.Shuffle(len(positions), func(i, j int) { positions[i], positions[j] = positions[j], positions[i] })
		positions = positions[:500]
	}

	for _, pos := range positions {
		bad := bytes.Clone(data)
		bad[pos] ^= 1 << (pos % 8)
		s := newMemStore()
		s.put(t, name, bad)
		got, err := readAll(s, c, name)
		if err == nil {
			t.Fatalf("flip at %d (header at %d) went unnoticed", pos, hdrStart)
		}
		if !isTyped(err) {
			t.Fatalf("flip at %d: untyped error %v", pos, err)
		}
		if got != nil {
			t.Fatalf("flip at %d: got data with an error", pos)
		}
	}
}

func TestTamperBlobFlipOnlyHitsThatBlob(t *testing.T) {
	ctx := context.Background()
	c := testCodec(t, 1)
	blobs := testBlobs()
	name, data, entries := buildPack(t, c, blobs)
	victim := entries[len(entries)/2]
	data[victim.Offset+victim.Length/2] ^= 0x80
	s := newMemStore()
	s.put(t, name, data)
	for _, e := range entries {
		sealed, err := ReadBlob(ctx, s, name, e)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := c.Decode(nil, sealed, e.ID, e.Type, 0)
		if e == victim {
			if !errors.Is(err, crypto.ErrAuth) || plain != nil {
				t.Fatalf("flipped blob: %v, %d bytes", err, len(plain))
			}
			continue
		}
		if err != nil {
			t.Fatalf("untouched blob %s: %v", e.ID.Short(), err)
		}
	}
}

func TestTamperTruncated(t *testing.T) {
	c := testCodec(t, 1)
	name, data, _ := buildPack(t, c, testBlobs())
	for _, cut := range []int{1, TrailerSize - 1, TrailerSize, TrailerSize + 1, 100, len(data) / 2, len(data) - 1} {
		s := newMemStore()
		s.put(t, name, data[:len(data)-cut])
		if _, err := readAll(s, c, name); !isTyped(err) {
			t.Errorf("cut %d bytes from the end: %v", cut, err)
		}
		s.put(t, name, data[cut:])
		if _, err := readAll(s, c, name); !isTyped(err) {
			t.Errorf("cut %d bytes from the start: %v", cut, err)
		}
	}
}

func TestTamperSwappedBlobs(t *testing.T) {
	c := testCodec(t, 1)
	var blobs []testBlob
	for i := range 6 {
		blobs = append(blobs, testBlob{crypto.BlobData, randomBytes(1000, uint64(i))})
	}
	name, data, entries := buildPack(t, c, blobs)
	a, b := entries[1], entries[4] // equal sealed lengths: incompressible, same size
	if a.Length != b.Length {
		t.Fatal("test blobs differ in length")
	}
	swapped := bytes.Clone(data)
	copy(swapped[a.Offset:a.Offset+a.Length], data[b.Offset:b.Offset+b.Length])
	copy(swapped[b.Offset:b.Offset+b.Length], data[a.Offset:a.Offset+a.Length])
	s := newMemStore()
	s.put(t, name, swapped)
	for _, e := range []Entry{a, b} {
		sealed, err := ReadBlob(context.Background(), s, name, e)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Decode(nil, sealed, e.ID, e.Type, 0); !errors.Is(err, crypto.ErrAuth) {
			t.Fatalf("swapped blob: %v", err)
		}
	}

	// A blob moved in from another pack, at the same position.
	_, data2, entries2 := buildPack(t, c, []testBlob{{crypto.BlobData, randomBytes(1000, 77)}})
	other := entries2[0]
	moved := bytes.Clone(data)
	copy(moved[a.Offset:a.Offset+a.Length], data2[other.Offset:other.Offset+other.Length])
	s.put(t, name, moved)
	sealed, err := ReadBlob(context.Background(), s, name, a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Decode(nil, sealed, a.ID, a.Type, 0); !errors.Is(err, crypto.ErrAuth) {
		t.Fatalf("blob from another pack: %v", err)
	}
	// Wrong type for the right bytes (a data chunk served as a tree).
	if _, err := c.Decode(nil, data[a.Offset:a.Offset+a.Length], a.ID, crypto.BlobTree, 0); !errors.Is(err, crypto.ErrAuth) {
		t.Fatalf("data blob opened as tree: %v", err)
	}
}

func TestTamperHeaderFromAnotherPack(t *testing.T) {
	c := testCodec(t, 1)
	blobs := testBlobs()
	nameA, dataA, _ := buildPack(t, c, blobs)
	_, dataB, _ := buildPack(t, c, blobs) // same blobs, same lengths, other header
	s := newMemStore()
	// Pack B's bytes under pack A's name: B's header is sealed to B's name.
	s.put(t, nameA, dataB)
	if _, err := ReadHeader(context.Background(), s, c, nameA); !errors.Is(err, crypto.ErrAuth) {
		t.Fatalf("pack B served as pack A: %v", err)
	}
	// Pack A's blobs with pack B's header and trailer.
	hlen, err := ParseTrailer(dataA[len(dataA)-TrailerSize:])
	if err != nil {
		t.Fatal(err)
	}
	mixed := append(bytes.Clone(dataA[:len(dataA)-TrailerSize-hlen]), dataB[len(dataB)-TrailerSize-hlen:]...)
	s.put(t, nameA, mixed)
	if _, err := ReadHeader(context.Background(), s, c, nameA); !errors.Is(err, crypto.ErrAuth) {
		t.Fatalf("header of pack B in pack A: %v", err)
	}
}

func TestTamperWrongKey(t *testing.T) {
	c := testCodec(t, 1)
	other := testCodec(t, 2)
	name, data, entries := buildPack(t, c, testBlobs())
	s := newMemStore()
	s.put(t, name, data)
	if _, err := ReadHeader(context.Background(), s, other, name); !errors.Is(err, crypto.ErrAuth) {
		t.Fatalf("header under another key: %v", err)
	}
	e := entries[0]
	if _, err := other.Decode(nil, data[e.Offset:e.Offset+e.Length], e.ID, e.Type, 0); !errors.Is(err, crypto.ErrAuth) {
		t.Fatalf("blob under another key: %v", err)
	}
}

func TestTamperLengthFields(t *testing.T) {
	ctx := context.Background()
	c := testCodec(t, 1)
	name, data, entries := buildPack(t, c, testBlobs())
	s := newMemStore()

	// Trailer claiming a header longer than the pack or the format allows.
	for _, n := range []uint32{0, 1, uint32(len(data)), 1<<32 - 1} {
		bad := bytes.Clone(data)
		binary.LittleEndian.PutUint32(bad[len(bad)-TrailerSize:], n)
		s.put(t, name, bad)
		if _, err := ReadHeader(ctx, s, c, name); !errors.Is(err, ErrCorrupt) {
			t.Errorf("header length %d: %v", n, err)
		}
	}
	// Index entries with hostile lengths are refused before any read.
	for _, e := range []Entry{
		{Type: crypto.BlobData, Length: 1<<32 - 1, RawLength: 100},
		{Type: crypto.BlobData, Length: 50, RawLength: MaxDataLen + 1},
		{Type: crypto.BlobData, Length: 5, RawLength: 5},
		{Type: crypto.BlobPackHeader, Length: 100, RawLength: 50},
	} {
		if _, err := ReadBlob(ctx, s, name, e); !isTyped(err) && !errors.Is(err, ErrBlobType) {
			t.Errorf("entry %+v: %v", e, err)
		}
	}
	// An entry pointing past the end of the object.
	s.put(t, name, data)
	e := entries[0]
	e.Offset = uint32(len(data))
	if _, err := ReadBlob(ctx, s, name, e); err == nil {
		t.Error("read past the end of the pack succeeded")
	}
	// A caller's max below the blob's length (maxLen 0 means "no caller
	// limit", so pick a blob of at least 2 bytes).
	e = entries[0]
	for _, x := range entries {
		if x.RawLength > e.RawLength {
			e = x
		}
	}
	if _, err := c.Decode(nil, data[e.Offset:e.Offset+e.Length], e.ID, e.Type, int(e.RawLength)-1); e.RawLength > 1 && !errors.Is(err, ErrTooLarge) {
		t.Errorf("maxLen below the blob: %v", err)
	}
}

// sealHeader seals an arbitrary header plaintext for pack name, as a
// key holder gone rogue could.
func sealHeader(t *testing.T, c *Codec, name string, plain []byte) []byte {
	t.Helper()
	id, err := ParseName(name)
	if err != nil {
		t.Fatal(err)
	}
	h, err := c.cipher.Seal(nil, plain, id, crypto.BlobPackHeader)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func headerPlain(entries []Entry, count int) []byte {
	p := []byte{headerVersion}
	p = binary.AppendUvarint(p, uint64(count))
	for _, e := range entries {
		p = append(p, byte(e.Type))
		p = append(p, e.ID[:]...)
		p = binary.LittleEndian.AppendUint32(p, e.Length)
		p = binary.LittleEndian.AppendUint32(p, e.RawLength)
	}
	return append(p, make([]byte, headerPlainLen(len(entries))-len(p))...)
}

func TestDecodeHeaderRejectsAuthenticatedNonsense(t *testing.T) {
	c := testCodec(t, 1)
	name, _ := NewName()
	e := func(typ crypto.BlobType, idb byte, length, raw uint32) Entry {
		var id crypto.ID
		id[0] = idb
		return Entry{Type: typ, ID: id, Length: length, RawLength: raw}
	}
	const blobs = 1000
	cases := map[string][]byte{
		"past the blobs":  headerPlain([]Entry{e(crypto.BlobData, 1, 600, 572), e(crypto.BlobData, 2, 600, 572)}, 2),
		"short of blobs":  headerPlain([]Entry{e(crypto.BlobData, 1, 500, 472)}, 1),
		"duplicate":       headerPlain([]Entry{e(crypto.BlobData, 1, 500, 472), e(crypto.BlobData, 1, 500, 472)}, 2),
		"bad type":        headerPlain([]Entry{e(9, 1, 1000, 972)}, 1),
		"header type":     headerPlain([]Entry{e(crypto.BlobPackHeader, 1, 1000, 972)}, 1),
		"raw too large":   headerPlain([]Entry{e(crypto.BlobData, 1, 1000, MaxDataLen+1)}, 1),
		"sealed > raw":    headerPlain([]Entry{e(crypto.BlobData, 1, 1000, 10)}, 1),
		"count too large": headerPlain([]Entry{e(crypto.BlobData, 1, 1000, 972)}, MaxEntries+1),
		"count mismatch":  headerPlain([]Entry{e(crypto.BlobData, 1, 1000, 972)}, 3),
		"zero count":      headerPlain(nil, 0),
		"bad version":     append([]byte{2}, headerPlain([]Entry{e(crypto.BlobData, 1, 1000, 972)}, 1)[1:]...),
		"bad padding":     append(headerPlain([]Entry{e(crypto.BlobData, 1, 1000, 972)}, 1)[:headerPad-1], 1),
		"short padding":   headerPlain([]Entry{e(crypto.BlobData, 1, 1000, 972)}, 1)[:100],
	}
	good := headerPlain([]Entry{e(crypto.BlobData, 1, 1000, 972)}, 1)
	h := sealHeader(t, c, name, good)
	if _, err := DecodeHeader(c, name, h, blobs+int64(len(h))+TrailerSize); err != nil {
		t.Fatalf("valid hand-made header: %v", err)
	}
	for what, plain := range cases {
		h := sealHeader(t, c, name, plain)
		if _, err := DecodeHeader(c, name, h, blobs+int64(len(h))+TrailerSize); !isTyped(err) && !errors.Is(err, ErrBlobType) {
			t.Errorf("%s: %v", what, err)
		}
	}
	if _, err := DecodeHeader(c, "../etc/passwd", h, 10000); !errors.Is(err, ErrCorrupt) {
		t.Errorf("bad pack name: %v", err)
	}
	if _, err := DecodeHeader(c, name, h, MaxPackSize+1); !errors.Is(err, ErrCorrupt) {
		t.Errorf("huge pack size: %v", err)
	}
}

// sealFrame seals an arbitrary framed plaintext as a data blob.
func sealFrame(t *testing.T, c *Codec, id crypto.ID, framed []byte) []byte {
	t.Helper()
	s, err := c.cipher.Seal(nil, framed, id, crypto.BlobData)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDecompressionBomb(t *testing.T) {
	c := testCodec(t, 1)
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	zeros := make([]byte, 64<<20)
	bomb := enc.EncodeAll(zeros, nil) // a few KiB
	var id crypto.ID

	// Honest about its size: refused by the limit before decompressing.
	framed := binary.AppendUvarint([]byte{flagZstd}, uint64(len(zeros)))
	framed = append(framed, bomb...)
	if _, err := c.Decode(nil, sealFrame(t, c, id, framed), id, crypto.BlobData, 0); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("64 MiB bomb: %v", err)
	}
	// Lying about its size: stops at the declared size.
	framed = binary.AppendUvarint([]byte{flagZstd}, 1000)
	framed = append(framed, bomb...)
	if _, err := c.Decode(nil, sealFrame(t, c, id, framed), id, crypto.BlobData, 0); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("lying bomb: %v", err)
	}
	// A small frame followed by the bomb as a second frame.
	small := enc.EncodeAll([]byte("hello"), nil)
	framed = binary.AppendUvarint([]byte{flagZstd}, 5)
	framed = append(append(framed, small...), bomb...)
	if _, err := c.Decode(nil, sealFrame(t, c, id, framed), id, crypto.BlobData, 0); !errors.Is(err, ErrTooLarge) && !errors.Is(err, ErrCorrupt) {
		t.Fatalf("two-frame bomb: %v", err)
	}
	// A declared size smaller than the caller's maxLen is honoured.
	plain := compressible(10000)
	sealed, err := c.Encode(nil, plain, id, crypto.BlobData)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Decode(nil, sealed, id, crypto.BlobData, 9999); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("maxLen 9999 for 10000 bytes: %v", err)
	}
	// Garbage after the flag, unknown flags, short declared size.
	for what, f := range map[string][]byte{
		"unknown flag": {7, 1, 2, 3},
		"empty":        {},
		"bad length":   {flagZstd, 0x80},
		"not zstd":     {flagZstd, 3, 1, 2, 3},
		"size short":   append(binary.AppendUvarint([]byte{flagZstd}, 4), small...),
		"size long":    append(binary.AppendUvarint([]byte{flagZstd}, 6), small...),
	} {
		if _, err := c.Decode(nil, sealFrame(t, c, id, f), id, crypto.BlobData, 0); !errors.Is(err, ErrCorrupt) && !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s: %v", what, err)
		}
	}
}

func TestCodecConcurrent(t *testing.T) {
	c := testCodec(t, 1)
	done := make(chan error)
	for g := range 4 {
		go func() {
			for i := range 20 {
				plain := append(compressible(30000+g*100+i), randomBytes(20000, uint64(g*100+i))...)
				id := idOf(plain)
				sealed, err := c.Encode(nil, plain, id, crypto.BlobData)
				if err == nil {
					var got []byte
					got, err = c.Decode(nil, sealed, id, crypto.BlobData, 0)
					if err == nil && !bytes.Equal(got, plain) {
						err = errors.New("concurrent round trip changed bytes")
					}
				}
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}
