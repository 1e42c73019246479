package crypto

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var updateGolden = flag.Bool("update", false, "rewrite testdata golden files")

func TestMasterKeysRoundTrip(t *testing.T) {
	keys, file := sealTestMaster(t, "hunter2")
	got, secrets, err := OpenMasterKeys(file, []byte("hunter2"))
	if err != nil {
		t.Fatal(err)
	}
	if *got != *keys {
		t.Fatal("opened keys differ from sealed keys")
	}
	p, err := ParseMasterKeysParams(file)
	if err != nil {
		t.Fatal(err)
	}
	want, err := DerivePasswordSecrets([]byte("hunter2"), p)
	if err != nil {
		t.Fatal(err)
	}
	if *secrets != *want {
		t.Fatal("OpenMasterKeys returned other secrets than DerivePasswordSecrets")
	}
	if p.N != 1024 || p.R != 8 || p.P != 1 || len(p.Salt) != 16 {
		t.Fatalf("params = %+v", p)
	}
	if len(file) != masterFixedHeader+16+2*masterWrapSize {
		t.Fatalf("file is %d bytes", len(file))
	}
	// Sealing twice gives different files (fresh nonces), both valid.
	again, err := SealMasterKeys(keys, []byte("hunter2"), p)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(again, file) {
		t.Fatal("two seals produced identical files")
	}
	// The file must not contain any key in the clear.
	for _, k := range [][]byte{keys.FileKey[:], keys.AuthKey[:], keys.Box.Private[:], keys.Recovery[:]} {
		if bytes.Contains(file, k) {
			t.Fatal("master.keys contains a key in the clear")
		}
	}
}

func TestMasterKeysWrongPassword(t *testing.T) {
	_, file := sealTestMaster(t, "hunter2")
	for _, pw := range []string{"hunter3", "Hunter2", "hunter2 ", "", "h"} {
		keys, secrets, err := OpenMasterKeys(file, []byte(pw))
		if !errors.Is(err, ErrWrongPassword) {
			t.Fatalf("password %q: err = %v, want ErrWrongPassword", pw, err)
		}
		if keys != nil || secrets != nil {
			t.Fatalf("password %q: returned keys with an error", pw)
		}
	}
	if ErrWrongPassword.Error() != "wrong password" {
		t.Fatalf("ErrWrongPassword says %q", ErrWrongPassword)
	}
}

func TestSealMasterKeysRejects(t *testing.T) {
	keys := newTestKeys(t)
	if _, err := SealMasterKeys(keys, nil, testParams(t)); !errors.Is(err, ErrEmptyPassword) {
		t.Errorf("empty password: err = %v", err)
	}
	bad := testParams(t)
	bad.N = 1000
	if _, err := SealMasterKeys(keys, []byte("pw"), bad); !errors.Is(err, ErrBadScryptParams) {
		t.Errorf("bad params: err = %v", err)
	}
	zero := *keys
	zero.AuthKey = Key{}
	if _, err := SealMasterKeys(&zero, []byte("pw"), testParams(t)); err == nil {
		t.Error("sealed an all-zero auth key")
	}
	mismatch := *keys
	mismatch.Box.Public[0] ^= 1
	if _, err := SealMasterKeys(&mismatch, []byte("pw"), testParams(t)); err == nil {
		t.Error("sealed a box key pair whose halves do not match")
	}
}

// TestMasterKeysBitFlips flips one bit in every byte: every result must be
// an error (never keys), and flips in the structure must be ErrMalformedKeys
// or ErrWrongPassword, nothing else.
func TestMasterKeysBitFlips(t *testing.T) {
	_, file := sealTestMaster(t, "hunter2")
	for i := range file {
		bad := bytes.Clone(file)
		bad[i] ^= 1 << (i % 8)
		keys, secrets, err := OpenMasterKeys(bad, []byte("hunter2"))
		if err == nil || keys != nil || secrets != nil {
			t.Fatalf("flip at byte %d: opened (err=%v)", i, err)
		}
		if !errors.Is(err, ErrWrongPassword) && !errors.Is(err, ErrMalformedKeys) {
			t.Fatalf("flip at byte %d: err = %v, want wrong password or malformed", i, err)
		}
	}
}

// TestMasterKeysRecoveryBitFlips does the same for the recovery path.
func TestMasterKeysRecoveryBitFlips(t *testing.T) {
	keys, file := sealTestMaster(t, "hunter2")
	rk := FormatRecoveryKey(keys.Recovery)
	for i := range file {
		bad := bytes.Clone(file)
		bad[i] ^= 0x80 >> (i % 8)
		got, err := OpenMasterKeysWithRecovery(bad, rk)
		if err == nil || got != nil {
			t.Fatalf("flip at byte %d: opened with the recovery key", i)
		}
		if !errors.Is(err, ErrWrongRecoveryKey) && !errors.Is(err, ErrMalformedKeys) {
			t.Fatalf("flip at byte %d: err = %v", i, err)
		}
	}
}

func TestMasterKeysTruncatedAndExtended(t *testing.T) {
	_, file := sealTestMaster(t, "hunter2")
	for n := 0; n < len(file); n++ {
		if _, err := ParseMasterKeysParams(file[:n]); !errors.Is(err, ErrMalformedKeys) {
			t.Fatalf("params of %d-byte prefix: err = %v", n, err)
		}
		if _, _, err := OpenMasterKeys(file[:n], []byte("hunter2")); !errors.Is(err, ErrMalformedKeys) {
			t.Fatalf("open %d-byte prefix: err = %v", n, err)
		}
	}
	long := append(bytes.Clone(file), 0)
	if _, _, err := OpenMasterKeys(long, []byte("hunter2")); !errors.Is(err, ErrMalformedKeys) {
		t.Fatalf("open with a trailing byte: err = %v", err)
	}
}

func TestMasterKeysHeaderChecks(t *testing.T) {
	_, file := sealTestMaster(t, "hunter2")
	cases := map[string]func([]byte){
		"magic":      func(b []byte) { b[0] = 'X' },
		"version":    func(b []byte) { b[4] = 2 },
		"logN zero":  func(b []byte) { b[5] = 0 },
		"logN huge":  func(b []byte) { b[5] = 200 },
		"logN 1GiB":  func(b []byte) { b[5] = 20 },
		"r zero":     func(b []byte) { b[9] = 0 },
		"r huge":     func(b []byte) { b[6] = 0xff },
		"p zero":     func(b []byte) { b[13] = 0 },
		"p huge":     func(b []byte) { b[13] = 200 },
		"salt short": func(b []byte) { b[14] = 15 },
		"salt long":  func(b []byte) { b[14] = 200 },
	}
	for name, mutate := range cases {
		bad := bytes.Clone(file)
		mutate(bad)
		_, err := ParseMasterKeysParams(bad)
		if !errors.Is(err, ErrMalformedKeys) {
			t.Errorf("%s: err = %v, want ErrMalformedKeys", name, err)
		}
	}
	_, err := ParseMasterKeysParams([]byte("ASMK\x02"))
	if !errors.Is(err, ErrMalformedKeys) {
		t.Fatalf("short: %v", err)
	}
}

// TestMasterKeysWrapsNotInterchangeable swaps the two wraps: the password
// wrap must not open as the recovery wrap or the reverse.
func TestMasterKeysWrapsNotInterchangeable(t *testing.T) {
	keys, file := sealTestMaster(t, "hunter2")
	h := len(file) - 2*masterWrapSize
	swapped := bytes.Clone(file[:h])
	swapped = append(swapped, file[h+masterWrapSize:]...)
	swapped = append(swapped, file[h:h+masterWrapSize]...)
	if _, _, err := OpenMasterKeys(swapped, []byte("hunter2")); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("swapped wraps, password: err = %v", err)
	}
	if _, err := OpenMasterKeysWithRecovery(swapped, FormatRecoveryKey(keys.Recovery)); !errors.Is(err, ErrWrongRecoveryKey) {
		t.Fatalf("swapped wraps, recovery: err = %v", err)
	}
	// A wrap moved onto another file's header (same password) must fail.
	_, other := sealTestMaster(t, "hunter2")
	mixed := append(bytes.Clone(other[:h]), file[h:]...)
	if _, _, err := OpenMasterKeys(mixed, []byte("hunter2")); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("wrap on another header: err = %v", err)
	}
}

func TestRewrapMasterKeys(t *testing.T) {
	keys, file := sealTestMaster(t, "old password")
	oldParams, err := ParseMasterKeysParams(file)
	if err != nil {
		t.Fatal(err)
	}
	newFile, secrets, err := RewrapMasterKeys(file, []byte("old password"), []byte("new password"))
	if err != nil {
		t.Fatal(err)
	}
	got, s2, err := OpenMasterKeys(newFile, []byte("new password"))
	if err != nil {
		t.Fatal(err)
	}
	if *got != *keys {
		t.Fatal("rewrap changed the keys")
	}
	if *s2 != *secrets {
		t.Fatal("RewrapMasterKeys returned other secrets than the new file yields")
	}
	if _, _, err := OpenMasterKeys(newFile, []byte("old password")); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("old password on the new file: err = %v", err)
	}
	newParams, err := ParseMasterKeysParams(newFile)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(newParams.Salt, oldParams.Salt) {
		t.Fatal("rewrap kept the salt")
	}
	if newParams.N != oldParams.N || newParams.R != oldParams.R || newParams.P != oldParams.P {
		t.Fatalf("rewrap changed the cost: %+v -> %+v", oldParams, newParams)
	}
	oldSecrets, err := DerivePasswordSecrets([]byte("old password"), oldParams)
	if err != nil {
		t.Fatal(err)
	}
	if oldSecrets.LoginProof == secrets.LoginProof {
		t.Fatal("login proof unchanged by a password change")
	}
	rec, err := OpenMasterKeysWithRecovery(newFile, FormatRecoveryKey(keys.Recovery))
	if err != nil {
		t.Fatalf("recovery after rewrap: %v", err)
	}
	if *rec != *keys {
		t.Fatal("recovery after rewrap gave other keys")
	}
	if _, _, err := RewrapMasterKeys(file, []byte("wrong"), []byte("new")); !errors.Is(err, ErrWrongPassword) {
		t.Fatalf("rewrap with the wrong old password: err = %v", err)
	}
	if _, _, err := RewrapMasterKeys(file, []byte("old password"), nil); !errors.Is(err, ErrEmptyPassword) {
		t.Fatalf("rewrap to an empty password: err = %v", err)
	}
}

func TestMasterKeysRecovery(t *testing.T) {
	keys, file := sealTestMaster(t, "hunter2")
	printed := FormatRecoveryKey(keys.Recovery)
	for _, form := range []string{
		printed,
		strings.ToLower(printed),
		strings.ReplaceAll(printed, "-", " "),
		strings.ReplaceAll(printed, "-", ""),
		"  " + printed + "\n",
	} {
		got, err := OpenMasterKeysWithRecovery(file, form)
		if err != nil {
			t.Fatalf("recovery with %q: %v", form, err)
		}
		if *got != *keys {
			t.Fatal("recovery gave other keys")
		}
	}
	// A well-formed but different recovery key does not open it.
	other := FormatRecoveryKey(randKey(t))
	if _, err := OpenMasterKeysWithRecovery(file, other); !errors.Is(err, ErrWrongRecoveryKey) {
		t.Fatalf("other recovery key: err = %v", err)
	}
	// A typo is reported as a typo.
	typo := []byte(printed)
	if typo[0] == 'A' {
		typo[0] = 'B'
	} else {
		typo[0] = 'A'
	}
	if _, err := OpenMasterKeysWithRecovery(file, string(typo)); !errors.Is(err, ErrInvalidRecoveryKey) {
		t.Fatalf("typo: err = %v", err)
	}
	// After recovery the user sets a new password.
	rec, err := OpenMasterKeysWithRecovery(file, printed)
	if err != nil {
		t.Fatal(err)
	}
	newFile, err := SealMasterKeys(rec, []byte("new"), testParams(t))
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := OpenMasterKeys(newFile, []byte("new")); err != nil || *got != *keys {
		t.Fatalf("open after recovery reseal: %v", err)
	}
}

// goldenKeys are the fixed keys inside testdata/master.keys.golden, sealed
// under goldenPassword. The file pins the master.keys format: if this test
// fails, the format changed and every existing account would break.
const goldenPassword = "correct horse battery staple"

func goldenKeys(t testing.TB) *AccountKeys {
	t.Helper()
	k := &AccountKeys{
		FileKey:  mustKey(t, "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"),
		AuthKey:  mustKey(t, "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f"),
		Recovery: mustKey(t, "606162636465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f"),
	}
	k.Box.Private = mustKey(t, "404142434445464748494a4b4c4d4e4f505152535455565758595a5b5c5d5e5f")
	pub, err := boxPublicKey(&k.Box.Private)
	if err != nil {
		t.Fatal(err)
	}
	k.Box.Public = pub
	return k
}

func TestMasterKeysGolden(t *testing.T) {
	path := filepath.Join("testdata", "master.keys.golden")
	want := goldenKeys(t)
	if *updateGolden {
		p := ScryptParams{N: 1024, R: 8, P: 1, Salt: []byte("anysync-golden-s")}
		file, err := SealMasterKeys(want, []byte(goldenPassword), p)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, file, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	file, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := OpenMasterKeys(file, []byte(goldenPassword))
	if err != nil {
		t.Fatal(err)
	}
	if *got != *want {
		t.Fatal("golden master.keys opened to other keys")
	}
	rec, err := OpenMasterKeysWithRecovery(file, FormatRecoveryKey(want.Recovery))
	if err != nil {
		t.Fatal(err)
	}
	if *rec != *want {
		t.Fatal("golden master.keys recovery gave other keys")
	}
}

// TestMasterKeysWrapsMustAgree crafts a file whose two wraps are genuine
// but hold different key sets (only a buggy or hostile writer could make
// one): opening with the password must refuse it.
func TestMasterKeysWrapsMustAgree(t *testing.T) {
	a := newTestKeys(t)
	b := newTestKeys(t)
	b.Recovery = a.Recovery
	p := testParams(t)
	s, err := DerivePasswordSecrets([]byte("pw"), p)
	if err != nil {
		t.Fatal(err)
	}
	header := encodeMasterHeader(p)
	file, err := sealWrap(bytes.Clone(header), s.WrapKey, a.marshal(), wrapAD(header, nil, wrapIDPassword))
	if err != nil {
		t.Fatal(err)
	}
	file, err = sealWrap(file, recoveryWrapKey(a.Recovery), b.marshal(), wrapAD(header, file[len(header):], wrapIDRecovery))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := OpenMasterKeys(file, []byte("pw")); !errors.Is(err, ErrMalformedKeys) {
		t.Fatalf("err = %v, want ErrMalformedKeys", err)
	}
	// A recovery wrap holding another recovery key than the one that
	// opens it is refused too.
	c := newTestKeys(t)
	file2, err := sealWrap(bytes.Clone(header), s.WrapKey, a.marshal(), wrapAD(header, nil, wrapIDPassword))
	if err != nil {
		t.Fatal(err)
	}
	file2, err = sealWrap(file2, recoveryWrapKey(a.Recovery), c.marshal(), wrapAD(header, file2[len(header):], wrapIDRecovery))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenMasterKeysWithRecovery(file2, FormatRecoveryKey(a.Recovery)); !errors.Is(err, ErrMalformedKeys) {
		t.Fatalf("recovery: err = %v, want ErrMalformedKeys", err)
	}
}
