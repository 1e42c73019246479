package crypto

import (
	"bytes"
	"errors"
	"testing"
)

// Seed corpora live in testdata/fuzz/FuzzXxx (valid files, truncations,
// bit flips, hostile parameters), so plain `go test` replays them.

// maxFuzzScryptNR keeps fuzzing fast: inputs asking for more scrypt memory
// than this are checked for structure only.
const maxFuzzScryptNR = 1 << 14

func FuzzParseMasterKeysParams(f *testing.F) {
	f.Fuzz(func(t *testing.T, file []byte) {
		p, err := ParseMasterKeysParams(file)
		if err != nil {
			if !errors.Is(err, ErrMalformedKeys) {
				t.Fatalf("error %v does not match ErrMalformedKeys", err)
			}
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("parsed invalid params: %v", err)
		}
		if h := encodeMasterHeader(p); !bytes.HasPrefix(file, h) {
			t.Fatalf("params do not re-encode to the file's header")
		}
		if len(file) != len(encodeMasterHeader(p))+2*masterWrapSize {
			t.Fatalf("accepted a file of %d bytes", len(file))
		}
	})
}

func FuzzOpenMasterKeys(f *testing.F) {
	f.Fuzz(func(t *testing.T, file, password []byte) {
		p, err := ParseMasterKeysParams(file)
		if err != nil || p.N*p.R > maxFuzzScryptNR {
			return
		}
		keys, secrets, err := OpenMasterKeys(file, password)
		if err != nil {
			if keys != nil || secrets != nil {
				t.Fatal("returned keys with an error")
			}
			if !errors.Is(err, ErrWrongPassword) && !errors.Is(err, ErrMalformedKeys) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if err := keys.validate(); err != nil {
			t.Fatalf("opened invalid keys: %v", err)
		}
		// Whatever opens must also open with its own recovery key.
		rec, err := OpenMasterKeysWithRecovery(file, FormatRecoveryKey(keys.Recovery))
		if err != nil || *rec != *keys {
			t.Fatalf("opened with the password but not with the recovery key: %v", err)
		}
	})
}

func FuzzOpenMasterKeysWithRecovery(f *testing.F) {
	f.Fuzz(func(t *testing.T, file []byte, recovery string) {
		keys, err := OpenMasterKeysWithRecovery(file, recovery)
		if err != nil {
			if keys != nil {
				t.Fatal("returned keys with an error")
			}
			if !errors.Is(err, ErrWrongRecoveryKey) && !errors.Is(err, ErrMalformedKeys) && !errors.Is(err, ErrInvalidRecoveryKey) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if err := keys.validate(); err != nil {
			t.Fatalf("opened invalid keys: %v", err)
		}
	})
}

func FuzzParseRecoveryKey(f *testing.F) {
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseRecoveryKey(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidRecoveryKey) {
				t.Fatalf("error %v does not match ErrInvalidRecoveryKey", err)
			}
			return
		}
		back, err := ParseRecoveryKey(FormatRecoveryKey(k))
		if err != nil || back != k {
			t.Fatalf("format/parse round trip failed: %v", err)
		}
	})
}

func FuzzDecodeAccessKeys(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		a, err := decodeAccessKeys(data)
		if err != nil {
			if !errors.Is(err, ErrMalformedKeys) {
				t.Fatalf("error %v does not match ErrMalformedKeys", err)
			}
			return
		}
		enc, err := encodeAccessKeys(a)
		if err != nil {
			t.Fatalf("decoded keys do not encode: %v", err)
		}
		b, err := decodeAccessKeys(enc)
		if err != nil || !equalAccessKeys(a, b) {
			t.Fatalf("re-encoding changed the keys: %v", err)
		}
	})
}

// fuzzFileKey is the file key the BlobCipher seeds were sealed under.
var fuzzFileKey = Key{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
	17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32}

func FuzzBlobCipherOpen(f *testing.F) {
	c := NewBlobCipher(fuzzFileKey)
	f.Fuzz(func(t *testing.T, sealed, idBytes []byte, typ byte) {
		var id ID
		copy(id[:], idBytes)
		pt, err := c.Open(nil, sealed, id, BlobType(typ))
		if err != nil {
			if pt != nil || !errors.Is(err, ErrAuth) {
				t.Fatalf("Open: %v (plaintext %d bytes)", err, len(pt))
			}
			return
		}
		if len(pt) != len(sealed)-Overhead {
			t.Fatalf("opened %d bytes from %d sealed", len(pt), len(sealed))
		}
		// Only a genuine seal opens: flipping its last bit must fail.
		bad := bytes.Clone(sealed)
		bad[len(bad)-1] ^= 1
		if _, err := c.Open(nil, bad, id, BlobType(typ)); !errors.Is(err, ErrAuth) {
			t.Fatalf("a modified blob opened: %v", err)
		}
	})
}
