package crypto

import (
	"bytes"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"testing"
)

var allBlobTypes = []BlobType{BlobData, BlobTree, BlobVersion, BlobPackHeader}

func randBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func randID(t testing.TB) ID {
	t.Helper()
	var id ID
	copy(id[:], randBytes(t, IDSize))
	return id
}

func TestBlobCipherRoundTrip(t *testing.T) {
	c := NewBlobCipher(randKey(t))
	for _, typ := range allBlobTypes {
		for _, n := range []int{0, 1, 15, 16, 17, 4096, 1 << 20} {
			pt := randBytes(t, n)
			id := randID(t)
			sealed, err := c.Seal(nil, pt, id, typ)
			if err != nil {
				t.Fatal(err)
			}
			if len(sealed) != n+Overhead {
				t.Fatalf("%s %d bytes: sealed is %d bytes, want %d", typ, n, len(sealed), n+Overhead)
			}
			got, err := c.Open(nil, sealed, id, typ)
			if err != nil {
				t.Fatalf("%s %d bytes: %v", typ, n, err)
			}
			if !bytes.Equal(got, pt) {
				t.Fatalf("%s %d bytes: round trip changed the plaintext", typ, n)
			}
		}
	}
}

func TestBlobCipherAppends(t *testing.T) {
	c := NewBlobCipher(randKey(t))
	id := randID(t)
	pt := []byte("chunk")
	sealed, err := c.Seal([]byte("prefix"), pt, id, BlobData)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(sealed, []byte("prefix")) {
		t.Fatal("Seal did not append to dst")
	}
	got, err := c.Open([]byte("head:"), sealed[len("prefix"):], id, BlobData)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "head:chunk" {
		t.Fatalf("Open gave %q", got)
	}
}

func TestBlobCipherFreshNonces(t *testing.T) {
	c := NewBlobCipher(randKey(t))
	id := randID(t)
	a, err := c.Seal(nil, []byte("same"), id, BlobData)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Seal(nil, []byte("same"), id, BlobData)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a[:NonceSize], b[:NonceSize]) || bytes.Equal(a, b) {
		t.Fatal("two seals of the same blob share a nonce")
	}
}

func TestBlobCipherBindsIDAndType(t *testing.T) {
	c := NewBlobCipher(randKey(t))
	id := randID(t)
	pt := randBytes(t, 100)
	for _, typ := range allBlobTypes {
		sealed, err := c.Seal(nil, pt, id, typ)
		if err != nil {
			t.Fatal(err)
		}
		other := id
		other[IDSize-1] ^= 1
		if _, err := c.Open(nil, sealed, other, typ); !errors.Is(err, ErrAuth) {
			t.Fatalf("%s under another ID: err = %v, want ErrAuth", typ, err)
		}
		for _, ot := range append(allBlobTypes, BlobType(0), BlobType(99)) {
			if ot == typ {
				continue
			}
			if _, err := c.Open(nil, sealed, id, ot); !errors.Is(err, ErrAuth) {
				t.Fatalf("%s opened as %s: err = %v, want ErrAuth", typ, ot, err)
			}
		}
		if _, err := NewBlobCipher(randKey(t)).Open(nil, sealed, id, typ); !errors.Is(err, ErrAuth) {
			t.Fatalf("%s under another file key: err = %v, want ErrAuth", typ, err)
		}
	}
}

// TestBlobCipherBindsVersion seals a blob as a future format version would
// and checks this version refuses it.
func TestBlobCipherBindsVersion(t *testing.T) {
	c := NewBlobCipher(randKey(t))
	id := randID(t)
	aead, err := c.aead(id, purposeBlobKey)
	if err != nil {
		t.Fatal(err)
	}
	ad := associatedData(id, BlobData)
	ad[len(ad)-1] = FormatVersion + 1
	nonce := randBytes(t, NonceSize)
	sealed := aead.Seal(bytes.Clone(nonce), nonce, []byte("data"), ad)
	if _, err := c.Open(nil, sealed, id, BlobData); !errors.Is(err, ErrAuth) {
		t.Fatalf("other format version: err = %v, want ErrAuth", err)
	}
	// The same construction with the right version opens, so the test
	// above fails for the version and nothing else.
	ad[len(ad)-1] = FormatVersion
	sealed = aead.Seal(bytes.Clone(nonce), nonce, []byte("data"), ad)
	if got, err := c.Open(nil, sealed, id, BlobData); err != nil || string(got) != "data" {
		t.Fatalf("control: %q, %v", got, err)
	}
}

func TestBlobCipherBitFlipsAndTruncation(t *testing.T) {
	c := NewBlobCipher(randKey(t))
	id := randID(t)
	pt := randBytes(t, 64)
	sealed, err := c.Seal(nil, pt, id, BlobTree)
	if err != nil {
		t.Fatal(err)
	}
	for i := range sealed {
		for bit := 0; bit < 8; bit++ {
			bad := bytes.Clone(sealed)
			bad[i] ^= 1 << bit
			if got, err := c.Open(nil, bad, id, BlobTree); !errors.Is(err, ErrAuth) || got != nil {
				t.Fatalf("flip byte %d bit %d: err = %v", i, bit, err)
			}
		}
	}
	for n := 0; n < len(sealed); n++ {
		if got, err := c.Open(nil, sealed[:n], id, BlobTree); !errors.Is(err, ErrAuth) || got != nil {
			t.Fatalf("truncated to %d: err = %v", n, err)
		}
	}
	if _, err := c.Open(nil, append(bytes.Clone(sealed), 0), id, BlobTree); !errors.Is(err, ErrAuth) {
		t.Fatalf("extended: err = %v", err)
	}
}

func TestPerBlobKeysDiffer(t *testing.T) {
	fk := randKey(t)
	a, b := randID(t), randID(t)
	ka := Derive(fk, purposeBlobKey, a[:])
	kb := Derive(fk, purposeBlobKey, b[:])
	if ka == kb || ka == fk {
		t.Fatal("per-blob keys of two IDs are equal")
	}
	if Derive(fk, purposePackHeader, a[:]) == ka {
		t.Fatal("pack header key equals the blob key of the same ID")
	}
	if Derive(randKey(t), purposeBlobKey, a[:]) == ka {
		t.Fatal("per-blob key does not depend on the file key")
	}
}

// TestDeriverIsHKDF checks the cached-extract derivation against one-shot
// HKDF-SHA256 (RFC 5869), for contexts of several lengths.
func TestDeriverIsHKDF(t *testing.T) {
	fk := randKey(t)
	d := newDeriver(fk)
	for _, ctx := range [][]byte{nil, {1}, randBytes(t, 32), randBytes(t, 200)} {
		info := append(append([]byte(purposeBlobKey), 0), ctx...)
		want, err := hkdf.Key(sha256.New, fk[:], nil, string(info), KeySize)
		if err != nil {
			t.Fatal(err)
		}
		if got := d.derive(purposeBlobKey, ctx); !bytes.Equal(got[:], want) {
			t.Fatalf("context of %d bytes: derived %x, HKDF gives %x", len(ctx), got, want)
		}
		if Derive(fk, purposeBlobKey, ctx) != d.derive(purposeBlobKey, ctx) {
			t.Fatalf("context of %d bytes: Derive and the deriver differ", len(ctx))
		}
	}
}

func TestBlobTypeString(t *testing.T) {
	for typ, want := range map[BlobType]string{
		BlobData: "data", BlobTree: "tree", BlobVersion: "version", BlobPackHeader: "packheader", 42: "blobtype(42)",
	} {
		if typ.String() != want {
			t.Errorf("%d.String() = %q, want %q", uint8(typ), typ.String(), want)
		}
	}
}

// TestBlobCipherGolden pins the blob key derivation and AD layout: a blob
// sealed by this version must open in every later one.
func TestBlobCipherGolden(t *testing.T) {
	fk := mustKey(t, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f")
	var id ID
	copy(id[:], bytes.Repeat([]byte{0xab}, IDSize))
	sealed := mustHex(t, "26b5f2f5c3de8e263126b3b2755d68da62b5ef48595e0f89792ad45a8e22381c8f7398b8da8799a7870676134515f8")
	got, err := NewBlobCipher(fk).Open(nil, sealed, id, BlobData)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "anysync golden blob" {
		t.Fatalf("golden blob opened to %q", got)
	}
}
