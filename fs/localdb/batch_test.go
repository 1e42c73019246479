package localdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/anysync/anysync/crypto"
)

func openBatchedDB(t *testing.T, path string) *DB {
	t.Helper()
	db, err := OpenBatched(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func insertFile(t *testing.T, db *DB, name string, content []byte) uint64 {
	t.Helper()
	var ino uint64
	err := db.Update(context.Background(), func(tx *Tx) error {
		var err error
		ino, err = tx.Insert(&Node{Parent: RootIno, Name: name, Kind: KindFile, Mode: 0o644, Size: int64(len(content)),
			Flags: FlagChanged | FlagContent, Inline: content})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return ino
}

// Every acknowledged write is visible to the next read, committed or not.
func TestBatchedReadsSeeWrites(t *testing.T) {
	db := openBatchedDB(t, filepath.Join(t.TempDir(), "node.db"))
	ctx := context.Background()
	ino := insertFile(t, db, "a", []byte("hello"))
	n, err := db.Lookup(ctx, RootIno, "a")
	if err != nil || n.Ino != ino {
		t.Fatalf("lookup in an open batch: %+v, %v", n, err)
	}
	if full, err := db.Get(ctx, ino); err != nil || string(full.Inline) != "hello" {
		t.Fatalf("get in an open batch: %q, %v", full.Inline, err)
	}
	if ls, err := db.Listing(ctx, RootIno, "", 10); err != nil || len(ls) != 1 || ls[0].Name != "a" {
		t.Fatalf("listing in an open batch: %+v, %v", ls, err)
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	if n, err := db.Lookup(ctx, RootIno, "a"); err != nil || n.Ino != ino {
		t.Fatalf("lookup after commit: %+v, %v", n, err)
	}
}

// An Update that writes and then fails leaves nothing behind, and the
// batch's earlier Updates stay.
func TestBatchedFailedUpdateRollsBack(t *testing.T) {
	db := openBatchedDB(t, filepath.Join(t.TempDir(), "node.db"))
	ctx := context.Background()
	keep := insertFile(t, db, "keep", []byte("1"))
	boom := errors.New("boom")
	err := db.Update(ctx, func(tx *Tx) error {
		if _, err := tx.Insert(&Node{Parent: RootIno, Name: "gone", Kind: KindFile, Mode: 0o644}); err != nil {
			return err
		}
		if err := tx.SetKV("k", []byte("v")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("Update: %v", err)
	}
	if _, err := db.Lookup(ctx, RootIno, "gone"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a failed Update's insert is visible: %v", err)
	}
	if _, ok, _ := db.GetKV(ctx, "k"); ok {
		t.Fatal("a failed Update's key is visible")
	}
	if n, err := db.Lookup(ctx, RootIno, "keep"); err != nil || n.Ino != keep {
		t.Fatalf("the batch lost an earlier Update: %+v, %v", n, err)
	}
	// A unique-name violation is an error SQLite rejects by itself; the
	// Update handling it goes on.
	err = db.Update(ctx, func(tx *Tx) error {
		if _, err := tx.Insert(&Node{Parent: RootIno, Name: "keep", Kind: KindFile}); !errors.Is(err, ErrExists) {
			t.Errorf("duplicate insert: %v", err)
		}
		return tx.SetKV("after", []byte("1"))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db2 := openBatchedDB(t, db.Path())
	if v, ok, err := db2.GetKV(ctx, "after"); err != nil || !ok || string(v) != "1" {
		t.Fatalf("after reopening: %q %v %v", v, ok, err)
	}
}

// crashEnv makes the test binary a process that writes and dies without
// committing its batch, as kill -9 would leave it.
const crashEnv = "LOCALDB_CRASH_WRITER"

func TestMain(m *testing.M) {
	if path := os.Getenv(crashEnv); path != "" {
		db, err := OpenBatched(path)
		if err == nil {
			db.b.delay = time.Hour // however slow (-race), nothing commits
			err = everyWrite(db)
		}
		if err != nil {
			os.Stderr.WriteString(err.Error())
			os.Exit(3)
		}
		os.Exit(0) // no Close, no commit: only the redo log has the writes
	}
	os.Exit(m.Run())
}

// everyWrite runs each of Tx's write methods, one Update apiece, so a write
// the redo log misses shows as a difference after replay.
func everyWrite(db *DB) error {
	ctx := context.Background()
	var a, b, d uint64
	mode, mtime := uint32(0o751), int64(99)
	id := crypto.ID{1, 2, 3}
	steps := []func(tx *Tx) error{
		func(tx *Tx) (err error) {
			a, err = tx.Insert(&Node{Parent: RootIno, Name: "a", Kind: KindFile, Mode: 0o600, Size: 4, Flags: FlagContent, Inline: []byte("data")})
			return err
		},
		func(tx *Tx) (err error) {
			d, err = tx.Insert(&Node{Parent: RootIno, Name: "d", Kind: KindDir, Mode: 0o700})
			return err
		},
		func(tx *Tx) (err error) {
			b, err = tx.Insert(&Node{Parent: d, Name: "b", Kind: KindFile, Mode: 0o644, Staging: "s1", Flags: FlagContent})
			return err
		},
		func(tx *Tx) error { return tx.SetMetaInline(a, 8, 7, 7, 0o640, []byte("new data")) },
		func(tx *Tx) error { _, err := tx.Chattr(d, &mode, &mtime, 100); return err },
		func(tx *Tx) error { return tx.SetTime(b, 5, 6) },
		func(tx *Tx) error { return tx.SetXattrs(b, []byte("x"), 101) },
		func(tx *Tx) error { return tx.SetStaging(a, "s2") },
		func(tx *Tx) error { return tx.SetMeta(a, 9, 8, 8, 0o600) },
		func(tx *Tx) error { return tx.TouchDir(d, 102) },
		func(tx *Tx) error { return tx.MarkChanged(b) },
		func(tx *Tx) error { return tx.SetFlags(d, FlagChanged|FlagSynced) },
		func(tx *Tx) error { return tx.SetTree(d, id, FlagSynced) },
		func(tx *Tx) error { _, err := tx.SetContent(b, []byte{1, 2}, 2, true); return err },
		func(tx *Tx) error { return tx.ClearCleanStaging() },
		func(tx *Tx) error {
			n, err := tx.Get(a)
			if err != nil {
				return err
			}
			n.Name, n.Parent = "moved", d
			return tx.Put(&n)
		},
		func(tx *Tx) error {
			n, err := tx.Get(b)
			if err != nil {
				return err
			}
			n.Mode = 0o604
			return tx.SetAttrs(&n)
		},
		func(tx *Tx) error { return tx.SetKV("k", []byte{}) },
		func(tx *Tx) error { return tx.MarkBlobsCommitted([]BlobEntry{{ID: id}}) },
		func(tx *Tx) error {
			c, err := tx.Insert(&Node{Parent: RootIno, Name: "c", Kind: KindSymlink, Target: "t"})
			if err != nil {
				return err
			}
			return tx.Delete(c)
		},
	}
	if err := db.AddBlobs(ctx, []BlobEntry{{ID: id, BlobLocation: BlobLocation{Pack: "p", Offset: 1, Length: 2}}, {ID: crypto.ID{9}}}, false); err != nil {
		return err
	}
	for i, step := range steps {
		if err := db.Update(ctx, step); err != nil {
			return fmt.Errorf("step %d: %w", i, err)
		}
	}
	return nil
}

// dump lists every row the database holds but the redo bookkeeping.
func dump(t *testing.T, db *DB) string {
	t.Helper()
	var out strings.Builder
	for _, q := range []string{`SELECT * FROM nodes ORDER BY ino`, `SELECT * FROM kv WHERE k != 'redo_seq' ORDER BY k`,
		`SELECT * FROM blobs ORDER BY id`, `SELECT * FROM sqlite_sequence`} {
		rows, err := db.r.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&out, "%#v\n", vals)
		}
		rows.Close()
	}
	return out.String()
}

// What a process acknowledged survives its crash: the next open replays
// the redo log, and the database ends up as if each Update had committed.
func TestBatchedCrashReplay(t *testing.T) {
	want := func() string {
		db, err := Open(filepath.Join(t.TempDir(), "node.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if err := everyWrite(db); err != nil {
			t.Fatal(err)
		}
		return dump(t, db)
	}()

	path := filepath.Join(t.TempDir(), "node.db")
	db, err := Open(path) // create the database beforehand
	if err != nil {
		t.Fatal(err)
	}
	empty := dump(t, db)
	_ = db.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("writer: %v: %s", err, out)
	}
	// The writer never committed: the database alone does not have it.
	plain, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := dump(t, plain); got != empty {
		t.Fatalf("the uncommitted writes are in the database:\n%s", got)
	}
	_ = plain.Close()

	db = openBatchedDB(t, path)
	if got := dump(t, db); got != want {
		t.Fatalf("after replay:\n%s\nwant:\n%s", got, want)
	}
	if fi, err := os.Stat(path + "-redo"); err != nil || fi.Size() != 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("redo log after replay: %v, %v", fi, err)
	}
	// Replaying twice must not apply anything twice: close and reopen.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openBatchedDB(t, path)
	if got := dump(t, db); got != want {
		t.Fatalf("after a second open:\n%s", got)
	}
}

// A record cut short by a crash is dropped; the records before it are
// replayed. A damaged record in the middle stops the open with a clear
// error instead of guessing.
func TestBatchedTornAndCorruptLog(t *testing.T) {
	rec := func(seq uint64, key string) []byte {
		r := &recorder{}
		if err := r.add(`INSERT INTO kv (k, v) VALUES (?, ?)`, []any{key, []byte("v")}); err != nil {
			t.Fatal(err)
		}
		return encodeRecord(seq, r)
	}
	torn := rec(2, "torn")
	flipped := rec(2, "torn")
	flipped[len(flipped)-1] ^= 1
	ctx := context.Background()
	for name, tail := range map[string][]byte{
		"cut short":        torn[:len(torn)-3],
		"last one damaged": flipped,
		"zeros":            make([]byte, 4096), // extended, never written (power loss)
	} {
		path := filepath.Join(t.TempDir(), "node.db")
		if err := os.WriteFile(path+"-redo", append(rec(1, "first"), tail...), 0o600); err != nil {
			t.Fatal(err)
		}
		db, err := OpenBatched(path)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, ok, _ := db.GetKV(ctx, "first"); !ok {
			t.Fatalf("%s: the record before the torn one was not replayed", name)
		}
		if _, ok, _ := db.GetKV(ctx, "torn"); ok {
			t.Fatalf("%s: a torn record was replayed", name)
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}

	path := filepath.Join(t.TempDir(), "node.db")
	bad := rec(5, "bad")
	bad[len(bad)-1] ^= 1
	if err := os.WriteFile(path+"-redo", append(bad, rec(6, "next")...), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := OpenBatched(path)
	if err == nil || !strings.Contains(err.Error(), "move it aside") {
		t.Fatalf("open with a damaged record: %v", err)
	}
}

// Only one process writes behind a database.
func TestBatchedLogIsExclusive(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.db")
	openBatchedDB(t, path)
	if db, err := OpenBatched(path); err == nil {
		_ = db.Close()
		t.Fatal("a second OpenBatched of one database succeeded")
	}
}

// A write to the log that fails (a full disk) fails the Update and takes
// its writes back.
func TestBatchedLogWriteFailure(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.db")
	db := openBatchedDB(t, path)
	ctx := context.Background()
	insertFile(t, db, "before", nil)
	ro, err := os.Open(path + "-redo")
	if err != nil {
		t.Fatal(err)
	}
	db.b.mu.Lock()
	rw := db.b.log
	db.b.log = ro
	db.b.mu.Unlock()
	err = db.Update(ctx, func(tx *Tx) error { return tx.SetKV("lost", []byte("x")) })
	if err == nil || !strings.Contains(err.Error(), "write redo log") {
		t.Fatalf("Update with an unwritable log: %v", err)
	}
	if _, ok, _ := db.GetKV(ctx, "lost"); ok {
		t.Fatal("the failed Update's write is visible")
	}
	if _, err := db.Lookup(ctx, RootIno, "before"); err != nil {
		t.Fatalf("the batch lost an earlier Update: %v", err)
	}
	db.b.mu.Lock()
	db.b.log = rw
	db.b.mu.Unlock()
	_ = ro.Close()
	if err := db.Update(ctx, func(tx *Tx) error { return tx.SetKV("later", []byte("y")) }); err != nil {
		t.Fatal(err)
	}
}

// Every kind of argument the node table's statements use survives the log.
func TestRecordRoundTrip(t *testing.T) {
	type flags int32
	args := []any{nil, int64(-5), uint64(1 << 40), 3.5, true, false, "name", []byte{}, []byte(nil), []byte("x\x00y"), flags(9), uint32(7)}
	r := &recorder{}
	if err := r.add("Q1", args); err != nil {
		t.Fatal(err)
	}
	if err := r.add("Q2", nil); err != nil {
		t.Fatal(err)
	}
	seq, stmts, n, err := decodeRecord(encodeRecord(42, r))
	if err != nil {
		t.Fatal(err)
	}
	want := []any{nil, int64(-5), int64(1 << 40), 3.5, true, false, "name", []byte{}, []byte(nil), []byte("x\x00y"), int64(9), int64(7)}
	if seq != 42 || len(stmts) != 2 || stmts[0].query != "Q1" || stmts[1].query != "Q2" || len(stmts[1].args) != 0 || n != len(encodeRecord(42, r)) {
		t.Fatalf("decoded %d %+v %d", seq, stmts, n)
	}
	for i, a := range stmts[0].args {
		w := want[i]
		wb, wok := w.([]byte)
		ab, aok := a.([]byte)
		if wok != aok || (wok && (!bytes.Equal(wb, ab) || (wb == nil) != (ab == nil))) || (!wok && a != w) {
			t.Errorf("argument %d: got %#v, want %#v", i, a, w)
		}
	}
	if err := r.add("Q3", []any{struct{}{}}); err == nil {
		t.Error("an unloggable argument was accepted")
	}
}

func FuzzDecodeRecord(f *testing.F) {
	r := &recorder{}
	_ = r.add(`UPDATE nodes SET size = ?, inline = ? WHERE ino = ?`, []any{int64(3), []byte("abc"), int64(9)})
	_ = r.add(`DELETE FROM nodes WHERE ino = ?`, []any{nil, 1.5, true, "s", []byte(nil)})
	f.Add(encodeRecord(7, r))
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		seq, stmts, n, err := decodeRecord(b)
		if err != nil {
			return
		}
		if n > len(b) || n < 8 {
			t.Fatalf("consumed %d of %d bytes", n, len(b))
		}
		// What decodes re-encodes to a record that decodes the same.
		r := &recorder{}
		for _, s := range stmts {
			if err := r.add(s.query, s.args); err != nil {
				t.Fatal(err)
			}
		}
		seq2, stmts2, _, err := decodeRecord(encodeRecord(seq, r))
		if err != nil || seq2 != seq || !reflect.DeepEqual(stmts, stmts2) {
			t.Fatalf("re-encoded record differs: %v\n%#v\n%#v", err, stmts, stmts2)
		}
	})
}

// Deduplication reads the committed index only: it does not wait for the
// open batch, and sees its entries once committed; LookupBlob sees them
// at once.
func TestHasCommittedBlob(t *testing.T) {
	db := openBatchedDB(t, filepath.Join(t.TempDir(), "node.db"))
	ctx := context.Background()
	id := crypto.ID{7}
	if err := db.AddBlobs(ctx, []BlobEntry{{ID: id, BlobLocation: BlobLocation{Pack: "p", Offset: 1, Length: 2}}}, false); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := db.LookupBlob(ctx, id); err != nil || !ok {
		t.Fatalf("LookupBlob in the open batch: %v %v", ok, err)
	}
	if ok, err := db.HasCommittedBlob(ctx, id); err != nil || ok {
		t.Fatalf("HasCommittedBlob before the batch commits: %v %v", ok, err)
	}
	if err := db.Flush(); err != nil {
		t.Fatal(err)
	}
	if ok, err := db.HasCommittedBlob(ctx, id); err != nil || !ok {
		t.Fatalf("HasCommittedBlob after the commit: %v %v", ok, err)
	}
}
