//go:build unix

package backup

import (
	"bytes"
	"crypto/sha256"
	"testing"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/store/tree"
)

// FuzzDecodeCache feeds arbitrary bytes to the cache decoder: it must
// never panic, and what it accepts must re-encode to the same bytes.
func FuzzDecodeCache(f *testing.F) {
	f.Add(sampleCache())
	f.Add([]byte{})
	f.Add([]byte("ASBC\x01"))
	hasher := crypto.NewIDHasher(testKeys().AuthKey)
	f.Fuzz(func(t *testing.T, b []byte) {
		fuzzCache(t, hasher, b)
		// Most mutations break the checksum; fix it up so the structure
		// parser behind it is fuzzed too (a local attacker can do the same).
		if len(b) >= 5+sha256.Size {
			fixed := append([]byte(nil), b[:len(b)-sha256.Size]...)
			sum := sha256.Sum256(fixed)
			fuzzCache(t, hasher, append(fixed, sum[:]...))
		}
	})
}

func fuzzCache(t *testing.T, hasher *crypto.IDHasher, b []byte) {
	recs, err := decodeCache(b)
	if err != nil {
		return
	}
	if again := encodeCache(recs); !bytes.Equal(again, b) {
		t.Fatalf("re-encoding changed the cache:\n%x\n%x", b, again)
	}
	c := &fileCache{old: recs, idOf: hasher.Sum}
	for p := range recs {
		if d := c.dir(p); d != nil {
			for _, e := range d.tree.Entries {
				d.find(e.Name)
			}
		}
	}
}

// sampleCache is a valid cache of two folders.
func sampleCache() []byte {
	hasher := crypto.NewIDHasher(testKeys().AuthKey)
	sub, err := (&tree.Tree{}).Encode()
	if err != nil {
		panic(err)
	}
	root, err := (&tree.Tree{Entries: []tree.Entry{
		{Name: "a", Kind: tree.KindFile, Mode: 0o644, ModTime: 1, ChangeTime: 2},
		{Name: "sub", Kind: tree.KindDir, Mode: 0o755, Subtree: hasher.Sum(sub), Xattrs: []tree.Xattr{{Name: "user.x", Value: []byte("v")}}},
	}}).Encode()
	if err != nil {
		panic(err)
	}
	return encodeCache(map[string]*cacheRecord{
		"":    {ID: hasher.Sum(root), Tree: root, Meta: []entryMeta{{Ino: 12, Trusted: true}, {Ino: 13}}},
		"sub": {ID: hasher.Sum(sub), Tree: sub, Meta: nil},
	})
}

func TestCacheSample(t *testing.T) {
	recs, err := decodeCache(sampleCache())
	if err != nil {
		t.Fatal(err)
	}
	c := &fileCache{old: recs, idOf: crypto.NewIDHasher(testKeys().AuthKey).Sum}
	d := c.dir("")
	if d == nil {
		t.Fatal("sample root does not verify")
	}
	if e, m, ok := d.find("a"); !ok || e.Size != 0 || m.Ino != 12 || !m.Trusted {
		t.Fatalf("find a: %+v %+v %v", e, m, ok)
	}
	if _, m, ok := d.find("sub"); !ok || m.Trusted {
		t.Fatalf("find sub: %+v %v", m, ok)
	}
	if _, _, ok := d.find("zzz"); ok {
		t.Fatal("found a missing name")
	}
	if c.dir("sub") == nil || c.dir("missing") != nil {
		t.Fatal("dir lookup by path")
	}
	// A record whose tree does not hash to its ID is not used.
	recs[""].ID[0] ^= 1
	if c.dir("") != nil {
		t.Fatal("a record with a wrong ID was used")
	}
}
