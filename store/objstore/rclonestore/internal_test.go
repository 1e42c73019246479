package rclonestore

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anysync/anysync/store/objstore"
	"github.com/anysync/anysync/store/objstore/objstoretest"
)

func TestShardPathRoundTrip(t *testing.T) {
	for _, name := range []string{"a", "ab", "abc", "0123456789abcdef"} {
		p := shardPath(name)
		got, ok := nameFromPath(p)
		if !ok || got != name {
			t.Errorf("nameFromPath(%q) = %q, %v; want %q", p, got, ok, name)
		}
	}
	for _, p := range []string{"", "ab", "/ab", "ab/", "ab/cd", "ab/ab/ab", ".tmp/ab.1", "b/ab", "AB/AB", "ab/abc.d", "ab/abcd"} {
		if name, ok := nameFromPath(p); ok {
			t.Errorf("nameFromPath(%q) accepted as %q", p, name)
		}
	}
}

// Listed paths come from storage, which is not trusted to be tidy.
func FuzzNameFromPath(f *testing.F) {
	f.Add("ef/abcdef")
	f.Add("a/a")
	f.Add(".tmp/ab.123")
	f.Add("ab/ab/ab")
	f.Fuzz(func(t *testing.T, p string) {
		name, ok := nameFromPath(p)
		if !ok {
			return
		}
		if err := objstore.ValidateName(name); err != nil {
			t.Fatalf("accepted invalid name %q from %q: %v", name, p, err)
		}
		if shardPath(name) != p {
			t.Fatalf("%q gave %q, which lives at %q", p, name, shardPath(name))
		}
	})
}

func TestParseConfigSection(t *testing.T) {
	conf := "[a]\ntype = local\nx = 1\n\n[b]\ntype = s3\nendpoint = http://h:1\nref = %(endpoint)s/y\n[empty]\nfoo = bar\n"
	s, err := parseConfigSection([]byte(conf), "b")
	if err != nil {
		t.Fatal(err)
	}
	if s["type"] != "s3" || s["endpoint"] != "http://h:1" || s["ref"] != "http://h:1/y" || len(s) != 3 {
		t.Errorf("section b = %v", s)
	}
	if _, err := parseConfigSection([]byte(conf), "empty"); err == nil || !strings.Contains(err.Error(), "no type") {
		t.Errorf("section without type = %v", err)
	}
	if !isEncryptedConfig([]byte("# Encrypted rclone configuration File\n\nRCLONE_ENCRYPT_V0:\nxyz\n")) {
		t.Error("encrypted config not recognised")
	}
	if isEncryptedConfig([]byte(conf)) {
		t.Error("plain config taken for encrypted")
	}
}

// The config file is read from disk; a broken one must give an error, never
// a panic.
func FuzzParseConfigSection(f *testing.F) {
	f.Add([]byte("[r]\ntype = local\n"), "r")
	f.Add([]byte("[r]\ntype = s3\nendpoint = %(endpoint)s\n"), "r")
	f.Add([]byte("# c\n; c\n[r]\ntype = s3\n[s]\n"), "s")
	f.Add([]byte("RCLONE_ENCRYPT_V0:\nabc"), "r")
	f.Add([]byte("[r\ntype"), "r")
	f.Fuzz(func(t *testing.T, data []byte, remote string) {
		s, err := parseConfigSection(data, remote)
		if err == nil && s["type"] == "" {
			t.Fatalf("accepted section %q without a type", remote)
		}
	})
}

// Uploads to a local folder are fsynced through the path the backend
// reports; make sure that path really is where the files are, so the sync
// is not silently skipped.
func TestLocalRootMatchesFiles(t *testing.T) {
	dir := t.TempDir()
	r, err := New(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Put(context.Background(), "abcd", strings.NewReader("x"), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(r.localRoot, "cd", "abcd")); err != nil {
		t.Errorf("local root %q does not hold the object: %v", r.localRoot, err)
	}
}

// writeSizes records the size of every Write.
type writeSizes struct {
	sizes []int
	data  []byte
}

func (w *writeSizes) Write(p []byte) (int, error) {
	w.sizes = append(w.sizes, len(p))
	w.data = append(w.data, p...)
	return len(p), nil
}

// The local backend copies a Put's body with io.Copy: a chunk reader's 1 MiB
// chunks reach the file in pieces of filePiece bytes, all of them.
func TestFileWritesInPieces(t *testing.T) {
	data := objstoretest.Data(9, 2<<20+100)
	src := objstoretest.NewChunkReader(data, []int{1 << 20}, nil)
	var w writeSizes
	n, err := io.Copy(&w, fileWrites{objstore.NewExactReader(context.Background(), src, int64(len(data)))})
	if err != nil || n != int64(len(data)) {
		t.Fatalf("copied %d, %v", n, err)
	}
	if !bytes.Equal(w.data, data) {
		t.Fatal("wrote other bytes")
	}
	if want := (len(data) + filePiece - 1) / filePiece; len(w.sizes) != want {
		t.Fatalf("%d writes, want %d", len(w.sizes), want)
	}
	for _, s := range w.sizes {
		if s > filePiece {
			t.Fatalf("a write of %d bytes", s)
		}
	}
}
