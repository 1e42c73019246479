package integration

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	pb "github.com/anysync/anysync/proto/anysyncpb"
	"github.com/anysync/anysync/remote"
	"github.com/rclone/gofakes3"
	"github.com/rclone/gofakes3/s3mem"
)

// fakeS3 is an S3 server on loopback in the test process.
type fakeS3 struct {
	url     string
	backend *s3mem.Backend
}

func newFakeS3(t *testing.T, bucket string) *fakeS3 {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket(context.Background(), bucket); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog())).Server())
	t.Cleanup(srv.Close)
	return &fakeS3{url: srv.URL, backend: backend}
}

func (s *fakeS3) keys(t *testing.T, bucket string) []string {
	t.Helper()
	list, err := s.backend.ListBucket(context.Background(), bucket, &gofakes3.Prefix{}, gofakes3.ListBucketPage{})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, c := range list.Contents {
		keys = append(keys, c.Key)
	}
	return keys
}

// The server stores packs in S3 through rclone: uploads land in the
// bucket under the account's namespace, survive a restart, and a cut-off
// upload leaves no object.
func TestServerS3Storage(t *testing.T) {
	ctx := context.Background()
	s3 := newFakeS3(t, "anysync")
	storage := fmt.Sprintf(":s3,provider=Other,endpoint='%s',access_key_id=test,secret_access_key=test,"+
		"region=us-east-1,force_path_style=true:anysync/packs", s3.url)
	d := initServer(t, "--storage", storage)
	p := d.start(t)
	u := d.signUp(t, "s3user@example.org")
	h, name := commit(t, u.c, remote.Head{}, "stored-in-s3")
	big := randomBytes(t, 5<<20)
	bigName := packName(big)
	if err := u.c.UploadPack(ctx, bigName, big); err != nil {
		t.Fatal(err)
	}
	keys := s3.keys(t, "anysync")
	if len(keys) != 2 {
		t.Fatalf("bucket keys %v, want 2", keys)
	}
	for _, k := range keys {
		if !strings.HasPrefix(k, "packs/") || !strings.Contains(k, u.session.UserID) {
			t.Errorf("key %s is not under packs/ in the account's namespace", k)
		}
	}
	// Cut an upload off half way: no object appears.
	used0, _, err := u.c.Usage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	raw := pb.NewAnySyncClient(rawConn(t, d))
	sctx, cancel := context.WithCancel(authCtx(ctx, u.session.Token))
	cut := randomBytes(t, 2<<20)
	stream, err := raw.UploadPack(sctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = stream.Send(&pb.UploadPackRequest{Part: &pb.UploadPackRequest_Header{Header: &pb.UploadPackHeader{Name: packName(cut), Size: uint64(len(cut))}}})
	_ = stream.Send(&pb.UploadPackRequest{Part: &pb.UploadPackRequest_Data{Data: cut[:1<<20]}})
	waitFor(t, "upload to start", func() bool { used, _, _ := u.c.Usage(ctx); return used == used0+int64(len(cut)) })
	cancel()
	waitFor(t, "the reservation to go", func() bool { used, _, _ := u.c.Usage(ctx); return used == used0 })
	if keys := s3.keys(t, "anysync"); len(keys) != 2 {
		t.Fatalf("bucket keys after a cut-off upload %v", keys)
	}

	p.stop(t)
	d.start(t)
	if got, err := u.c.Head(ctx); err != nil || got != h {
		t.Fatalf("head after restart %+v %v", got, err)
	}
	data, err := u.c.DownloadRange(ctx, bigName, 3<<20, 1<<20)
	if err != nil || !bytes.Equal(data, big[3<<20:4<<20]) {
		t.Fatalf("range from S3 after restart: %v", err)
	}
	if err := u.c.DeletePack(ctx, bigName); err != nil {
		t.Fatal(err)
	}
	if keys := s3.keys(t, "anysync"); len(keys) != 1 || !strings.HasSuffix(keys[0], name) {
		t.Fatalf("bucket keys after delete %v", keys)
	}
}

// --storage may name a remote from an rclone config file.
func TestServerNamedRemote(t *testing.T) {
	s3 := newFakeS3(t, "named")
	conf := filepath.Join(t.TempDir(), "rclone.conf")
	err := os.WriteFile(conf, []byte(fmt.Sprintf("[fake]\ntype = s3\nprovider = Other\nendpoint = %s\n"+
		"access_key_id = test\nsecret_access_key = test\nregion = us-east-1\nforce_path_style = true\n", s3.url)), 0o600)
	if err != nil {
		t.Fatal(err)
	}
	d := initServer(t, "--storage", "fake:named/anysync", "--rclone-config", conf)
	d.start(t)
	u := d.signUp(t, "named@example.org")
	commit(t, u.c, remote.Head{}, "named-remote")
	keys := s3.keys(t, "named")
	if len(keys) != 1 || !strings.HasPrefix(keys[0], "anysync/") {
		t.Fatalf("bucket keys %v", keys)
	}
	if out, err := serverCLI(t, "init", "--data", filepath.Join(t.TempDir(), "x"), "--storage", "nosuch:bucket", "--rclone-config", conf); err == nil {
		t.Fatalf("init with an unknown remote succeeded:\n%s", out)
	}
}
