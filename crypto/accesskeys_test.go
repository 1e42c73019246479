package crypto

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func testAccessKeys(t testing.TB) *AccessKeys {
	t.Helper()
	return &AccessKeys{
		Server:      "sync.example.org:7443",
		Fingerprint: "sha256:3f1c",
		Email:       "ann@example.org",
		UserID:      "u-42",
		DeviceID:    "d-7",
		Token:       []byte("token bytes \x00\xff"),
		Keys:        *newTestKeys(t),
	}
}

func equalAccessKeys(a, b *AccessKeys) bool {
	return a.Server == b.Server && a.Fingerprint == b.Fingerprint && a.Email == b.Email &&
		a.UserID == b.UserID && a.DeviceID == b.DeviceID && bytes.Equal(a.Token, b.Token) && a.Keys == b.Keys
}

func TestAccessKeysRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.keys")
	want := testAccessKeys(t)
	if err := WriteAccessKeys(path, want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadAccessKeys(path)
	if err != nil {
		t.Fatal(err)
	}
	if !equalAccessKeys(got, want) {
		t.Fatalf("read %+v, wrote %+v", got, want)
	}
	// Without a fingerprint (CA mode) it still round-trips.
	want.Fingerprint = ""
	if err := WriteAccessKeys(path, want); err != nil {
		t.Fatal(err)
	}
	if got, err = ReadAccessKeys(path); err != nil || !equalAccessKeys(got, want) {
		t.Fatalf("no fingerprint: %v", err)
	}
}

func TestWriteAccessKeysModeAndAtomicity(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permissions")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "access.keys")
	// An old, too-open file is replaced by a 0600 one.
	if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteAccessKeys(path, testAccessKeys(t)); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode = %04o, want 0600", fi.Mode().Perm())
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name() != "access.keys" {
		t.Fatalf("directory holds %v, want only access.keys", entries)
	}
	// A failed write leaves the old file intact and no temp file behind.
	before, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	bad := testAccessKeys(t)
	bad.DeviceID = ""
	if err := WriteAccessKeys(path, bad); err == nil {
		t.Fatal("wrote access keys without a device ID")
	}
	after, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("a rejected write changed the file")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("directory holds %v after a failed write", entries)
	}
	if err := WriteAccessKeys(filepath.Join(dir, "missing", "access.keys"), testAccessKeys(t)); err == nil {
		t.Fatal("wrote into a missing directory")
	}
}

func TestReadAccessKeysRefusesOpenModes(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("no Unix permissions")
	}
	path := filepath.Join(t.TempDir(), "access.keys")
	if err := WriteAccessKeys(path, testAccessKeys(t)); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644, 0o660, 0o666, 0o601} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := ReadAccessKeys(path)
		if !errors.Is(err, ErrInsecureKeyFile) {
			t.Fatalf("mode %04o: err = %v, want ErrInsecureKeyFile", mode, err)
		}
		if !strings.Contains(err.Error(), "chmod 600 "+path) {
			t.Fatalf("mode %04o: error %q does not tell how to fix it", mode, err)
		}
	}
	for _, mode := range []os.FileMode{0o600, 0o400} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadAccessKeys(path); err != nil {
			t.Fatalf("mode %04o: %v", mode, err)
		}
	}
	if _, err := ReadAccessKeys(filepath.Dir(path)); err == nil {
		t.Fatal("read a directory as access.keys")
	}
	if _, err := ReadAccessKeys(filepath.Join(t.TempDir(), "none")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: err = %v, want ErrNotExist", err)
	}
}

// validAccessJSON returns the encoding of valid access keys as a map, for
// tests that break one field at a time.
func validAccessJSON(t *testing.T) map[string]any {
	t.Helper()
	data, err := encodeAccessKeys(testAccessKeys(t))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestDecodeAccessKeysRejects(t *testing.T) {
	zero := make([]byte, KeySize)
	cases := map[string]func(m map[string]any){
		"version 0":       func(m map[string]any) { m["version"] = 0 },
		"version 2":       func(m map[string]any) { m["version"] = 2 },
		"no version":      func(m map[string]any) { delete(m, "version") },
		"unknown field":   func(m map[string]any) { m["password"] = "x" },
		"empty server":    func(m map[string]any) { m["server"] = "" },
		"empty email":     func(m map[string]any) { delete(m, "email") },
		"empty user":      func(m map[string]any) { m["user_id"] = "" },
		"empty device":    func(m map[string]any) { m["device_id"] = "" },
		"empty token":     func(m map[string]any) { m["token"] = "" },
		"huge token":      func(m map[string]any) { m["token"] = bytes.Repeat([]byte{1}, 2000) },
		"short file key":  func(m map[string]any) { m["file_key"] = "AAAA" },
		"zero auth key":   func(m map[string]any) { m["auth_key"] = zero },
		"no box key":      func(m map[string]any) { delete(m, "box_private_key") },
		"long recovery":   func(m map[string]any) { m["recovery_key"] = make([]byte, 33) },
		"bad base64":      func(m map[string]any) { m["file_key"] = "!!!!" },
		"server a number": func(m map[string]any) { m["server"] = 5 },
	}
	for name, mutate := range cases {
		m := validAccessJSON(t)
		mutate(m)
		data, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := decodeAccessKeys(data); !errors.Is(err, ErrMalformedKeys) {
			t.Errorf("%s: err = %v, want ErrMalformedKeys", name, err)
		}
	}
	good, err := encodeAccessKeys(testAccessKeys(t))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"empty":    nil,
		"trailing": append(bytes.Clone(good), []byte(`{}`)...),
		"array":    []byte(`[]`),
		"cut":      good[:len(good)/2],
	} {
		if _, err := decodeAccessKeys(data); !errors.Is(err, ErrMalformedKeys) {
			t.Errorf("%s: err = %v, want ErrMalformedKeys", name, err)
		}
	}
}

func TestReadAccessKeysTooLarge(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.keys")
	if err := os.WriteFile(path, bytes.Repeat([]byte(" "), maxAccessKeysSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadAccessKeys(path); !errors.Is(err, ErrMalformedKeys) {
		t.Fatalf("err = %v, want ErrMalformedKeys", err)
	}
}

// TestAccessKeysEncodingIsDocumented pins the field names of the JSON
// encoding described in docs/format.md.
func TestAccessKeysEncodingIsDocumented(t *testing.T) {
	m := validAccessJSON(t)
	want := []string{"version", "server", "fingerprint", "email", "user_id", "device_id",
		"token", "file_key", "auth_key", "box_private_key", "recovery_key"}
	if len(m) != len(want) {
		t.Fatalf("encoding has %d fields, want %d: %v", len(m), len(want), m)
	}
	for _, k := range want {
		if _, ok := m[k]; !ok {
			t.Errorf("encoding lacks %q", k)
		}
	}
	if m["version"] != float64(1) {
		t.Errorf("version = %v", m["version"])
	}
}
