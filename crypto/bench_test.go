package crypto

import (
	"fmt"
	"testing"
)

var benchSizes = []int{4 << 10, 64 << 10, 1 << 20}

func sizeName(n int) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%dMiB", n>>20)
	}
	return fmt.Sprintf("%dKiB", n>>10)
}

func BenchmarkBlobCipherSeal(b *testing.B) {
	c := NewBlobCipher(randKey(b))
	id := randID(b)
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			pt := randBytes(b, n)
			dst := make([]byte, 0, n+Overhead)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Seal(dst[:0], pt, id, BlobData); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkBlobCipherOpen(b *testing.B) {
	c := NewBlobCipher(randKey(b))
	id := randID(b)
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			sealed, err := c.Seal(nil, randBytes(b, n), id, BlobData)
			if err != nil {
				b.Fatal(err)
			}
			dst := make([]byte, 0, n)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Open(dst[:0], sealed, id, BlobData); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkBlobKeySetup is the fixed per-blob cost (HKDF, AES key schedule,
// GCM setup) that Seal and Open pay on top of the bulk AES-GCM.
func BenchmarkBlobKeySetup(b *testing.B) {
	c := NewBlobCipher(randKey(b))
	id := randID(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.aead(id, purposeBlobKey); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkIDHasherSum(b *testing.B) {
	h := NewIDHasher(randKey(b))
	for _, n := range benchSizes {
		b.Run(sizeName(n), func(b *testing.B) {
			data := randBytes(b, n)
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				h.Sum(data)
			}
		})
	}
}

func BenchmarkDerive(b *testing.B) {
	k := randKey(b)
	id := randID(b)
	b.ReportAllocs()
	for b.Loop() {
		Derive(k, purposeBlobKey, id[:])
	}
}

// BenchmarkDerivePasswordSecretsDefault is the cost of a login or unlock at
// the default scrypt parameters.
func BenchmarkDerivePasswordSecretsDefault(b *testing.B) {
	p, err := NewScryptParams()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DerivePasswordSecrets([]byte("correct horse battery staple"), p); err != nil {
			b.Fatal(err)
		}
	}
}
