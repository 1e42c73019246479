package crypto

import (
	"crypto/rand"
	"errors"
	"fmt"
	"math/bits"

	"golang.org/x/crypto/scrypt"
)

// Default scrypt cost (brief §3). They are stored beside the salt in
// master.keys, so they can be raised later without breaking old files.
const (
	DefaultScryptN = 1 << 14
	DefaultScryptR = 8
	DefaultScryptP = 1
	ScryptSaltSize = 16
)

// Bounds on scrypt parameters read from a file or sent by a server. scrypt
// allocates 128*N*r bytes, so an unbounded N or r in a hostile master.keys
// (or login reply) would make us allocate gigabytes; an N*r below the floor
// would let a hostile server collect a login proof that is cheap to brute
// force. The floor is 16 times below the default so tests can run fast.
const (
	minScryptNR   = 1 << 13 // N=1024, r=8
	maxScryptNR   = 1 << 22 // 512 MiB of scrypt memory
	maxScryptNRP  = 1 << 23 // at most twice the work of the largest memory setting
	maxScryptP    = 16
	minScryptSalt = 16
	maxScryptSalt = 64
)

// ErrBadScryptParams means scrypt parameters are out of the accepted range.
var ErrBadScryptParams = errors.New("invalid scrypt parameters")

// ErrEmptyPassword means a password was empty.
var ErrEmptyPassword = errors.New("empty password")

// ScryptParams are the password hashing parameters of an account. The
// derived key length is fixed at KeySize.
type ScryptParams struct {
	N, R, P int
	Salt    []byte
}

// NewScryptParams returns the default cost with a fresh random salt.
func NewScryptParams() (ScryptParams, error) {
	salt := make([]byte, ScryptSaltSize)
	if _, err := rand.Read(salt); err != nil {
		return ScryptParams{}, fmt.Errorf("read scrypt salt: %w", err)
	}
	return ScryptParams{N: DefaultScryptN, R: DefaultScryptR, P: DefaultScryptP, Salt: salt}, nil
}

// Validate checks that p is safe to run: N a power of two, memory and work
// bounded, salt 16 to 64 bytes. Errors match ErrBadScryptParams.
func (p ScryptParams) Validate() error {
	switch {
	case p.N < 2 || bits.OnesCount(uint(p.N)) != 1:
		return fmt.Errorf("%w: N=%d is not a power of two", ErrBadScryptParams, p.N)
	case p.N > maxScryptNR:
		return fmt.Errorf("%w: N=%d", ErrBadScryptParams, p.N)
	case p.R < 1 || p.R > maxScryptNR:
		return fmt.Errorf("%w: r=%d", ErrBadScryptParams, p.R)
	case p.P < 1 || p.P > maxScryptP:
		return fmt.Errorf("%w: p=%d, want 1..%d", ErrBadScryptParams, p.P, maxScryptP)
	}
	// N and R are each at most 2^22 here, so these products cannot overflow.
	nr := uint64(p.N) * uint64(p.R)
	switch {
	case nr < minScryptNR:
		return fmt.Errorf("%w: N*r=%d is below the minimum %d", ErrBadScryptParams, nr, minScryptNR)
	case nr > maxScryptNR:
		return fmt.Errorf("%w: N*r=%d needs more than %d MiB", ErrBadScryptParams, nr, maxScryptNR*128>>20)
	case nr*uint64(p.P) > maxScryptNRP:
		return fmt.Errorf("%w: N*r*p=%d exceeds %d", ErrBadScryptParams, nr*uint64(p.P), maxScryptNRP)
	case len(p.Salt) < minScryptSalt || len(p.Salt) > maxScryptSalt:
		return fmt.Errorf("%w: salt of %d bytes, want %d..%d", ErrBadScryptParams, len(p.Salt), minScryptSalt, maxScryptSalt)
	}
	return nil
}

// PasswordSecrets are the two independent keys a password yields. WrapKey
// never leaves the client; LoginProof is what the client sends to log in,
// and the server keeps only ProofVerifier(LoginProof[:]). Knowing the proof
// (or the verifier) reveals nothing about WrapKey.
type PasswordSecrets struct {
	WrapKey    Key
	LoginProof Key
}

// DerivePasswordSecrets runs scrypt once and splits its output with HKDF.
func DerivePasswordSecrets(password []byte, p ScryptParams) (*PasswordSecrets, error) {
	if len(password) == 0 {
		return nil, ErrEmptyPassword
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	out, err := scrypt.Key(password, p.Salt, p.N, p.R, p.P, KeySize)
	if err != nil {
		return nil, fmt.Errorf("scrypt: %w", err)
	}
	var root Key
	copy(root[:], out)
	return &PasswordSecrets{
		WrapKey:    Derive(root, purposePasswordWrap, nil),
		LoginProof: Derive(root, purposeLoginProof, nil),
	}, nil
}
