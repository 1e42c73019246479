package localdb

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"testing"
)

// TestSetContent checks that recording uploaded content clears the pending
// state and only the staging file it is asked to drop.
func TestSetContent(t *testing.T) {
	db, err := Open(filepath.Join(t.TempDir(), "node.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := context.Background()
	files := []*Node{
		{Parent: RootIno, Name: "a", Kind: KindFile, Mode: 0o644, Size: 3, Flags: FlagChanged | FlagContent, Inline: []byte("abc")},
		{Parent: RootIno, Name: "b", Kind: KindFile, Mode: 0o644, Size: 3, Flags: FlagChanged | FlagContent, Staging: "s1"},
	}
	chunks := bytes.Repeat([]byte{7}, 36)
	drops := make([]string, len(files))
	err = db.Update(ctx, func(tx *Tx) error {
		for _, n := range files {
			if _, err := tx.Insert(n); err != nil {
				return err
			}
		}
		for i, n := range files {
			var err error
			if drops[i], err = tx.SetContent(n.Ino, chunks, 3, i == 0); err != nil {
				return err
			}
		}
		if _, err := tx.SetContent(1<<40, chunks, 3, true); !errors.Is(err, ErrNotFound) {
			t.Errorf("SetContent of a missing node: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if drops[0] != "" || drops[1] != "" {
		t.Fatalf("dropped staging %q", drops)
	}
	for _, n := range files {
		got, err := db.Get(ctx, n.Ino)
		if err != nil {
			t.Fatal(err)
		}
		if got.Flags != FlagChanged|FlagSynced || got.Inline != nil || !bytes.Equal(got.Chunks, chunks) || got.Size != 3 || got.Staging != n.Staging {
			t.Fatalf("%s after SetContent: flags %d, inline %q, %d chunk bytes, size %d, staging %q",
				n.Name, got.Flags, got.Inline, len(got.Chunks), got.Size, got.Staging)
		}
	}
	var drop string
	err = db.Update(ctx, func(tx *Tx) error {
		var err error
		drop, err = tx.SetContent(files[1].Ino, chunks, 3, true)
		return err
	})
	if err != nil || drop != "s1" {
		t.Fatalf("drop staging: %q, %v", drop, err)
	}
	if got, err := db.Get(ctx, files[1].Ino); err != nil || got.Staging != "" {
		t.Fatalf("staging after drop %q, %v", got.Staging, err)
	}
}
