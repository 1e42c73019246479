package meta

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anysync/anysync/crypto"
)

var ctx = context.Background()

func openTest(t *testing.T) (*SQLite, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "meta.db")
	s, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s, path
}

func id(s string) crypto.ID { return crypto.ID(sha256.Sum256([]byte(s))) }

func hexName(s string) string { return id(s).String() }

func addUser(t *testing.T, s *SQLite, n int, quota int64) User {
	t.Helper()
	u := User{
		ID:    fmt.Sprintf("%032x", n),
		Email: fmt.Sprintf("u%d@example.org", n),
		Credentials: Credentials{
			Verifier: [32]byte{byte(n)}, Params: Params{N: 1 << 14, R: 8, P: 1, Salt: make([]byte, 16)}, MasterKeys: []byte("keys"),
		},
		BoxPublicKey: make([]byte, 32), Quota: quota, Created: time.Now(),
	}
	d := Device{ID: fmt.Sprintf("%032x", 1000+n), UserID: u.ID, Name: "d", TokenHash: [32]byte{byte(n), 1}, Created: time.Now(), LastSeen: time.Now()}
	if err := s.CreateUser(ctx, u, d); err != nil {
		t.Fatal(err)
	}
	return u
}

func storePack(t *testing.T, s *SQLite, user, name string, size int64) {
	t.Helper()
	if err := s.ReservePack(ctx, user, name, size, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.CompletePack(ctx, user, name); err != nil {
		t.Fatal(err)
	}
}

func TestMigrationsAndReopen(t *testing.T) {
	s, path := openTest(t)
	v, err := s.SchemaVersion(ctx)
	if err != nil || v != len(migrations) {
		t.Fatalf("schema version %d %v", v, err)
	}
	u := addUser(t, s, 1, 0)
	_ = s.Close()
	s2, err := OpenSQLite(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	got, err := s2.UserByEmail(ctx, u.Email)
	if err != nil || got.ID != u.ID || got.Credentials.Verifier != u.Credentials.Verifier || got.Credentials.Params.N != 1<<14 {
		t.Fatalf("user after reopen %+v %v", got, err)
	}
	var mode string
	if err := s2.db.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal mode %q %v", mode, err)
	}
	// A database from a newer server is refused, not misread.
	if _, err := s2.db.Exec(fmt.Sprintf("PRAGMA user_version = %d", len(migrations)+1)); err != nil {
		t.Fatal(err)
	}
	_ = s2.Close()
	if _, err := OpenSQLite(ctx, path); err == nil || !strings.Contains(err.Error(), "newer") {
		t.Fatalf("newer schema: %v", err)
	}
}

func TestUsersAndDevices(t *testing.T) {
	s, _ := openTest(t)
	u := addUser(t, s, 1, 0)
	if err := s.CreateUser(ctx, User{ID: "other", Email: u.Email, Credentials: u.Credentials, BoxPublicKey: u.BoxPublicKey},
		Device{ID: "x", UserID: "other"}); !errors.Is(err, ErrExists) {
		t.Fatalf("duplicate email: %v", err)
	}
	if _, err := s.UserByEmail(ctx, "nobody@example.org"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown email: %v", err)
	}
	d, err := s.DeviceByToken(ctx, [32]byte{1, 1})
	if err != nil || d.UserID != u.ID || d.UserDisabled || d.TokenHash != [32]byte{1, 1} {
		t.Fatalf("device by token %+v %v", d, err)
	}
	// The account's state comes with the device.
	if err := s.SetDisabled(ctx, u.ID, true); err != nil {
		t.Fatal(err)
	}
	if d, err := s.DeviceByToken(ctx, [32]byte{1, 1}); err != nil || !d.UserDisabled {
		t.Fatalf("device of a disabled account %+v %v", d, err)
	}
	if err := s.SetDisabled(ctx, u.ID, false); err != nil {
		t.Fatal(err)
	}
	if err := s.RevokeDevice(ctx, "someone else", d.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoke through another user: %v", err)
	}
	if err := s.RevokeDevice(ctx, u.ID, d.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.DeviceByToken(ctx, [32]byte{1, 1}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("revoked device: %v", err)
	}
	newC := Credentials{Verifier: [32]byte{9}, Params: Params{N: 1 << 15, R: 8, P: 1, Salt: make([]byte, 16)}, MasterKeys: []byte("new")}
	if err := s.UpdateCredentials(ctx, u.ID, [32]byte{8}, newC); !errors.Is(err, ErrConflict) {
		t.Fatalf("update with a stale verifier: %v", err)
	}
	if err := s.UpdateCredentials(ctx, u.ID, u.Credentials.Verifier, newC); err != nil {
		t.Fatal(err)
	}
	got, _ := s.UserByID(ctx, u.ID)
	if got.Credentials.Verifier != newC.Verifier || string(got.Credentials.MasterKeys) != "new" || got.Credentials.Params.N != 1<<15 {
		t.Fatalf("credentials %+v", got.Credentials)
	}
}

func TestCommitIsAtomic(t *testing.T) {
	s, _ := openTest(t)
	u := addUser(t, s, 1, 0)
	other := addUser(t, s, 2, 0)
	p := hexName("pack")
	storePack(t, s, u.ID, p, 100)
	storePack(t, s, other.ID, hexName("theirs"), 100)
	v1 := id("v1")
	good := IndexEntry{Blob: v1, Pack: p, Offset: 0, Length: 10}
	for _, tc := range []struct {
		label string
		c     Commit
		want  error
	}{
		{"stale head", Commit{ExpectedSeq: 1, Version: v1, Entries: []IndexEntry{good}}, ErrHeadMoved},
		{"bad second entry", Commit{Version: v1, Entries: []IndexEntry{good, {Blob: id("b"), Pack: p, Offset: 95, Length: 6}}}, ErrBadCommit},
		{"another user's pack", Commit{Version: v1, Entries: []IndexEntry{good, {Blob: id("b"), Pack: hexName("theirs"), Length: 6}}}, ErrBadCommit},
		{"unindexed version", Commit{Version: id("nope"), Entries: []IndexEntry{good}}, ErrBadCommit},
		{"wrong parent", Commit{Version: v1, Parent: id("p"), Entries: []IndexEntry{good}}, ErrBadCommit},
	} {
		if _, err := s.Commit(ctx, u.ID, tc.c); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.label, err, tc.want)
		}
	}
	if has, _ := s.HasBlobs(ctx, u.ID, []crypto.ID{v1}); has[0] {
		t.Fatal("a failed commit left an index entry")
	}
	h, err := s.Commit(ctx, u.ID, Commit{Version: v1, Entries: []IndexEntry{good}, DeviceID: "dev", Time: time.Now()})
	if err != nil || h.Seq != 1 {
		t.Fatalf("commit %+v %v", h, err)
	}
	// A pack the index uses cannot be deleted; the other user cannot see
	// it at all.
	if err := s.BeginDeletePack(ctx, u.ID, p, time.Now()); !errors.Is(err, ErrPackInUse) {
		t.Fatalf("delete referenced pack: %v", err)
	}
	if _, err := s.Pack(ctx, other.ID, p); !errors.Is(err, ErrNotFound) {
		t.Fatalf("other user's view of the pack: %v", err)
	}
}

func TestIndexSincePaging(t *testing.T) {
	s, _ := openTest(t)
	u := addUser(t, s, 1, 0)
	p := hexName("pack")
	storePack(t, s, u.ID, p, 1000)
	head := Head{}
	// Versions with 3, 0, 2 and 5 entries.
	for i, n := range []int{3, 0, 2, 5} {
		v := id(fmt.Sprintf("v%d", i))
		es := []IndexEntry{}
		for j := 0; j < n; j++ {
			blob := id(fmt.Sprintf("b%d.%d", i, j))
			if j == 0 {
				blob = v
			}
			es = append(es, IndexEntry{Blob: blob, Pack: p, Offset: uint32(j), Length: 1})
		}
		if n == 0 {
			v = id("v0") // reuses an indexed blob as its version
		}
		var err error
		head, err = s.Commit(ctx, u.ID, Commit{ExpectedSeq: head.Seq, Version: v, Parent: head.Version, Entries: es})
		if err != nil {
			t.Fatalf("commit %d: %v", i, err)
		}
	}
	var pages []string
	for after := uint64(0); ; {
		es, next, err := s.IndexSince(ctx, u.ID, after, 4)
		if err != nil {
			t.Fatal(err)
		}
		pages = append(pages, fmt.Sprintf("%d:%d", len(es), next))
		if next == after {
			break
		}
		after = next
	}
	// Whole versions per page: version 1 (3 entries; adding version 3's
	// 2 would exceed 4), then version 3 (after the empty version 2), then
	// version 4 alone though it exceeds the limit, then nothing.
	if got := strings.Join(pages, " "); got != "3:1 2:3 5:4 0:4" {
		t.Fatalf("pages %s", got)
	}
	if es, next, _ := s.IndexSince(ctx, u.ID, 9, 4); len(es) != 0 || next != 9 {
		t.Fatalf("cursor past the head: %d %d", len(es), next)
	}
}

func TestReservationsAndQuota(t *testing.T) {
	s, _ := openTest(t)
	u := addUser(t, s, 1, 1000)
	t0 := time.Now().Add(-time.Hour)
	if err := s.ReservePack(ctx, u.ID, hexName("a"), 600, t0); err != nil {
		t.Fatal(err)
	}
	// The reservation counts against the quota before the data arrives.
	if err := s.ReservePack(ctx, u.ID, hexName("b"), 500, time.Now()); !errors.Is(err, ErrQuota) {
		t.Fatalf("over quota: %v", err)
	}
	if err := s.ReservePack(ctx, u.ID, hexName("a"), 10, time.Now()); !errors.Is(err, ErrPackBusy) {
		t.Fatalf("same name twice: %v", err)
	}
	if _, err := s.Pack(ctx, u.ID, hexName("a")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("an upload in progress is visible: %v", err)
	}
	stale, err := s.StalePacks(ctx, time.Now().Add(-time.Minute))
	if err != nil || len(stale) != 1 || stale[0].Name != hexName("a") || stale[0].UserID != u.ID {
		t.Fatalf("stale %+v %v", stale, err)
	}
	if err := s.DropPack(ctx, u.ID, hexName("a")); err != nil {
		t.Fatal(err)
	}
	got, _ := s.UserByID(ctx, u.ID)
	if got.Used != 0 {
		t.Fatalf("used %d after drop", got.Used)
	}
	storePack(t, s, u.ID, hexName("b"), 500)
	if err := s.BeginDeletePack(ctx, u.ID, hexName("b"), time.Now()); err != nil {
		t.Fatal(err)
	}
	if ps, _ := s.Packs(ctx, u.ID, "", 10); len(ps) != 0 {
		t.Fatalf("a pack being deleted is listed: %+v", ps)
	}
	if err := s.RestorePack(ctx, u.ID, hexName("b")); err != nil {
		t.Fatal(err)
	}
	if ps, _ := s.Packs(ctx, u.ID, "", 10); len(ps) != 1 || ps[0].Size != 500 {
		t.Fatalf("restored pack: %+v", ps)
	}
	if err := s.SetQuota(ctx, u.ID, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.ReservePack(ctx, u.ID, hexName("c"), 1<<40, time.Now()); err != nil {
		t.Fatalf("unlimited quota: %v", err)
	}
}

func BenchmarkCommit1000Entries(b *testing.B) {
	s, err := OpenSQLite(ctx, filepath.Join(b.TempDir(), "meta.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	u := User{ID: "u", Email: "u@x.y", BoxPublicKey: make([]byte, 32), Credentials: Credentials{Params: Params{Salt: []byte{}}, MasterKeys: []byte{1}}}
	if err := s.CreateUser(ctx, u, Device{ID: "d", UserID: "u"}); err != nil {
		b.Fatal(err)
	}
	p := hexName("p")
	if err := s.ReservePack(ctx, "u", p, 1<<30, time.Now()); err != nil {
		b.Fatal(err)
	}
	if err := s.CompletePack(ctx, "u", p); err != nil {
		b.Fatal(err)
	}
	head := Head{}
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		es := make([]IndexEntry, 1000)
		for j := range es {
			es[j] = IndexEntry{Blob: id(fmt.Sprintf("%d.%d", i, j)), Pack: p, Offset: uint32(j), Length: 1}
		}
		head, err = s.Commit(ctx, "u", Commit{ExpectedSeq: head.Seq, Version: es[0].Blob, Parent: head.Version, Entries: es})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*1000), "ns/entry")
}
