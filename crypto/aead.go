package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"errors"
	"fmt"
)

// FormatVersion is bound into every blob's associated data, so a blob of one
// format version can never be read as another.
const FormatVersion = 1

// BlobType says what a blob holds. It is bound into the AEAD so storage cannot
// pass a data chunk off as a tree, or the reverse.
type BlobType uint8

// Blob types.
const (
	BlobData       BlobType = 1 // a file chunk
	BlobTree       BlobType = 2 // a directory
	BlobVersion    BlobType = 3 // a version (commit)
	BlobPackHeader BlobType = 4 // the trailing header of a pack
)

func (t BlobType) String() string {
	switch t {
	case BlobData:
		return "data"
	case BlobTree:
		return "tree"
	case BlobVersion:
		return "version"
	case BlobPackHeader:
		return "packheader"
	}
	return fmt.Sprintf("blobtype(%d)", uint8(t))
}

// Sizes of the AEAD framing: ciphertext = nonce || sealed(plaintext) || tag.
const (
	NonceSize = 12
	TagSize   = 16
	Overhead  = NonceSize + TagSize
)

// ErrAuth means a ciphertext failed authentication: it was corrupted,
// truncated, swapped with another blob, or sealed under another key.
var ErrAuth = errors.New("blob authentication failed")

// BlobCipher seals and opens blobs with AES-256-GCM under a per-blob key
// derived from the file key and the blob ID. Per-blob keys keep every key's
// use to one or a few messages, so random 96-bit nonces never wear a key out.
type BlobCipher struct {
	keys deriver // of the file key
}

// NewBlobCipher returns the blob AEAD of an account.
func NewBlobCipher(fileKey Key) *BlobCipher {
	return &BlobCipher{keys: newDeriver(fileKey)}
}

func (c *BlobCipher) aead(id ID, purpose string) (cipher.AEAD, error) {
	k := c.keys.derive(purpose, id[:])
	block, err := aes.NewCipher(k[:])
	if err != nil {
		return nil, fmt.Errorf("aes: %w", err)
	}
	return cipher.NewGCM(block)
}

func associatedData(id ID, t BlobType) []byte {
	ad := make([]byte, 0, IDSize+2)
	ad = append(ad, id[:]...)
	ad = append(ad, byte(t), FormatVersion)
	return ad
}

// Seal appends nonce || AES-GCM(plaintext) to dst, binding id and t.
func (c *BlobCipher) Seal(dst, plaintext []byte, id ID, t BlobType) ([]byte, error) {
	purpose := purposeBlobKey
	if t == BlobPackHeader {
		purpose = purposePackHeader
	}
	aead, err := c.aead(id, purpose)
	if err != nil {
		return nil, err
	}
	var nonce [NonceSize]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, fmt.Errorf("read nonce: %w", err)
	}
	dst = append(dst, nonce[:]...)
	return aead.Seal(dst, nonce[:], plaintext, associatedData(id, t)), nil
}

// Open authenticates and decrypts a sealed blob, appending the plaintext to
// dst. Any tampering yields ErrAuth, never wrong bytes.
func (c *BlobCipher) Open(dst, sealed []byte, id ID, t BlobType) ([]byte, error) {
	if len(sealed) < Overhead {
		return nil, fmt.Errorf("open %s blob %s: %d bytes is shorter than the AEAD overhead: %w", t, id.Short(), len(sealed), ErrAuth)
	}
	purpose := purposeBlobKey
	if t == BlobPackHeader {
		purpose = purposePackHeader
	}
	aead, err := c.aead(id, purpose)
	if err != nil {
		return nil, err
	}
	out, err := aead.Open(dst, sealed[:NonceSize], sealed[NonceSize:], associatedData(id, t))
	if err != nil {
		return nil, fmt.Errorf("open %s blob %s: %w", t, id.Short(), ErrAuth)
	}
	return out, nil
}
