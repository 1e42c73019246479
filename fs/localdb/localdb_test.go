package localdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestSetContent checks that recording uploaded content clears the pending
// state and only the staging file it is asked to drop.
func TestSetContent(t *testing.T) {
	db := openTestDB(t)
	ctx := context.Background()
	files := []*Node{
		{Parent: RootIno, Name: "a", Kind: KindFile, Mode: 0o644, Size: 3, Flags: FlagChanged | FlagContent, Inline: []byte("abc")},
		{Parent: RootIno, Name: "b", Kind: KindFile, Mode: 0o644, Size: 3, Flags: FlagChanged | FlagContent, Staging: "s1"},
	}
	chunks := bytes.Repeat([]byte{7}, 36)
	drops := make([]string, len(files))
	err := db.Update(ctx, func(tx *Tx) error {
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

// TestListing checks the listing's columns (a symlink's size is its
// target's length in bytes), its name order and its paging.
func TestListing(t *testing.T) {
	db := openTestDB(t)
	ctx := context.Background()
	nodes := []*Node{
		{Parent: RootIno, Name: "c-link", Kind: KindSymlink, Mode: 0o777, Target: "ünïcode/target", Mtime: 3, Ctime: 4},
		{Parent: RootIno, Name: "a-file", Kind: KindFile, Mode: 0o640, Size: 12345, Mtime: 5, Ctime: 6, Inline: []byte("x")},
		{Parent: RootIno, Name: "b-dir", Kind: KindDir, Mode: 0o755, Mtime: 7, Ctime: 8},
	}
	err := db.Update(ctx, func(tx *Tx) error {
		for _, n := range nodes {
			if _, err := tx.Insert(n); err != nil {
				return err
			}
		}
		_, err := tx.Insert(&Node{Parent: nodes[2].Ino, Name: "inside", Kind: KindFile, Mode: 0o600})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	first, err := db.Listing(ctx, RootIno, "", 2)
	if err != nil {
		t.Fatal(err)
	}
	rest, err := db.Listing(ctx, RootIno, first[len(first)-1].Name, 2)
	if err != nil {
		t.Fatal(err)
	}
	got := append(first, rest...)
	want := []Node{
		{Ino: nodes[1].Ino, Parent: RootIno, Name: "a-file", Kind: KindFile, Mode: 0o640, Size: 12345, Mtime: 5, Ctime: 6},
		{Ino: nodes[2].Ino, Parent: RootIno, Name: "b-dir", Kind: KindDir, Mode: 0o755, Mtime: 7, Ctime: 8},
		{Ino: nodes[0].Ino, Parent: RootIno, Name: "c-link", Kind: KindSymlink, Mode: 0o777, Size: int64(len("ünïcode/target")), Mtime: 3, Ctime: 4},
	}
	if len(first) != 2 || len(got) != len(want) {
		t.Fatalf("listed %d then %d entries, want 2 then 1", len(first), len(rest))
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.Ino != w.Ino || g.Parent != w.Parent || g.Name != w.Name || g.Kind != w.Kind || g.Mode != w.Mode || g.Size != w.Size || g.Mtime != w.Mtime || g.Ctime != w.Ctime {
			t.Errorf("entry %d: got %+v, want %+v", i, g, w)
		}
	}
}

// TestGetMany reads more nodes than one statement takes, some missing.
func TestGetMany(t *testing.T) {
	db := openTestDB(t)
	ctx := context.Background()
	var inos []uint64
	err := db.Update(ctx, func(tx *Tx) error {
		for i := range getManyArity + 8 {
			ino, err := tx.Insert(&Node{Parent: RootIno, Name: fmt.Sprint(i), Kind: KindFile, Inline: []byte{byte(i)}})
			if err != nil {
				return err
			}
			inos = append(inos, ino)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	asked := append([]uint64{1 << 40}, inos...)
	got, err := db.GetMany(ctx, asked)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(inos) {
		t.Fatalf("got %d nodes, want %d", len(got), len(inos))
	}
	for i, ino := range inos {
		if n := got[ino]; n.Name != fmt.Sprint(i) || !bytes.Equal(n.Inline, []byte{byte(i)}) {
			t.Errorf("node %d: %+v", ino, n)
		}
	}
}

func openTestDB(t testing.TB) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "node.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// TestPendingUsesDirtyIndex checks that the committer's queries for
// pending content read the partial index of dirty nodes, not every row:
// they run every 200 ms while files are written.
func TestPendingUsesDirtyIndex(t *testing.T) {
	db := openTestDB(t)
	for name, query := range map[string]string{"pending": pendingQuery, "pending count": pendingCountQuery} {
		rows, err := db.r.Query(`EXPLAIN QUERY PLAN `+query, FlagContent)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			t.Fatal(err)
		}
		joined := strings.Join(plan, "; ")
		if !strings.Contains(joined, "INDEX nodes_dirty") {
			t.Errorf("%s query plan: %s; want a search of nodes_dirty", name, joined)
		}
	}
}

// BenchmarkPending lists the pending nodes among many clean ones, as the
// committer does while a large tree is written.
func BenchmarkPending(b *testing.B) {
	db := openTestDB(b)
	ctx := context.Background()
	content := bytes.Repeat([]byte("x"), 2000) // small files' inline content
	err := db.Update(ctx, func(tx *Tx) error {
		for i := range 20000 {
			n := &Node{Parent: RootIno, Name: fmt.Sprintf("f%05d", i), Kind: KindFile, Mode: 0o644, Size: int64(len(content)), Inline: content}
			if i%1000 == 0 {
				n.Flags = FlagChanged | FlagContent
			}
			if _, err := tx.Insert(n); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		pending, err := db.Pending(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if len(pending) != 20 {
			b.Fatalf("%d pending, want 20", len(pending))
		}
	}
}
