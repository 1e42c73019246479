package crypto

import (
	"encoding/hex"
	"testing"
)

// mustKey parses a 64-digit hex key.
func mustKey(t testing.TB, s string) Key {
	t.Helper()
	var k Key
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != KeySize {
		t.Fatalf("bad test key %q: %v", s, err)
	}
	copy(k[:], b)
	return k
}

func randKey(t testing.TB) Key {
	t.Helper()
	k, err := NewRandomKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newTestKeys(t testing.TB) *AccountKeys {
	t.Helper()
	k, err := NewAccountKeys()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// sealTestMaster seals fresh keys under password with cheap parameters.
func sealTestMaster(t testing.TB, password string) (*AccountKeys, []byte) {
	t.Helper()
	keys := newTestKeys(t)
	file, err := SealMasterKeys(keys, []byte(password), testParams(t))
	if err != nil {
		t.Fatal(err)
	}
	return keys, file
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad test hex %q: %v", s, err)
	}
	return b
}
