package crypto

import (
	"crypto/sha256"
	"crypto/subtle"
)

// ProofVerifier is what the server stores in place of a login proof. The
// proof is already the output of scrypt and HKDF, so a fast hash suffices:
// a stolen verifier cannot be turned back into a proof, and guessing
// passwords against it costs a full scrypt per guess.
func ProofVerifier(proof []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte("anysync v1 proof verifier\x00"))
	h.Write(proof)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// TokenHash is what the server stores in place of a device access token.
func TokenHash(token []byte) [32]byte {
	h := sha256.New()
	h.Write([]byte("anysync v1 token\x00"))
	h.Write(token)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Equal compares two secrets in constant time.
func Equal(a, b []byte) bool { return subtle.ConstantTimeCompare(a, b) == 1 }
