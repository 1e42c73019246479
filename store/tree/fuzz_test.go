package tree

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzDecodeTree checks that DecodeTree never panics, fails only with
// ErrInvalid, and accepts only canonical encodings: whatever it decodes
// re-encodes to the very same bytes.
func FuzzDecodeTree(f *testing.F) {
	f.Add([]byte{treeFormat, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		tr, err := DecodeTree(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		for _, e := range tr.Entries {
			if ValidName(e.Name) != nil {
				t.Fatalf("decoded invalid name %q", e.Name)
			}
		}
		again, err := tr.Encode()
		if err != nil {
			t.Fatalf("decoded tree does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("non-canonical input accepted:\n%x\n%x", b, again)
		}
	})
}

// FuzzDecodeVersion is FuzzDecodeTree for versions.
func FuzzDecodeVersion(f *testing.F) {
	f.Add([]byte{versionFormat})
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := DecodeVersion(b)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("untyped error: %v", err)
			}
			return
		}
		again, err := v.Encode()
		if err != nil {
			t.Fatalf("decoded version does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("non-canonical input accepted:\n%x\n%x", b, again)
		}
	})
}
