package pack

import (
	"bytes"
	"io"
	"testing"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/store/chunker"
)

func benchEncode(b *testing.B, plain []byte) {
	c := testCodec(b, 1)
	id := idOf(plain)
	dst := make([]byte, 0, len(plain)+minSealedLen)
	b.SetBytes(int64(len(plain)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Encode(dst[:0], plain, id, crypto.BlobData); err != nil {
			b.Fatal(err)
		}
	}
}

func benchDecode(b *testing.B, plain []byte) {
	c := testCodec(b, 1)
	id := idOf(plain)
	sealed, err := c.Encode(nil, plain, id, crypto.BlobData)
	if err != nil {
		b.Fatal(err)
	}
	dst := make([]byte, 0, len(plain))
	b.SetBytes(int64(len(plain)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Decode(dst[:0], sealed, id, crypto.BlobData, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkEncodeSource encodes a 12 KiB source file (the Go tree's mean
// file size) at each level: the backup's hot path on small files.
func BenchmarkEncodeSource(b *testing.B) {
	plain := sourceLike(12<<10, 1)
	id := idOf(plain)
	for _, l := range []Level{LevelFastest, LevelDefault} {
		b.Run(l.String(), func(b *testing.B) {
			c := levelCodec(b, l)
			dst := make([]byte, 0, len(plain)+minSealedLen)
			b.SetBytes(int64(len(plain)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Encode(dst[:0], plain, id, crypto.BlobData); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkByteEntropy(b *testing.B) {
	sample := sourceLike(probeLen, 1)
	b.SetBytes(int64(len(sample)))
	for b.Loop() {
		_ = byteEntropy(sample)
	}
}

func BenchmarkEncodeRandom(b *testing.B)       { benchEncode(b, randomBytes(1<<20, 1)) }
func BenchmarkEncodeCompressible(b *testing.B) { benchEncode(b, compressible(1<<20)) }
func BenchmarkDecodeRandom(b *testing.B)       { benchDecode(b, randomBytes(1<<20, 1)) }
func BenchmarkDecodeCompressible(b *testing.B) { benchDecode(b, compressible(1<<20)) }

// BenchmarkPipeline is the whole write path on one goroutine: chunk 64 MiB of
// incompressible data, hash each chunk to its ID, compress-probe and seal
// it, and pack it.
func BenchmarkPipeline(b *testing.B) {
	data := randomBytes(64<<20, 7)
	var authKey crypto.Key
	authKey[0] = 1
	gear := crypto.GearTable(authKey)
	hasher := crypto.NewIDHasher(authKey)
	c := testCodec(b, 1)
	w := NewWriter(c, DefaultTarget)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		ch := chunker.New(bytes.NewReader(data), gear, chunker.DefaultParams())
		for {
			chunk, err := ch.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			if err := w.Add(crypto.BlobData, hasher.Sum(chunk), chunk); err != nil {
				b.Fatal(err)
			}
			if w.Full() {
				if _, _, _, err := w.Finish(); err != nil {
					b.Fatal(err)
				}
			}
		}
		if w.Len() > 0 {
			if _, _, _, err := w.Finish(); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// BenchmarkDecodeInPlaceRandom is the cold read's decode: a fetched 1 MiB
// incompressible chunk decrypted in its own buffer (re-sealed each time,
// outside the timer).
func BenchmarkDecodeInPlaceRandom(b *testing.B) {
	c := testCodec(b, 1)
	plain := randomBytes(1<<20, 1)
	id := idOf(plain)
	sealed, err := c.Encode(nil, plain, id, crypto.BlobData)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, len(sealed))
	b.SetBytes(int64(len(plain)))
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		copy(buf, sealed)
		b.StartTimer()
		if _, err := c.DecodeInPlace(buf, id, crypto.BlobData, 0); err != nil {
			b.Fatal(err)
		}
	}
}
