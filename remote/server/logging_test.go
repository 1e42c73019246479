package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/anysync/anysync/remote"
	"github.com/anysync/anysync/remote/remotetest"
	"github.com/anysync/anysync/store/objstore"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// brokenReads fails every range read with a storage error that names a
// host the client must not learn.
type brokenReads struct{ objstore.ObjectStore }

func (brokenReads) GetRange(context.Context, string, int64, int64) (io.ReadCloser, error) {
	return nil, errors.New("dial tcp s3.internal.example:443: connection refused")
}

func TestRequestLog(t *testing.T) {
	ctx := context.Background()
	var log lockedBuffer
	srv := remotetest.Start(t, func(c *remotetest.Config) {
		c.Options.Logger = slog.New(slog.NewTextHandler(&log, nil))
		c.Objects = brokenReads{objstore.NewMem()}
	})
	a := srv.SignUp(t, "secret.person@example.org")
	if _, err := srv.Dial(t).Login(ctx, remote.LoginRequest{Email: a.Email, Proof: make([]byte, 32)}); !errors.Is(err, remote.ErrWrongPassword) {
		t.Fatal(err)
	}
	data := []byte("pack")
	name := strings.Repeat("ab", 32)
	if err := a.Client.UploadPack(ctx, name, data); err != nil {
		t.Fatal(err)
	}
	_, err := a.Client.DownloadRange(ctx, name, 0, 4)
	if !errors.Is(err, remote.ErrServer) || strings.Contains(err.Error(), "s3.internal") {
		t.Fatalf("storage failure reached the client as %v", err)
	}
	out := log.String()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d log lines for 4 calls:\n%s", len(lines), out)
	}
	for _, want := range []string{"method=Signup", "method=Login", "code=Unauthenticated", "method=UploadPack", "bytes=4",
		"method=DownloadRange", "level=ERROR", "s3.internal.example", "user=" + a.Session.UserID} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
	for _, secret := range []string{"secret.person", "example.org", base64.StdEncoding.EncodeToString(a.Session.Token)} {
		if strings.Contains(out, secret) {
			t.Errorf("log contains %q:\n%s", secret, out)
		}
	}
}
