package server

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pb "github.com/anysync/anysync/proto/anysyncpb"
	"github.com/anysync/anysync/remote/server/meta"
	"github.com/anysync/anysync/store/objstore"
	"google.golang.org/protobuf/proto"
)

func TestNormalizeEmail(t *testing.T) {
	for in, want := range map[string]string{
		"Alice@Example.ORG":                "alice@example.org",
		"  bob@x.y\t":                      "bob@x.y",
		"émile@exämple.fr":                 "émile@exämple.fr",
		"":                                 "",
		"no-at":                            "",
		"two@@x":                           "",
		"a@b@c":                            "",
		"@x":                               "",
		"x@":                               "",
		"sp ace@x":                         "",
		"ctl\x00@x":                        "",
		"bad\xffutf8@x":                    "",
		strings.Repeat("a", 250) + "@x.yz": "",
	} {
		got, err := NormalizeEmail(in)
		if want == "" {
			if err == nil || !errors.Is(err, ErrInvalid) {
				t.Errorf("%q: accepted as %q", in, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("%q: %q %v, want %q", in, got, err, want)
		}
	}
}

func TestParseBearer(t *testing.T) {
	tok := bytes.Repeat([]byte{7}, 32)
	enc := base64.StdEncoding.EncodeToString(tok)
	for _, v := range []string{"Bearer " + enc, "bearer " + enc, "BEARER  " + enc + " "} {
		got, err := ParseBearer(v)
		if err != nil || !bytes.Equal(got, tok) {
			t.Errorf("%q: %v", v, err)
		}
	}
	for _, v := range []string{"", "Bearer", enc, "Basic " + enc, "Bearer " + enc[:40], "Bearer " + base64.StdEncoding.EncodeToString(tok[:31]),
		"Bearer " + base64.RawStdEncoding.EncodeToString(tok) + "!", "Bearer " + base64.StdEncoding.EncodeToString(append(tok, 1))} {
		if _, err := ParseBearer(v); err == nil {
			t.Errorf("%q accepted", v)
		}
	}
}

func TestParseConfig(t *testing.T) {
	cfg, err := ParseConfig([]byte(`{"listen": "0.0.0.0:443", "storage": ":s3:bucket", "default_quota": 1024}`))
	if err != nil || cfg.Listen != "0.0.0.0:443" || cfg.Storage != ":s3:bucket" || cfg.DefaultQuota != 1024 {
		t.Fatalf("%+v %v", cfg, err)
	}
	cfg, err = ParseConfig([]byte(`{}`))
	if err != nil || cfg.Listen != DefaultListen {
		t.Fatalf("defaults %+v %v", cfg, err)
	}
	for _, bad := range []string{``, `{"listen": 5}`, `{"lisen": "x:1"}`, `{"listen": "nohostport"}`, `{"default_quota": -1}`, `{} {}`} {
		if _, err := ParseConfig([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// fakeUpload replays messages, then io.EOF.
type fakeUpload struct{ msgs []*pb.UploadPackRequest }

func (f *fakeUpload) Recv() (*pb.UploadPackRequest, error) {
	if len(f.msgs) == 0 {
		return nil, io.EOF
	}
	m := f.msgs[0]
	f.msgs = f.msgs[1:]
	return m, nil
}

func dataMsg(b []byte) *pb.UploadPackRequest {
	return &pb.UploadPackRequest{Part: &pb.UploadPackRequest_Data{Data: b}}
}

// readUpload consumes an upload the way an object store does, then checks
// its end.
func readUpload(r *uploadReader) ([]byte, error) {
	var out bytes.Buffer
	buf := make([]byte, 7)
	for {
		n, err := r.Read(buf)
		out.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
	}
	return out.Bytes(), r.finish()
}

// readUploadChunks consumes an upload the way rclone's local backend does,
// a whole message per write (objstore.ExactReader.WriteTo), then checks its
// end.
func readUploadChunks(r *uploadReader) ([]byte, error) {
	var out bytes.Buffer
	if _, err := objstore.NewExactReader(context.Background(), r, r.remaining).WriteTo(&out); err != nil {
		return nil, err
	}
	return out.Bytes(), r.finish()
}

// uploadReaders are the ways an object store consumes an upload.
var uploadReaders = map[string]func(*uploadReader) ([]byte, error){"read": readUpload, "chunks": readUploadChunks}

func TestUploadReader(t *testing.T) {
	for _, tc := range []struct {
		label string
		size  int64
		msgs  []*pb.UploadPackRequest
		ok    bool
	}{
		{"exact", 6, []*pb.UploadPackRequest{dataMsg([]byte("abc")), dataMsg([]byte("def"))}, true},
		{"short", 7, []*pb.UploadPackRequest{dataMsg([]byte("abc")), dataMsg([]byte("def"))}, false},
		{"long", 5, []*pb.UploadPackRequest{dataMsg([]byte("abc")), dataMsg([]byte("def"))}, false},
		{"empty message", 3, []*pb.UploadPackRequest{dataMsg(nil), dataMsg([]byte("abc"))}, false},
		{"second header", 3, []*pb.UploadPackRequest{{Part: &pb.UploadPackRequest_Header{}}, dataMsg([]byte("abc"))}, false},
		{"oversized message", pb.MaxUploadChunk + 1, []*pb.UploadPackRequest{dataMsg(make([]byte, pb.MaxUploadChunk+1))}, false},
	} {
		for how, read := range uploadReaders {
			got, err := read(&uploadReader{stream: &fakeUpload{msgs: tc.msgs}, remaining: tc.size})
			if tc.ok != (err == nil) {
				t.Errorf("%s, %s: %v", tc.label, how, err)
			}
			if err != nil && !errors.Is(err, errUploadData) {
				t.Errorf("%s, %s: %v is not a bad-upload error", tc.label, how, err)
			}
			if tc.ok && string(got) != "abcdef" {
				t.Errorf("%s, %s: read %q", tc.label, how, got)
			}
		}
	}
}

func TestCleanupStale(t *testing.T) {
	ctx := context.Background()
	m, err := meta.OpenSQLite(ctx, filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	objects := objstore.NewMem()
	svc, err := New(m, objects, Options{Secret: bytes.Repeat([]byte{1}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	uid := strings.Repeat("a", 32)
	if err := m.CreateUser(ctx, meta.User{ID: uid, Email: "a@b.c", BoxPublicKey: make([]byte, 32),
		Credentials: meta.Credentials{Params: meta.Params{Salt: make([]byte, 16)}, MasterKeys: []byte{1}}},
		meta.Device{ID: strings.Repeat("b", 32), UserID: uid}); err != nil {
		t.Fatal(err)
	}
	name := strings.Repeat("c", 64)
	// A crash right after the object was stored, before it was marked.
	if err := m.ReservePack(ctx, uid, name, 3, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := objects.Put(ctx, storageKey(uid, name), strings.NewReader("abc"), 3); err != nil {
		t.Fatal(err)
	}
	fresh := strings.Repeat("d", 64)
	if err := m.ReservePack(ctx, uid, fresh, 3, time.Now()); err != nil {
		t.Fatal(err)
	}
	n, err := svc.CleanupStale(ctx, time.Now().Add(-time.Minute))
	if err != nil || n != 1 {
		t.Fatalf("cleaned %d, %v", n, err)
	}
	if _, err := objects.Stat(ctx, storageKey(uid, name)); !errors.Is(err, objstore.ErrNotFound) {
		t.Fatalf("stale object: %v", err)
	}
	u, _ := m.UserByID(ctx, uid)
	if u.Used != 3 {
		t.Fatalf("used %d: the fresh reservation should remain", u.Used)
	}
}

func TestValidateRoundTrip(t *testing.T) {
	// What a well-behaved client sends passes, in wire form too.
	salt := make([]byte, pb.SaltSize)
	req := &pb.SignupRequest{Email: "A@b.c", Proof: make([]byte, 32), Params: &pb.ScryptParams{N: 1 << 14, R: 8, P: 1, Salt: salt},
		MasterKeys: []byte{1}, AccountBoxPublicKey: make([]byte, 32), DeviceBoxPublicKey: make([]byte, 32), DeviceName: "laptop"}
	wire, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	var back pb.SignupRequest
	if err := proto.Unmarshal(wire, &back); err != nil {
		t.Fatal(err)
	}
	a, err := validateSignup(&back)
	if err != nil || a.email != "a@b.c" {
		t.Fatalf("%+v %v", a, err)
	}
}
