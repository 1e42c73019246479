package integration

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/remote"
)

// Two users, each from their own client, against one real server process:
// they commit, each sees only its own heads through Watch, and after the
// server restarts everything is still there.
func TestServerTwoUsersWatchAndRestart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	d := initServer(t)
	p := d.start(t)

	alice := d.signUp(t, "alice@example.org")
	bob := d.signUp(t, "bob@example.org")
	alice2 := d.login(t, alice) // Alice's second device watches
	bob2 := d.login(t, bob)

	aw, err := alice2.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	bw, err := bob2.Watch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if h := nextHead(t, aw); h.Seq != 0 {
		t.Fatalf("alice's first head %+v", h)
	}
	if h := nextHead(t, bw); h.Seq != 0 {
		t.Fatalf("bob's first head %+v", h)
	}

	a1, alicePack := commit(t, alice.c, remote.Head{}, "alice-1")
	if h := nextHead(t, aw); h != a1 {
		t.Fatalf("alice watched %+v, want %+v", h, a1)
	}
	b1, _ := commit(t, bob.c, remote.Head{}, "bob-1")
	b2, _ := commit(t, bob.c, b1, "bob-2")
	for h := nextHead(t, bw); h != b2; h = nextHead(t, bw) {
		if h != b1 {
			t.Fatalf("bob watched %+v", h)
		}
	}
	a2, _ := commit(t, alice.c, a1, "alice-2")
	// Alice's watcher sees her second commit next: none of Bob's heads
	// came in between.
	if h := nextHead(t, aw); h != a2 {
		t.Fatalf("alice watched %+v, want %+v", h, a2)
	}

	// Restart the server process.
	p.stop(t)
	p = d.start(t)

	// Tokens, heads, versions, index and packs survived; the watchers
	// reconnected on their own.
	if h, err := alice.c.Head(ctx); err != nil || h != a2 {
		t.Fatalf("alice's head after restart %+v %v", h, err)
	}
	if h, err := bob.c.Head(ctx); err != nil || h != b2 {
		t.Fatalf("bob's head after restart %+v %v", h, err)
	}
	vs, err := alice.c.ListVersions(ctx, 0, 0)
	if err != nil || len(vs) != 2 || vs[1].Parent != a1.Version {
		t.Fatalf("alice's versions after restart %+v %v", vs, err)
	}
	es, next, err := alice.c.IndexSince(ctx, 0, 0)
	if err != nil || len(es) != 2 || next != 2 || es[0].Pack != alicePack {
		t.Fatalf("alice's index after restart %+v %d %v", es, next, err)
	}
	data, err := alice.c.DownloadRange(ctx, alicePack, 0, -1)
	if err != nil || string(data) != strings.Repeat("alice-1", 64) {
		t.Fatalf("alice's pack after restart: %q %v", data, err)
	}
	a3, _ := commit(t, alice.c, a2, "alice-3")
	for h := nextHead(t, aw); h != a3; h = nextHead(t, aw) {
		if h != a2 {
			t.Fatalf("alice watched %+v after restart", h)
		}
	}
	b3, _ := commit(t, bob.c, b2, "bob-3")
	for h := nextHead(t, bw); h != b3; h = nextHead(t, bw) {
		if h != b2 {
			t.Fatalf("bob watched %+v after restart", h)
		}
	}

	// The request log names no email and no token.
	p.stop(t)
	log := p.log.String()
	if !strings.Contains(log, "method=CommitVersion") {
		t.Fatalf("no request log lines:\n%s", log)
	}
	for _, secret := range []string{alice.email, bob.email, "alice", base64.StdEncoding.EncodeToString(alice.session.Token)} {
		if strings.Contains(log, secret) {
			t.Errorf("server log contains %q", secret)
		}
	}
}

func TestServerAdminCLI(t *testing.T) {
	ctx := context.Background()
	d := initServer(t)
	d.start(t)
	u := d.signUp(t, "carol@example.org")
	data := bytes.Repeat([]byte("x"), 3000)
	if err := u.c.UploadPack(ctx, packName(data), data); err != nil {
		t.Fatal(err)
	}
	if out, err := serverCLI(t, "user", "quota", "Carol@example.org", "4K", "--data", d.dir); err != nil {
		t.Fatalf("user quota: %v\n%s", err, out)
	}
	more := bytes.Repeat([]byte("y"), 2000)
	err := u.c.UploadPack(ctx, packName(more), more)
	if !errors.Is(err, remote.ErrQuota) {
		t.Fatalf("upload over quota: %v", err)
	}
	out, err := serverCLI(t, "user", "list", "--data", d.dir)
	if err != nil || !strings.Contains(out, "carol@example.org") || !strings.Contains(out, "4.0KiB") || !strings.Contains(out, "active") {
		t.Fatalf("user list: %v\n%s", err, out)
	}
	if out, err := serverCLI(t, "user", "disable", "carol@example.org", "--data", d.dir); err != nil {
		t.Fatalf("user disable: %v\n%s", err, out)
	}
	if _, err := u.c.Head(ctx); !errors.Is(err, remote.ErrAccountDisabled) {
		t.Fatalf("disabled user's call: %v", err)
	}
	if out, err := serverCLI(t, "user", "disable", "nobody@example.org", "--data", d.dir); err == nil {
		t.Fatalf("disabling an unknown user succeeded:\n%s", out)
	}
	out, err = serverCLI(t, "fingerprint", "--data", d.dir)
	if err != nil || strings.TrimSpace(out) != d.fingerprint {
		t.Fatalf("fingerprint: %v %q", err, out)
	}
	if out, err := serverCLI(t, "init", "--data", d.dir); err == nil || !strings.Contains(out, "already initialised") {
		t.Fatalf("second init: %v\n%s", err, out)
	}
	fp, err := remote.FetchFingerprint(ctx, d.addr)
	if err != nil || fp != d.fingerprint {
		t.Fatalf("served fingerprint %s %v, init printed %s", fp, err, d.fingerprint)
	}
}

// The version blob a commit points at must be stored.
func TestServerHeadNeverPointsAtMissingData(t *testing.T) {
	ctx := context.Background()
	d := initServer(t)
	d.start(t)
	u := d.signUp(t, "dave@example.org")
	v := blobID("v")
	_, err := u.c.Commit(ctx, remote.CommitRequest{Version: v, Entries: []remote.IndexEntry{{ID: v, Pack: packName([]byte("never uploaded")), Length: 4}}})
	if !errors.Is(err, remote.ErrBadCommit) {
		t.Fatalf("commit into a missing pack: %v", err)
	}
	if h, _ := u.c.Head(ctx); h.Seq != 0 {
		t.Fatalf("head moved to %+v", h)
	}
	if has, _ := u.c.HasBlobs(ctx, []crypto.ID{v}); has[0] {
		t.Fatal("index entry of a refused commit")
	}
}
