package crypto

import (
	"crypto/ecdh"
	"errors"
	"fmt"
)

// AccountKeys are the long-lived secrets of an account: everything
// master.keys protects. FileKey and AuthKey root the blob key hierarchy,
// Box is the account's NaCl key pair, and Recovery unwraps master.keys
// without the password.
type AccountKeys struct {
	FileKey, AuthKey Key
	Box              BoxKeyPair
	Recovery         Key
}

// NewAccountKeys generates a fresh, fully random key set for sign-up.
func NewAccountKeys() (*AccountKeys, error) {
	var k AccountKeys
	var err error
	if k.FileKey, err = NewRandomKey(); err != nil {
		return nil, fmt.Errorf("new file key: %w", err)
	}
	if k.AuthKey, err = NewRandomKey(); err != nil {
		return nil, fmt.Errorf("new auth key: %w", err)
	}
	if k.Recovery, err = NewRandomKey(); err != nil {
		return nil, fmt.Errorf("new recovery key: %w", err)
	}
	box, err := NewBoxKeyPair()
	if err != nil {
		return nil, err
	}
	k.Box = *box
	return &k, nil
}

// errInvalidKeys is wrapped by every AccountKeys validation failure.
var errInvalidKeys = errors.New("invalid account keys")

// validate rejects all-zero keys (an uninitialised struct, never a real
// key) and a box public key that does not belong to its private key.
func (k *AccountKeys) validate() error {
	var zero Key
	switch {
	case k.FileKey == zero:
		return fmt.Errorf("%w: file key is zero", errInvalidKeys)
	case k.AuthKey == zero:
		return fmt.Errorf("%w: auth key is zero", errInvalidKeys)
	case k.Recovery == zero:
		return fmt.Errorf("%w: recovery key is zero", errInvalidKeys)
	case k.Box.Private == zero:
		return fmt.Errorf("%w: box private key is zero", errInvalidKeys)
	}
	pub, err := boxPublicKey(&k.Box.Private)
	if err != nil {
		return fmt.Errorf("%w: %w", errInvalidKeys, err)
	}
	if pub != k.Box.Public {
		return fmt.Errorf("%w: box public key does not match its private key", errInvalidKeys)
	}
	return nil
}

// boxPublicKey computes the X25519 public key of a box private key, so key
// files store only the private half and can never hold a mismatched pair.
func boxPublicKey(priv *[32]byte) ([32]byte, error) {
	sk, err := ecdh.X25519().NewPrivateKey(priv[:])
	if err != nil {
		return [32]byte{}, fmt.Errorf("box private key: %w", err)
	}
	var pub [32]byte
	copy(pub[:], sk.PublicKey().Bytes())
	return pub, nil
}

// accountPayloadSize is the size of the serialised key set.
const accountPayloadSize = 4 * KeySize

// marshal returns FileKey || AuthKey || Box.Private || Recovery.
func (k *AccountKeys) marshal() []byte {
	b := make([]byte, 0, accountPayloadSize)
	b = append(b, k.FileKey[:]...)
	b = append(b, k.AuthKey[:]...)
	b = append(b, k.Box.Private[:]...)
	b = append(b, k.Recovery[:]...)
	return b
}

// unmarshalAccountKeys is the inverse of marshal; it recomputes the box
// public key and validates the result.
func unmarshalAccountKeys(b []byte) (*AccountKeys, error) {
	if len(b) != accountPayloadSize {
		return nil, fmt.Errorf("%w: key payload of %d bytes, want %d", errInvalidKeys, len(b), accountPayloadSize)
	}
	var k AccountKeys
	copy(k.FileKey[:], b[0:32])
	copy(k.AuthKey[:], b[32:64])
	copy(k.Box.Private[:], b[64:96])
	copy(k.Recovery[:], b[96:128])
	pub, err := boxPublicKey(&k.Box.Private)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errInvalidKeys, err)
	}
	k.Box.Public = pub
	if err := k.validate(); err != nil {
		return nil, err
	}
	return &k, nil
}
