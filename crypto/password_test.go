package crypto

import (
	"bytes"
	"errors"
	"testing"
)

// testParams are cheap scrypt parameters (N=1024) so tests stay fast.
func testParams(t testing.TB) ScryptParams {
	t.Helper()
	p, err := NewScryptParams()
	if err != nil {
		t.Fatal(err)
	}
	p.N = 1024
	return p
}

func TestNewScryptParamsDefaults(t *testing.T) {
	p, err := NewScryptParams()
	if err != nil {
		t.Fatal(err)
	}
	if p.N != 16384 || p.R != 8 || p.P != 1 || len(p.Salt) != 16 {
		t.Fatalf("defaults = N=%d r=%d p=%d salt=%d bytes, want 16384/8/1/16", p.N, p.R, p.P, len(p.Salt))
	}
	q, err := NewScryptParams()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(p.Salt, q.Salt) {
		t.Fatal("two NewScryptParams share a salt")
	}
	// The one test that runs scrypt at the real default cost.
	s, err := DerivePasswordSecrets([]byte("correct horse battery staple"), p)
	if err != nil {
		t.Fatal(err)
	}
	if s.WrapKey == s.LoginProof {
		t.Fatal("wrap key equals login proof")
	}
}

func TestScryptParamsValidate(t *testing.T) {
	salt := bytes.Repeat([]byte{7}, 16)
	ok := []ScryptParams{
		{N: 1024, R: 8, P: 1, Salt: salt},
		{N: 16384, R: 8, P: 1, Salt: salt},
		{N: 1 << 19, R: 8, P: 2, Salt: bytes.Repeat([]byte{1}, 64)},
		{N: 1 << 13, R: 1, P: 16, Salt: salt},
	}
	for _, p := range ok {
		if err := p.Validate(); err != nil {
			t.Errorf("Validate(N=%d r=%d p=%d salt=%d) = %v, want nil", p.N, p.R, p.P, len(p.Salt), err)
		}
	}
	bad := []ScryptParams{
		{N: 0, R: 8, P: 1, Salt: salt},
		{N: 1, R: 8, P: 1, Salt: salt},
		{N: 1000, R: 8, P: 1, Salt: salt},    // not a power of two
		{N: -1024, R: 8, P: 1, Salt: salt},   // negative
		{N: 512, R: 8, P: 1, Salt: salt},     // below the floor
		{N: 1 << 20, R: 8, P: 1, Salt: salt}, // 1 GiB
		{N: 1 << 22, R: 2, P: 1, Salt: salt}, // 1 GiB
		{N: 1 << 40, R: 8, P: 1, Salt: salt}, // absurd
		{N: 1024, R: 0, P: 1, Salt: salt},
		{N: 1024, R: -8, P: 1, Salt: salt},
		{N: 1024, R: 1 << 30, P: 1, Salt: salt},
		{N: 1024, R: 8, P: 0, Salt: salt},
		{N: 1024, R: 8, P: 17, Salt: salt},
		{N: 1 << 19, R: 8, P: 3, Salt: salt}, // too much total work
		{N: 1024, R: 8, P: 1, Salt: salt[:15]},
		{N: 1024, R: 8, P: 1, Salt: bytes.Repeat([]byte{1}, 65)},
		{N: 1024, R: 8, P: 1},
	}
	for _, p := range bad {
		err := p.Validate()
		if !errors.Is(err, ErrBadScryptParams) {
			t.Errorf("Validate(N=%d r=%d p=%d salt=%d) = %v, want ErrBadScryptParams", p.N, p.R, p.P, len(p.Salt), err)
		}
		if _, err := DerivePasswordSecrets([]byte("pw"), p); !errors.Is(err, ErrBadScryptParams) {
			t.Errorf("DerivePasswordSecrets with N=%d r=%d p=%d = %v, want ErrBadScryptParams", p.N, p.R, p.P, err)
		}
	}
}

func TestDerivePasswordSecrets(t *testing.T) {
	p := testParams(t)
	a, err := DerivePasswordSecrets([]byte("hunter2"), p)
	if err != nil {
		t.Fatal(err)
	}
	b, err := DerivePasswordSecrets([]byte("hunter2"), p)
	if err != nil {
		t.Fatal(err)
	}
	if *a != *b {
		t.Fatal("same password and params gave different secrets")
	}
	if a.WrapKey == a.LoginProof {
		t.Fatal("wrap key equals login proof")
	}
	c, err := DerivePasswordSecrets([]byte("hunter3"), p)
	if err != nil {
		t.Fatal(err)
	}
	if c.WrapKey == a.WrapKey || c.LoginProof == a.LoginProof {
		t.Fatal("different passwords gave equal secrets")
	}
	q := p
	q.Salt = append([]byte(nil), p.Salt...)
	q.Salt[0] ^= 1
	d, err := DerivePasswordSecrets([]byte("hunter2"), q)
	if err != nil {
		t.Fatal(err)
	}
	if d.WrapKey == a.WrapKey || d.LoginProof == a.LoginProof {
		t.Fatal("different salts gave equal secrets")
	}
	if _, err := DerivePasswordSecrets(nil, p); !errors.Is(err, ErrEmptyPassword) {
		t.Fatalf("empty password: err = %v, want ErrEmptyPassword", err)
	}
}

// TestPasswordSecretsGolden pins the derivation (scrypt, HKDF labels), which
// is part of the on-disk and on-wire format: a change breaks every account.
func TestPasswordSecretsGolden(t *testing.T) {
	p := ScryptParams{N: 1024, R: 8, P: 1, Salt: []byte("0123456789abcdef")}
	s, err := DerivePasswordSecrets([]byte("correct horse battery staple"), p)
	if err != nil {
		t.Fatal(err)
	}
	wantWrap := mustKey(t, "732f4fe0736697eec91996870560017ad481c7168dee14c16054dee1dbc965f4")
	wantProof := mustKey(t, "20ff3a481cbbf575072f6a7e109e8fc40b598cf0c503d6645b0f9c8cc6f49f5e")
	if s.WrapKey != wantWrap {
		t.Errorf("wrap key = %x, want %x", s.WrapKey, wantWrap)
	}
	if s.LoginProof != wantProof {
		t.Errorf("login proof = %x, want %x", s.LoginProof, wantProof)
	}
}
