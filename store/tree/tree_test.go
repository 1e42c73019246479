package tree

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/anysync/anysync/crypto"
)

func id(b byte) crypto.ID {
	var i crypto.ID
	for j := range i {
		i[j] = b
	}
	return i
}

func sampleTree() *Tree {
	return &Tree{Entries: []Entry{
		{Name: "zeta.txt", Kind: KindFile, Mode: 0o644, Size: 300, ModTime: 1700000000123456789, ChangeTime: -5,
			Chunks: []ChunkRef{{ID: id(1), Length: 100}, {ID: id(2), Length: 200}}},
		{Name: "alpha", Kind: KindDir, Mode: 0o755, Subtree: id(3), ModTime: 42},
		{Name: "link", Kind: KindSymlink, Mode: 0o777, Size: 9, Target: "../x/y/z",
			Xattrs: []Xattr{{Name: "user.b", Value: []byte{0, 1}}, {Name: "user.a", Value: []byte("v")}}},
		{Name: "empty", Kind: KindFile, Mode: 0o4755},
		{Name: "caf\xe9 not utf8", Kind: KindFile, Mode: 0o600, Size: 1, Chunks: []ChunkRef{{ID: id(4), Length: 1}}},
	}}
}

func TestTreeRoundTrip(t *testing.T) {
	tr := sampleTree()
	b, err := tr.Encode()
	if err != nil {
		t.Fatal(err)
	}
	// Encode sorted the entries and xattrs in place.
	var names []string
	for _, e := range tr.Entries {
		names = append(names, e.Name)
	}
	if fmt.Sprint(names) != "[alpha caf\xe9 not utf8 empty link zeta.txt]" {
		t.Fatalf("entries not sorted: %q", names)
	}
	got, err := DecodeTree(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, tr) {
		t.Fatalf("round trip changed the tree:\n%+v\n%+v", got, tr)
	}
	if e, ok := got.Find("link"); !ok || e.Target != "../x/y/z" || e.Xattrs[0].Name != "user.a" {
		t.Fatalf("Find(link) = %+v, %v", e, ok)
	}
	if _, ok := got.Find("nope"); ok {
		t.Fatal("Find found a missing name")
	}
	// Deterministic: a shuffled copy encodes to the same bytes.
	tr2 := sampleTree()
	tr2.Entries[0], tr2.Entries[3] = tr2.Entries[3], tr2.Entries[0]
	b2, err := tr2.Encode()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, b2) {
		t.Fatal("same tree encoded to different bytes")
	}
}

func TestEmptyTree(t *testing.T) {
	b, err := (&Tree{}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeTree(b)
	if err != nil || len(got.Entries) != 0 {
		t.Fatalf("empty tree: %v, %v", got, err)
	}
}

func TestValidName(t *testing.T) {
	for _, bad := range []string{"", ".", "..", "a/b", "/", "../x", "a\x00b", strings.Repeat("x", 256)} {
		if err := ValidName(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("ValidName(%q) = %v", bad, err)
		}
	}
	for _, good := range []string{"a", "...", ".hidden", "\xff\xfe", strings.Repeat("x", 255), "a\\b"} {
		if err := ValidName(good); err != nil {
			t.Errorf("ValidName(%q) = %v", good, err)
		}
	}
}

func TestEncodeRejects(t *testing.T) {
	cases := map[string]Entry{
		"dotdot":           {Name: "..", Kind: KindDir, Subtree: id(1)},
		"slash":            {Name: "a/b", Kind: KindFile},
		"size mismatch":    {Name: "f", Kind: KindFile, Size: 5, Chunks: []ChunkRef{{ID: id(1), Length: 4}}},
		"zero chunk":       {Name: "f", Kind: KindFile, Chunks: []ChunkRef{{ID: id(1)}}},
		"file with target": {Name: "f", Kind: KindFile, Target: "x"},
		"dir no subtree":   {Name: "d", Kind: KindDir},
		"dir with chunks":  {Name: "d", Kind: KindDir, Subtree: id(1), Size: 1, Chunks: []ChunkRef{{ID: id(1), Length: 1}}},
		"empty symlink":    {Name: "l", Kind: KindSymlink},
		"symlink NUL":      {Name: "l", Kind: KindSymlink, Target: "a\x00"},
		"long target":      {Name: "l", Kind: KindSymlink, Target: strings.Repeat("a", MaxTargetLen+1)},
		"bad kind":         {Name: "x", Kind: 9},
		"type in mode":     {Name: "f", Kind: KindFile, Mode: 0o100644},
		"dup xattr":        {Name: "f", Kind: KindFile, Xattrs: []Xattr{{Name: "a"}, {Name: "a"}}},
		"empty xattr name": {Name: "f", Kind: KindFile, Xattrs: []Xattr{{Name: ""}}},
		"big xattr":        {Name: "f", Kind: KindFile, Xattrs: []Xattr{{Name: "a", Value: make([]byte, MaxXattrValueLen+1)}}},
	}
	for name, e := range cases {
		if _, err := (&Tree{Entries: []Entry{e}}).Encode(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Encode = %v, want ErrInvalid", name, err)
		}
	}
	dup := &Tree{Entries: []Entry{{Name: "a", Kind: KindFile}, {Name: "a", Kind: KindFile}}}
	if _, err := dup.Encode(); !errors.Is(err, ErrInvalid) {
		t.Errorf("duplicate names: %v", err)
	}
}

// encodeRaw builds tree bytes by hand, bypassing Encode's checks, as an
// attacker would.
func encodeRaw(entries ...func(w *writer)) []byte {
	w := &writer{}
	w.byte(treeFormat)
	w.uvarint(uint64(len(entries)))
	for _, f := range entries {
		f(w)
	}
	return w.b
}

func rawDir(name string) func(w *writer) {
	return func(w *writer) {
		w.string(name)
		w.byte(byte(KindDir))
		w.uvarint(0o755)
		w.uvarint(0)
		w.varint(0)
		w.varint(0)
		w.uvarint(0)
		sub := id(7)
		w.raw(sub[:])
	}
}

func TestDecodeRejectsHostile(t *testing.T) {
	good := encodeRaw(rawDir("a"), rawDir("b"))
	if _, err := DecodeTree(good); err != nil {
		t.Fatalf("hand-built tree: %v", err)
	}
	hugeCount := &writer{}
	hugeCount.byte(treeFormat)
	hugeCount.uvarint(1 << 60)
	nonMinimal := append([]byte{treeFormat, 0x81, 0x00}, good[2:]...)
	cases := map[string][]byte{
		"empty":          nil,
		"bad format":     append([]byte{9}, good[1:]...),
		"traversal":      encodeRaw(rawDir("..")),
		"slash":          encodeRaw(rawDir("x/../../etc")),
		"NUL":            encodeRaw(rawDir("a\x00")),
		"unsorted":       encodeRaw(rawDir("b"), rawDir("a")),
		"duplicate":      encodeRaw(rawDir("a"), rawDir("a")),
		"trailing":       append(bytes.Clone(good), 0),
		"truncated":      good[:len(good)-1],
		"huge count":     hugeCount.b,
		"non-minimal":    nonMinimal,
		"count too high": append([]byte{treeFormat, 3}, good[2:]...),
	}
	for name, b := range cases {
		if _, err := DecodeTree(b); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: DecodeTree = %v, want ErrInvalid", name, err)
		}
	}
	// Every truncation of a valid tree fails cleanly.
	full, err := sampleTree().Encode()
	if err != nil {
		t.Fatal(err)
	}
	for i := range len(full) {
		if _, err := DecodeTree(full[:i]); !errors.Is(err, ErrInvalid) {
			t.Fatalf("truncated to %d bytes: %v", i, err)
		}
	}
}

func TestVersionRoundTrip(t *testing.T) {
	v := &Version{Root: id(1), Parent: id(2), Time: 1700000000000000000, Device: "laptop", Message: "sync"}
	b, err := v.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeVersion(b)
	if err != nil {
		t.Fatal(err)
	}
	if *got != *v {
		t.Fatalf("round trip: %+v != %+v", got, v)
	}
	first := &Version{Root: id(1)}
	if b, err := first.Encode(); err != nil {
		t.Fatal(err)
	} else if got, err := DecodeVersion(b); err != nil || *got != *first {
		t.Fatalf("first version: %+v %v", got, err)
	}
	for name, bad := range map[string]*Version{
		"no root": {Parent: id(1)},
		"device":  {Root: id(1), Device: strings.Repeat("d", MaxDeviceLen+1)},
		"message": {Root: id(1), Message: strings.Repeat("m", MaxMessageLen+1)},
	} {
		if _, err := bad.Encode(); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Encode = %v", name, err)
		}
	}
	for i := range len(b) {
		if _, err := DecodeVersion(b[:i]); !errors.Is(err, ErrInvalid) {
			t.Fatalf("truncated to %d: %v", i, err)
		}
	}
	if _, err := DecodeVersion(append(bytes.Clone(b), 0)); !errors.Is(err, ErrInvalid) {
		t.Fatalf("trailing byte: %v", err)
	}
	zeroRoot := bytes.Clone(b)
	copy(zeroRoot[1:], make([]byte, crypto.IDSize))
	if _, err := DecodeVersion(zeroRoot); !errors.Is(err, ErrInvalid) {
		t.Fatalf("zero root: %v", err)
	}
}

func bigTree(n int) *Tree {
	t := &Tree{Entries: make([]Entry, n)}
	for i := range t.Entries {
		e := &t.Entries[i]
		e.Name = fmt.Sprintf("file-%07d.dat", i)
		e.Mode = 0o644
		e.ModTime = 1700000000000000000 + int64(i)
		e.ChangeTime = e.ModTime
		if i%10 == 0 {
			e.Kind, e.Subtree = KindDir, id(byte(i)|1)
			continue
		}
		e.Kind = KindFile
		e.Size = 3 << 20
		e.Chunks = []ChunkRef{{ID: id(byte(i)), Length: 1 << 20}, {ID: id(byte(i + 1)), Length: 2 << 20}}
	}
	return t
}

func BenchmarkTreeEncode(b *testing.B) {
	t := bigTree(100000)
	enc, _ := t.Encode()
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := t.Encode(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkTreeDecode(b *testing.B) {
	enc, err := bigTree(100000).Encode()
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(enc)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeTree(enc); err != nil {
			b.Fatal(err)
		}
	}
}
