package crypto

import (
	"crypto/rand"
	"errors"
	"fmt"

	"golang.org/x/crypto/nacl/box"
)

// BoxKeyPair is a NaCl box (X25519 + XSalsa20-Poly1305) key pair.
type BoxKeyPair struct {
	Public  [32]byte
	Private [32]byte
}

// NewBoxKeyPair generates a fresh box key pair.
func NewBoxKeyPair() (*BoxKeyPair, error) {
	pub, priv, err := box.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate box key: %w", err)
	}
	return &BoxKeyPair{Public: *pub, Private: *priv}, nil
}

// SealToken seals msg anonymously to a box public key: only the holder of the
// private key can open it. The server uses it to hand a device its token.
func SealToken(msg []byte, recipient *[32]byte) ([]byte, error) {
	out, err := box.SealAnonymous(nil, msg, recipient, rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("seal token: %w", err)
	}
	return out, nil
}

// ErrBoxOpen means a sealed box did not open with this key pair.
var ErrBoxOpen = errors.New("sealed box did not open: wrong key or tampered message")

// OpenToken opens a message sealed by SealToken.
func OpenToken(sealed []byte, kp *BoxKeyPair) ([]byte, error) {
	out, ok := box.OpenAnonymous(nil, sealed, &kp.Public, &kp.Private)
	if !ok {
		return nil, ErrBoxOpen
	}
	return out, nil
}
