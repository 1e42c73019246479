package crypto

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/zeebo/blake3"
)

func TestIDHasher(t *testing.T) {
	ak := randKey(t)
	h := NewIDHasher(ak)
	data := randBytes(t, 1000)
	id := h.Sum(data)
	if id.IsZero() {
		t.Fatal("zero ID")
	}
	if h.Sum(data) != id || NewIDHasher(ak).Sum(data) != id {
		t.Fatal("IDs are not deterministic per auth key")
	}
	if NewIDHasher(randKey(t)).Sum(data) == id {
		t.Fatal("two auth keys gave the same ID: IDs are not keyed")
	}
	if blake3.Sum256(data) == id {
		t.Fatal("ID equals the unkeyed BLAKE3 hash: the server could test for known files")
	}
	other := bytes.Clone(data)
	other[500] ^= 1
	if h.Sum(other) == id {
		t.Fatal("different data gave the same ID")
	}
	if h.Sum(nil) == h.Sum([]byte{0}) {
		t.Fatal("empty and one-zero-byte data share an ID")
	}
}

// TestIDHasherRecycled checks that a recycled hasher starts from the keyed
// state: IDs of many sizes, summed in turn and from several goroutines,
// equal those of a fresh keyed BLAKE3 each.
func TestIDHasherRecycled(t *testing.T) {
	ak := randKey(t)
	h := NewIDHasher(ak)
	key := Derive(ak, purposeBlobID, nil)
	want := func(data []byte) ID {
		f, err := blake3.NewKeyed(key[:])
		if err != nil {
			t.Fatal(err)
		}
		_, _ = f.Write(data)
		var id ID
		f.Sum(id[:0])
		return id
	}
	inputs := [][]byte{nil, {0}, randBytes(t, 63), randBytes(t, 1024), randBytes(t, 70_000), randBytes(t, 5)}
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			for i := range 50 {
				data := inputs[(i+g)%len(inputs)]
				if got := h.Sum(data); got != want(data) {
					errs <- fmt.Errorf("goroutine %d, round %d: ID of %d bytes differs from a fresh hasher's", g, i, len(data))
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestIDHasherGolden(t *testing.T) {
	ak := mustKey(t, "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f")
	got := NewIDHasher(ak).Sum([]byte("anysync golden chunk"))
	if got.String() != "203844865e97fb85a52cf7ac6d5de140b9369f24c62f03b98a6ed4db5d048002" {
		t.Fatalf("golden ID = %s", got)
	}
}

func TestGearTable(t *testing.T) {
	ak := randKey(t)
	a := GearTable(ak)
	if *GearTable(ak) != *a {
		t.Fatal("gear table is not deterministic per key")
	}
	b := GearTable(randKey(t))
	if *a == *b {
		t.Fatal("two keys gave the same gear table")
	}
	same := 0
	seen := make(map[uint64]bool)
	for i := range a {
		if a[i] == b[i] {
			same++
		}
		seen[a[i]] = true
	}
	if same > 0 {
		t.Fatalf("%d entries equal between two keys' tables", same)
	}
	if len(seen) != 256 {
		t.Fatalf("gear table has only %d distinct entries", len(seen))
	}
}

func TestGearTableGolden(t *testing.T) {
	ak := mustKey(t, "202122232425262728292a2b2c2d2e2f303132333435363738393a3b3c3d3e3f")
	g := GearTable(ak)
	if g[0] != 0x64015ca90adfe116 || g[255] != 0x7cb0f8be24446748 {
		t.Fatalf("golden gear table: [0]=%#x [255]=%#x", g[0], g[255])
	}
}

func TestParseID(t *testing.T) {
	id := randID(t)
	got, err := ParseID(id.String())
	if err != nil || got != id {
		t.Fatalf("ParseID(String()) = %v, %v", got, err)
	}
	if len(id.Short()) != 8 || id.String()[:8] != id.Short() {
		t.Fatalf("Short() = %q", id.Short())
	}
	for _, bad := range []string{"", "abc", id.String()[:63], id.String() + "0", "zz" + id.String()[2:]} {
		if _, err := ParseID(bad); err == nil {
			t.Errorf("ParseID(%q) succeeded", bad)
		}
	}
	if !(ID{}).IsZero() || id.IsZero() {
		t.Fatal("IsZero is wrong")
	}
}
