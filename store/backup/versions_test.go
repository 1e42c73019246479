//go:build unix

package backup

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// TestHistoryAndRestoreInPlace: a file's history lists the versions where
// it changed (not the ones where something else did), and restoring an old
// version in place brings old content back as a new, undoable version —
// also for a file deleted since.
func TestHistoryAndRestoreInPlace(t *testing.T) {
	w := newWorld(t)
	acct := w.account()
	dir := t.TempDir()
	ctx := context.Background()
	a := filepath.Join(dir, "a.txt")

	writeFile(t, a, []byte("first"), 0o644)
	writeFile(t, filepath.Join(dir, "b.txt"), []byte("other"), 0o644)
	w.mustBackup(t, acct, dir, nil) // v1: a created
	settle()
	writeFile(t, filepath.Join(dir, "b.txt"), []byte("other, changed"), 0o644)
	w.mustBackup(t, acct, dir, nil) // v2: only b changed
	settle()
	writeFile(t, a, []byte("second version"), 0o644)
	w.mustBackup(t, acct, dir, nil) // v3: a changed
	settle()
	if err := os.Remove(a); err != nil {
		t.Fatal(err)
	}
	w.mustBackup(t, acct, dir, nil) // v4: a deleted

	hist, err := History(ctx, acct, "/Backups/test/data/a.txt")
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, h := range hist {
		seqs = append(seqs, h.Seq)
	}
	if len(hist) != 3 || hist[0].Seq != 1 || hist[1].Seq != 3 || hist[2].Seq != 4 || !hist[2].Deleted {
		t.Fatalf("history of a.txt = %v (%+v), want versions 1, 3 and 4 (deleted)", seqs, hist)
	}
	if hist[0].Size != 5 || hist[0].Kind != "file" || hist[0].Device != "test" {
		t.Fatalf("first entry: %+v", hist[0])
	}

	// The deleted file comes back with its version-1 content.
	head, err := RestoreInPlace(ctx, acct, "/Backups/test/data/a.txt", 1, "test")
	if err != nil {
		t.Fatal(err)
	}
	if head.Seq != 5 {
		t.Fatalf("restore committed version %d, want 5", head.Seq)
	}
	out, _ := w.restore(t, "/Backups/test/data/a.txt", 0)
	if got, err := os.ReadFile(filepath.Join(out, "a.txt")); err != nil || !bytes.Equal(got, []byte("first")) {
		t.Fatalf("a.txt after restore in place: %q, %v", got, err)
	}
	// The restore is itself a version in the file's history.
	hist, err = History(ctx, acct, "/Backups/test/data/a.txt")
	if err != nil || len(hist) != 4 || hist[3].Seq != 5 || hist[3].Deleted {
		t.Fatalf("history after restore: %+v, %v", hist, err)
	}
	// Restoring a path that did not exist then is a clear error.
	if _, err := RestoreInPlace(ctx, acct, "/Backups/test/data/nope.txt", 1, "test"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("restore of a missing path: %v", err)
	}
}
