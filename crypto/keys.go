package crypto

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"sync"
)

// KeySize is the size of every symmetric key in AnySync.
const KeySize = 32

// Key is a 256-bit symmetric key.
type Key [KeySize]byte

// NewRandomKey returns a key from the system CSPRNG.
func NewRandomKey() (Key, error) {
	var k Key
	if _, err := rand.Read(k[:]); err != nil {
		return Key{}, fmt.Errorf("read random key: %w", err)
	}
	return k, nil
}

// Purpose labels for HKDF subkeys. Changing one changes every derived key of
// that kind, so they are part of the format (docs/format.md).
const (
	purposeBlobKey    = "anysync v1 blob key"
	purposeBlobID     = "anysync v1 blob id"
	purposeGearTable  = "anysync v1 chunker gear"
	purposePackHeader = "anysync v1 pack header"

	purposePasswordWrap = "anysync v1 master.keys password wrap"
	purposeLoginProof   = "anysync v1 login proof"
	purposeRecoveryWrap = "anysync v1 master.keys recovery wrap"
)

// Derive returns HKDF-SHA256(key, info=purpose||context) as a new key.
func Derive(key Key, purpose string, context []byte) Key {
	return newDeriver(key).derive(purpose, context)
}

// deriver derives many subkeys of one key: HKDF's extract step (PRK =
// HMAC(zero salt, key)) depends only on the key, so it runs once. For a
// 32-byte key, expand is one HMAC under PRK: T(1) = HMAC(PRK, info || 1).
// The keyed HMAC states are recycled, so a subkey costs two SHA-256 blocks
// and no allocation. Same output as Derive.
type deriver struct {
	prk  []byte
	macs *sync.Pool // of *keyedMAC
}

type keyedMAC struct {
	h   hash.Hash // HMAC-SHA256 keyed with PRK
	buf []byte
}

func newDeriver(key Key) deriver {
	prk, err := hkdf.Extract(sha256.New, key[:], nil)
	if err != nil {
		panic("hkdf extract: " + err.Error()) // never fails for SHA-256
	}
	return deriver{prk: prk, macs: &sync.Pool{New: func() any {
		return &keyedMAC{h: hmac.New(sha256.New, prk), buf: make([]byte, 0, 128)}
	}}}
}

func (d deriver) derive(purpose string, context []byte) Key {
	m := d.macs.Get().(*keyedMAC)
	m.h.Reset()
	info := append(m.buf[:0], purpose...)
	info = append(info, 0)
	info = append(info, context...)
	info = append(info, 1) // HKDF-Expand's block counter: one block of output
	m.h.Write(info)
	var k Key
	m.h.Sum(k[:0])
	m.buf = info[:0]
	d.macs.Put(m)
	return k
}

// IDSize is the size of a blob ID.
const IDSize = 32

// ID names a blob: the keyed hash of its plaintext.
type ID [IDSize]byte

// String returns the ID in lowercase hex.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// Short returns the first 8 hex digits, for logs and messages.
func (id ID) Short() string { return hex.EncodeToString(id[:4]) }

// IsZero reports whether the ID is all zero (no blob).
func (id ID) IsZero() bool { return id == ID{} }

// ParseID parses a 64-digit hex blob ID.
func ParseID(s string) (ID, error) {
	var id ID
	if len(s) != 2*IDSize {
		return id, fmt.Errorf("parse blob id %q: want %d hex digits", s, 2*IDSize)
	}
	if _, err := hex.Decode(id[:], []byte(s)); err != nil {
		return id, fmt.Errorf("parse blob id %q: %w", s, err)
	}
	return id, nil
}
