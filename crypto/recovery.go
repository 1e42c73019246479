package crypto

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
)

// A printed recovery key is base32 (RFC 4648 alphabet, no padding) of
// key || checksum, where checksum is the first 3 bytes of
// SHA-256("anysync v1 recovery key\x00" || key). 35 bytes are exactly 56
// characters, printed as 14 dash-separated groups of 4. The checksum lets
// a typo be reported as a typo (all but 1 in 2^24 are caught) rather than
// as a wrong key.
const (
	recoveryChecksumSize = 3
	recoveryGroup        = 4
	recoveryChars        = (KeySize + recoveryChecksumSize) * 8 / 5
)

// ErrInvalidRecoveryKey means a recovery key was mistyped: wrong length,
// a character outside the alphabet, or a checksum mismatch.
var ErrInvalidRecoveryKey = errors.New("invalid recovery key")

func recoveryChecksum(k Key) []byte {
	h := sha256.New()
	h.Write([]byte("anysync v1 recovery key\x00"))
	h.Write(k[:])
	return h.Sum(nil)[:recoveryChecksumSize]
}

// FormatRecoveryKey returns the printable form of a recovery key, e.g.
// "ABCD-EFGH-...-WXYZ" (14 groups of 4).
func FormatRecoveryKey(k Key) string {
	raw := append(k[:], recoveryChecksum(k)...)
	s := base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(raw)
	var b strings.Builder
	for i := 0; i < len(s); i += recoveryGroup {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(s[i : i+recoveryGroup])
	}
	return b.String()
}

// ParseRecoveryKey parses a printed recovery key. Case, spaces and dashes
// do not matter, and the digits 0, 1 and 8 are read as the letters O, I
// and B they are easily mistaken for.
func ParseRecoveryKey(s string) (Key, error) {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '-' || r == ' ' || r == '\t' || r == '\n' || r == '\r':
			continue
		case r == '0':
			r = 'O'
		case r == '1':
			r = 'I'
		case r == '8':
			r = 'B'
		case r >= 'a' && r <= 'z':
			r -= 'a' - 'A'
		}
		if b.Len() >= recoveryChars {
			return Key{}, fmt.Errorf("%w: more than %d characters", ErrInvalidRecoveryKey, recoveryChars)
		}
		b.WriteRune(r)
	}
	if b.Len() != recoveryChars {
		return Key{}, fmt.Errorf("%w: %d characters, want %d", ErrInvalidRecoveryKey, b.Len(), recoveryChars)
	}
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(b.String())
	if err != nil {
		return Key{}, fmt.Errorf("%w: a character is not A-Z or 2-7", ErrInvalidRecoveryKey)
	}
	var k Key
	copy(k[:], raw[:KeySize])
	if subtle.ConstantTimeCompare(raw[KeySize:], recoveryChecksum(k)) != 1 {
		return Key{}, fmt.Errorf("%w: checksum mismatch (a typo?)", ErrInvalidRecoveryKey)
	}
	return k, nil
}
