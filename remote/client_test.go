package remote_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/remote"
	"github.com/anysync/anysync/remote/remotetest"
	"github.com/anysync/anysync/store/objstore"
)

var ctx = context.Background()

// packName names test data the way a pack store might: by its hash.
func packName(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func blobID(s string) crypto.ID {
	return crypto.ID(sha256.Sum256([]byte(s)))
}

// commitPack uploads a pack holding one version blob and commits it.
func commitPack(t *testing.T, c *remote.Client, seq uint64, parent crypto.ID, label string) (remote.Head, string, crypto.ID) {
	t.Helper()
	data := []byte("pack of " + label + strings.Repeat(".", 100))
	name := packName(data)
	if err := c.UploadPack(ctx, name, data); err != nil {
		t.Fatalf("upload %s: %v", label, err)
	}
	v := blobID("version " + label)
	h, err := c.Commit(ctx, remote.CommitRequest{
		ExpectedSeq: seq, Version: v, Parent: parent,
		Entries: []remote.IndexEntry{{ID: v, Pack: name, Offset: 0, Length: 10}, {ID: blobID("tree " + label), Pack: name, Offset: 10, Length: 20}},
	})
	if err != nil {
		t.Fatalf("commit %s: %v", label, err)
	}
	return h, name, v
}

func TestSignupLoginPreLogin(t *testing.T) {
	srv := remotetest.Start(t)
	a := srv.SignUp(t, "Alice@Example.org")
	if len(a.Session.Token) != 32 || len(a.Session.UserID) != 32 || len(a.Session.DeviceID) != 32 {
		t.Fatalf("session %+v", a.Session)
	}
	if !bytes.Equal(a.Session.MasterKeys, a.MasterKeys) {
		t.Fatal("signup did not echo master.keys")
	}
	c := srv.Dial(t)
	// Emails are case-insensitive and trimmed.
	p, err := c.PreLogin(ctx, "  alice@example.ORG ")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(p.Salt, a.Params.Salt) || p.N != a.Params.N || p.R != a.Params.R || p.P != a.Params.P {
		t.Fatalf("prelogin %+v, want %+v", p, a.Params)
	}
	s, err := c.Login(ctx, remote.LoginRequest{Email: "alice@example.org", Proof: a.Proof, DeviceName: "laptop"})
	if err != nil {
		t.Fatal(err)
	}
	if s.UserID != a.Session.UserID || s.DeviceID == a.Session.DeviceID || bytes.Equal(s.Token, a.Session.Token) {
		t.Fatalf("login session %+v vs signup %+v", s, a.Session)
	}
	if !bytes.Equal(s.MasterKeys, a.MasterKeys) {
		t.Fatal("login returned other master.keys")
	}
	ds, err := c.WithToken(s.Token).Devices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 {
		t.Fatalf("%d devices, want 2", len(ds))
	}
	current := 0
	for _, d := range ds {
		if d.Current {
			current++
			if d.ID != s.DeviceID || d.Name != "laptop" || d.ClientVersion != remote.DefaultClientVersion {
				t.Fatalf("current device %+v", d)
			}
		}
	}
	if current != 1 {
		t.Fatalf("%d current devices", current)
	}
	// A second sign-up with the same email is refused.
	_, err = c.Signup(ctx, remote.SignupRequest{Email: "ALICE@example.org", Proof: a.Proof, Params: a.Params, MasterKeys: a.MasterKeys})
	if !errors.Is(err, remote.ErrAccountExists) {
		t.Fatalf("second signup: %v", err)
	}
}

func TestVersionsAndIndex(t *testing.T) {
	srv := remotetest.Start(t)
	c := srv.SignUp(t, "").Client
	h, err := c.Head(ctx)
	if err != nil || h != (remote.Head{}) {
		t.Fatalf("empty head %+v %v", h, err)
	}
	h1, pack1, v1 := commitPack(t, c, 0, crypto.ID{}, "one")
	if h1.Seq != 1 || h1.Version != v1 {
		t.Fatalf("head after first commit %+v", h1)
	}
	h2, pack2, v2 := commitPack(t, c, 1, v1, "two")
	if h2.Seq != 2 || h2.Version != v2 {
		t.Fatalf("head after second commit %+v", h2)
	}
	// A third version without new packs: its version blob is in pack 2.
	h3, err := c.Commit(ctx, remote.CommitRequest{ExpectedSeq: 2, Version: v1, Parent: v2})
	if err != nil || h3.Seq != 3 {
		t.Fatalf("entry-less commit: %+v %v", h3, err)
	}
	// A stale head is a typed error.
	_, err = c.Commit(ctx, remote.CommitRequest{ExpectedSeq: 1, Version: v2, Parent: v1})
	if !errors.Is(err, remote.ErrHeadMoved) {
		t.Fatalf("stale commit: %v", err)
	}
	vs, err := c.ListVersions(ctx, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 3 || vs[0].Version != v1 || !vs[0].Parent.IsZero() || vs[1].Parent != v1 || vs[2].Seq != 3 {
		t.Fatalf("versions %+v", vs)
	}
	ds, _ := c.Devices(ctx)
	if vs[0].DeviceID != ds[0].ID || time.Since(vs[0].Time) > time.Hour {
		t.Fatalf("version metadata %+v", vs[0])
	}
	page, err := c.ListVersions(ctx, 1, 1)
	if err != nil || len(page) != 1 || page[0].Seq != 2 {
		t.Fatalf("paged versions %+v %v", page, err)
	}
	// The index: whole versions per page, cursor at the head at the end.
	es, next, err := c.IndexSince(ctx, 0, 1)
	if err != nil || len(es) != 2 || next != 1 || es[0].Pack != pack1 || es[0].ID != v1 {
		t.Fatalf("index page 1: %+v next %d %v", es, next, err)
	}
	es, next, err = c.IndexSince(ctx, next, 1000)
	if err != nil || len(es) != 2 || next != 3 || es[1].Pack != pack2 || es[1].Offset != 10 || es[1].Length != 20 {
		t.Fatalf("index page 2: %+v next %d %v", es, next, err)
	}
	es, next, err = c.IndexSince(ctx, 3, 1000)
	if err != nil || len(es) != 0 || next != 3 {
		t.Fatalf("index at head: %+v next %d %v", es, next, err)
	}
	has, err := c.HasBlobs(ctx, []crypto.ID{v1, blobID("nope"), blobID("tree two"), v1})
	if err != nil || fmt.Sprint(has) != "[true false true true]" {
		t.Fatalf("has blobs %v %v", has, err)
	}
}

func TestCommitRefusesDataNotStored(t *testing.T) {
	srv := remotetest.Start(t)
	c := srv.SignUp(t, "").Client
	data := bytes.Repeat([]byte{7}, 100)
	name := packName(data)
	if err := c.UploadPack(ctx, name, data); err != nil {
		t.Fatal(err)
	}
	v := blobID("v")
	for _, tc := range []struct {
		label string
		req   remote.CommitRequest
	}{
		{"unknown pack", remote.CommitRequest{Version: v, Entries: []remote.IndexEntry{{ID: v, Pack: packName([]byte("x")), Length: 1}}}},
		{"past the end", remote.CommitRequest{Version: v, Entries: []remote.IndexEntry{{ID: v, Pack: name, Offset: 90, Length: 11}}}},
		{"version not indexed", remote.CommitRequest{Version: v, Entries: []remote.IndexEntry{{ID: blobID("other"), Pack: name, Length: 5}}}},
		{"parent is not the head", remote.CommitRequest{ExpectedSeq: 0, Version: v, Parent: blobID("p"), Entries: []remote.IndexEntry{{ID: v, Pack: name, Length: 5}}}},
	} {
		_, err := c.Commit(ctx, tc.req)
		if !errors.Is(err, remote.ErrBadCommit) && !errors.Is(err, remote.ErrInvalid) {
			t.Errorf("%s: %v", tc.label, err)
		}
	}
	if h, _ := c.Head(ctx); h.Seq != 0 {
		t.Fatalf("a refused commit moved the head to %d", h.Seq)
	}
	if has, _ := c.HasBlobs(ctx, []crypto.ID{v, blobID("other")}); has[0] || has[1] {
		t.Fatal("a refused commit left index entries")
	}
}

func TestPacks(t *testing.T) {
	srv := remotetest.Start(t)
	c := srv.SignUp(t, "").Client
	big := make([]byte, 3<<20+12345) // several upload chunks
	for i := range big {
		big[i] = byte(i * 7)
	}
	name := packName(big)
	if err := c.UploadPack(ctx, name, big); err != nil {
		t.Fatal(err)
	}
	got, err := c.DownloadRange(ctx, name, 1<<20-5, 2<<20)
	if err != nil || !bytes.Equal(got, big[1<<20-5:3<<20-5]) {
		t.Fatalf("range: %d bytes, %v", len(got), err)
	}
	got, err = c.DownloadRange(ctx, name, 100, -1)
	if err != nil || !bytes.Equal(got, big[100:]) {
		t.Fatalf("range to end: %d bytes, %v", len(got), err)
	}
	if _, err := c.DownloadRange(ctx, name, int64(len(big))-1, 2); !errors.Is(err, remote.ErrOutOfRange) {
		t.Fatalf("range past end: %v", err)
	}
	if _, err := c.DownloadRange(ctx, packName([]byte("none")), 0, 1); !errors.Is(err, remote.ErrNotFound) {
		t.Fatalf("missing pack: %v", err)
	}
	// Uploading the same pack again is a retry, not an error; another size
	// under the same name is refused.
	if err := c.UploadPack(ctx, name, big); err != nil {
		t.Fatalf("re-upload: %v", err)
	}
	if err := c.UploadPack(ctx, name, big[:10]); !errors.Is(err, remote.ErrPackExists) {
		t.Fatalf("re-upload with another size: %v", err)
	}
	info, err := c.StatPack(ctx, name)
	if err != nil || info.Size != int64(len(big)) {
		t.Fatalf("stat %+v %v", info, err)
	}
	used, quota, err := c.Usage(ctx)
	if err != nil || used != int64(len(big)) || quota != 0 {
		t.Fatalf("usage %d %d %v", used, quota, err)
	}
	small := []byte("small pack")
	if err := c.UploadPack(ctx, packName(small), small); err != nil {
		t.Fatal(err)
	}
	list, err := c.ListPacks(ctx, "", 0)
	if err != nil || len(list) != 2 || list[0].Name >= list[1].Name {
		t.Fatalf("list %+v %v", list, err)
	}
	list, err = c.ListPacks(ctx, list[0].Name, 0)
	if err != nil || len(list) != 1 {
		t.Fatalf("list after %+v %v", list, err)
	}
	// A pack the index refers to cannot be deleted; another can.
	v := blobID("v")
	if _, err := c.Commit(ctx, remote.CommitRequest{Version: v, Entries: []remote.IndexEntry{{ID: v, Pack: name, Length: 9}}}); err != nil {
		t.Fatal(err)
	}
	if err := c.DeletePack(ctx, name); !errors.Is(err, remote.ErrPackInUse) {
		t.Fatalf("delete referenced pack: %v", err)
	}
	if err := c.DeletePack(ctx, packName(small)); err != nil {
		t.Fatal(err)
	}
	if err := c.DeletePack(ctx, packName(small)); !errors.Is(err, remote.ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	if used, _, _ := c.Usage(ctx); used != int64(len(big)) {
		t.Fatalf("usage after delete %d", used)
	}
	n := 0
	_ = srv.Objects.List(ctx, func(objstore.ObjectInfo) error { n++; return nil })
	if n != 1 {
		t.Fatalf("%d objects in storage, want 1", n)
	}
}

func TestPackStore(t *testing.T) {
	srv := remotetest.Start(t)
	st := remote.NewPackStore(srv.SignUp(t, "").Client)
	data := []byte("some pack bytes")
	name := packName(data)
	if err := st.Put(ctx, name, bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, packName(nil), bytes.NewReader(data), int64(len(data))+1); !errors.Is(err, objstore.ErrSizeMismatch) {
		t.Fatalf("short reader: %v", err)
	}
	if err := st.Put(ctx, "notapack", bytes.NewReader(data), int64(len(data))); !errors.Is(err, objstore.ErrInvalidName) {
		t.Fatalf("bad name: %v", err)
	}
	rc, err := st.GetRange(ctx, name, 5, 4)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(rc)
	_ = rc.Close()
	if buf.String() != "pack" {
		t.Fatalf("range %q", buf.String())
	}
	// A range is handed over whole (the chunk fetch decrypts it in
	// place): the caller's changes reach no one else.
	for range 2 {
		rc, err := st.GetRange(ctx, name, 5, 4)
		if err != nil {
			t.Fatal(err)
		}
		br, ok := rc.(*objstore.BytesReader)
		if !ok || string(br.Unread()) != "pack" {
			t.Fatalf("GetRange returned %T, not the range's bytes to keep", rc)
		}
		copy(br.Unread(), "XXXX")
	}
	if _, err := st.GetRange(ctx, name, 10, 100); !errors.Is(err, objstore.ErrOutOfRange) {
		t.Fatalf("range past end: %v", err)
	}
	if _, err := st.Stat(ctx, packName(nil)); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("stat missing: %v", err)
	}
	info, err := st.Stat(ctx, name)
	if err != nil || info.Size != int64(len(data)) {
		t.Fatalf("stat %+v %v", info, err)
	}
	var names []string
	if err := st.List(ctx, func(o objstore.ObjectInfo) error { names = append(names, o.Name); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0] != name {
		t.Fatalf("list %v", names)
	}
	if err := st.Delete(ctx, name); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, name); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("delete missing: %v", err)
	}
}

func TestWatch(t *testing.T) {
	srv := remotetest.Start(t)
	a := srv.SignUp(t, "")
	// A second device of the same account watches.
	s2, err := srv.Dial(t).Login(ctx, remote.LoginRequest{Email: a.Email, Proof: a.Proof, DeviceName: "second"})
	if err != nil {
		t.Fatal(err)
	}
	watcher := srv.Dial(t).WithToken(s2.Token)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := watcher.Watch(wctx)
	if err != nil {
		t.Fatal(err)
	}
	if h := <-ch; h.Seq != 0 {
		t.Fatalf("first head %+v", h)
	}
	// Another account's commits are not seen.
	other := srv.SignUp(t, "")
	commitPack(t, other.Client, 0, crypto.ID{}, "other")
	h1, _, v1 := commitPack(t, a.Client, 0, crypto.ID{}, "one")
	if h := <-ch; h != h1 {
		t.Fatalf("watched %+v, want %+v", h, h1)
	}
	h2, _, _ := commitPack(t, a.Client, 1, v1, "two")
	if h := <-ch; h != h2 {
		t.Fatalf("watched %+v, want %+v", h, h2)
	}
	// Revoking the watching device ends its stream.
	if err := a.Client.RevokeDevice(ctx, s2.DeviceID); err != nil {
		t.Fatal(err)
	}
	for h := range ch {
		t.Fatalf("head %+v after revocation", h)
	}
	if _, err := watcher.Head(ctx); !errors.Is(err, remote.ErrUnauthenticated) {
		t.Fatalf("revoked watcher: %v", err)
	}
	cancel()
}

func TestWatchReconnectsAfterRestart(t *testing.T) {
	srv := remotetest.Start(t)
	a := srv.SignUp(t, "")
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := a.Client.Watch(wctx)
	if err != nil {
		t.Fatal(err)
	}
	<-ch
	srv.Restart(t)
	// The client reconnects by itself and sees commits made afterwards.
	h1, _, _ := commitPack(t, a.Client, 0, crypto.ID{}, "after restart")
	for h := range ch {
		if h == h1 {
			cancel()
			for range ch {
			}
			return
		}
		if h.Seq != 0 {
			t.Fatalf("unexpected head %+v", h)
		}
	}
	t.Fatal("watch channel closed before the new head arrived")
}

func TestChangePassword(t *testing.T) {
	srv := remotetest.Start(t)
	a := srv.SignUp(t, "")
	p2, _ := crypto.NewScryptParams()
	proof2 := remotetest.RandomBytes(t, 32)
	keys2 := remotetest.RandomBytes(t, 300)
	err := a.Client.ChangePassword(ctx, remote.ChangePasswordRequest{OldProof: proof2, NewProof: proof2, NewParams: p2, NewMasterKeys: keys2})
	if !errors.Is(err, remote.ErrWrongPassword) {
		t.Fatalf("wrong old proof: %v", err)
	}
	req := remote.ChangePasswordRequest{OldProof: a.Proof, NewProof: proof2, NewParams: p2, NewMasterKeys: keys2}
	if err := a.Client.ChangePassword(ctx, req); err != nil {
		t.Fatal(err)
	}
	// A retry whose first answer was lost succeeds.
	if err := a.Client.ChangePassword(ctx, req); err != nil {
		t.Fatalf("repeated change: %v", err)
	}
	c := srv.Dial(t)
	if _, err := c.Login(ctx, remote.LoginRequest{Email: a.Email, Proof: a.Proof}); !errors.Is(err, remote.ErrWrongPassword) {
		t.Fatalf("old proof after change: %v", err)
	}
	s, err := c.Login(ctx, remote.LoginRequest{Email: a.Email, Proof: proof2})
	if err != nil || !bytes.Equal(s.MasterKeys, keys2) {
		t.Fatalf("new proof: %v", err)
	}
	p, _ := c.PreLogin(ctx, a.Email)
	if !bytes.Equal(p.Salt, p2.Salt) {
		t.Fatal("prelogin did not return the new salt")
	}
	// The device tokens stay valid.
	if _, err := a.Client.Head(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestQuota(t *testing.T) {
	srv := remotetest.Start(t, func(c *remotetest.Config) { c.Options.DefaultQuota = 1000 })
	c := srv.SignUp(t, "").Client
	a := bytes.Repeat([]byte{1}, 600)
	if err := c.UploadPack(ctx, packName(a), a); err != nil {
		t.Fatal(err)
	}
	b := bytes.Repeat([]byte{2}, 500)
	err := c.UploadPack(ctx, packName(b), b)
	if !errors.Is(err, remote.ErrQuota) || !strings.Contains(err.Error(), "quota") {
		t.Fatalf("upload over quota: %v", err)
	}
	used, quota, _ := c.Usage(ctx)
	if used != 600 || quota != 1000 {
		t.Fatalf("usage %d/%d", used, quota)
	}
	// Deleting frees the space.
	if err := c.DeletePack(ctx, packName(a)); err != nil {
		t.Fatal(err)
	}
	if err := c.UploadPack(ctx, packName(b), b); err != nil {
		t.Fatalf("upload after delete: %v", err)
	}
}

func TestCAFile(t *testing.T) {
	srv := remotetest.Start(t)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, srv.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	c := srv.Dial(t, remote.WithCAFile(ca))
	if _, err := c.PreLogin(ctx, "x@y.z"); err != nil {
		t.Fatalf("CA-verified call: %v", err)
	}
	other := remotetest.Start(t)
	bad := filepath.Join(t.TempDir(), "other.pem")
	_ = os.WriteFile(bad, other.CertPEM, 0o600)
	if _, err := remote.Dial(ctx, srv.Addr, "", remote.WithCAFile(bad)); !errors.Is(err, remote.ErrUntrustedCertificate) {
		t.Fatalf("a certificate from another CA: %v", err)
	}
	// The right CA but an address the certificate does not name.
	elsewhere := remotetest.Start(t, func(c *remotetest.Config) { c.Addr = "127.0.0.2:0" })
	_ = os.WriteFile(ca, elsewhere.CertPEM, 0o600)
	if _, err := remote.Dial(ctx, elsewhere.Addr, "", remote.WithCAFile(ca)); !errors.Is(err, remote.ErrUntrustedCertificate) {
		t.Fatalf("an address the certificate does not cover: %v", err)
	}
}

func TestUnreachableServer(t *testing.T) {
	srv := remotetest.Start(t)
	addr, fp := srv.Addr, srv.Fingerprint
	srv.Stop()
	// Dial does not fail offline; calls fail with ErrUnavailable after
	// their retries.
	c, err := remote.Dial(ctx, addr, fp, remote.WithRetry(3, time.Millisecond, 5*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.PreLogin(ctx, "a@b.c"); !errors.Is(err, remote.ErrUnavailable) {
		t.Fatalf("offline call: %v", err)
	}
}

// A pack given as pieces (a pack writer's blobs, unjoined) is stored as
// the pieces joined, whatever their sizes against the upload messages'.
func TestPackStorePieces(t *testing.T) {
	srv := remotetest.Start(t)
	st := remote.NewPackStore(srv.SignUp(t, "").Client)
	var pieces [][]byte
	var joined []byte
	for i, n := range []int{5, 1 << 20, 0, 700 << 10, 1<<20 - 5, 3, 2<<20 + 11} {
		p := bytes.Repeat([]byte{byte(i + 1)}, n)
		pieces = append(pieces, p)
		joined = append(joined, p...)
	}
	name := packName(joined)
	if err := st.Put(ctx, name, objstore.NewPiecesReader(pieces), int64(len(joined))); err != nil {
		t.Fatal(err)
	}
	rc, err := st.GetRange(ctx, name, 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	_, _ = got.ReadFrom(rc)
	_ = rc.Close()
	if !bytes.Equal(got.Bytes(), joined) {
		t.Fatalf("stored %d bytes, not the %d of the pieces joined", got.Len(), len(joined))
	}
	if err := st.Put(ctx, packName(nil), objstore.NewPiecesReader(pieces), int64(len(joined))+1); !errors.Is(err, objstore.ErrSizeMismatch) {
		t.Fatalf("pieces shorter than the size: %v", err)
	}
}
