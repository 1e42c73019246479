package repo

import (
	"bytes"
	"context"
	"slices"
	"testing"

	"github.com/anysync/anysync/store/tree"
)

// prefixInSteps stores data as a file being written would be stored
// ahead: WritePrefix of what was written so far, resumed at the length it
// covered, in steps of step bytes.
func prefixInSteps(t *testing.T, r *Repo, data []byte, step int) []tree.ChunkRef {
	t.Helper()
	var refs []tree.ChunkRef
	var covered int64
	for end := step; end <= len(data); end += step {
		more, n, err := r.WritePrefix(context.Background(), bytes.NewReader(data[covered:end]))
		if err != nil {
			t.Fatal(err)
		}
		refs = append(refs, more...)
		covered += n
	}
	return refs
}

// TestWritePrefixThenResume: a file stored a prefix at a time while it
// grows, then resumed once complete, has exactly the chunk list of
// WriteFile, and resuming stores only the chunks after the prefix.
func TestWritePrefixThenResume(t *testing.T) {
	fx := newFixture()
	r := fx.open(t, &smallChunks)
	data := randomData(5<<20+12345, 3)
	prefix := prefixInSteps(t, r, data, 700<<10)
	if len(prefix) == 0 {
		t.Fatal("nothing stored ahead")
	}
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := fx.index.Len()

	refs, size, err := r.ResumeFile(context.Background(), bytes.NewReader(data), prefix)
	if err != nil || size != int64(len(data)) {
		t.Fatalf("ResumeFile: size %d, %v", size, err)
	}
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	want := writeFile(t, fx.open(t, &smallChunks), data)
	if !slices.Equal(refs, want) {
		t.Fatalf("resumed chunk list (%d chunks) differs from WriteFile's (%d)", len(refs), len(want))
	}
	if !slices.Equal(refs[:len(prefix)], prefix) {
		t.Fatal("resumed list does not start with the prefix")
	}
	if added, tail := fx.index.Len()-before, len(refs)-len(prefix); added != tail {
		t.Fatalf("resuming stored %d blobs, want the %d after the prefix", added, tail)
	}
	if got := readAll(t, fx.open(t, &smallChunks), refs); !bytes.Equal(got, data) {
		t.Fatal("resumed file reads back wrong")
	}
}

// TestResumeAfterChange: a prefix taken before the file changed (a byte
// overwritten inside it, or the file truncated) is used only as far as it
// still matches; the result is WriteFile's for the new content.
func TestResumeAfterChange(t *testing.T) {
	fx := newFixture()
	r := fx.open(t, &smallChunks)
	data := randomData(4<<20, 4)
	prefix := prefixInSteps(t, r, data, 1<<20)

	changed := bytes.Clone(data)
	changed[len(data)/3] ^= 0xff
	for name, content := range map[string][]byte{
		"overwritten": changed,
		"truncated":   data[:len(data)/2+7],
		"emptied":     nil,
	} {
		refs, size, err := r.ResumeFile(context.Background(), bytes.NewReader(content), prefix)
		if err != nil || size != int64(len(content)) {
			t.Fatalf("%s: size %d, %v", name, size, err)
		}
		if want := writeFile(t, r, content); !slices.Equal(refs, want) {
			t.Fatalf("%s: resumed chunk list differs from WriteFile's", name)
		}
		if err := r.Flush(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, fx.open(t, &smallChunks), refs); !bytes.Equal(got, content) {
			t.Fatalf("%s: reads back wrong", name)
		}
	}
}
