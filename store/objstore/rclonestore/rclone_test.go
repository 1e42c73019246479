package rclonestore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rclone/gofakes3"
	"github.com/rclone/gofakes3/s3mem"

	"github.com/anysync/anysync/store/objstore"
	"github.com/anysync/anysync/store/objstore/objstoretest"
	"github.com/anysync/anysync/store/objstore/rclonestore"
)

func newLocal(t testing.TB, dir string) *rclonestore.Store {
	t.Helper()
	s, err := rclonestore.New(context.Background(), dir)
	if err != nil {
		t.Fatalf("rclonestore.New(%s): %v", dir, err)
	}
	return s
}

func TestRcloneLocalConformance(t *testing.T) {
	objstoretest.Run(t, func(t *testing.T) objstore.ObjectStore { return newLocal(t, t.TempDir()) })
}

func TestRcloneLocalConnectionString(t *testing.T) {
	objstoretest.Run(t, func(t *testing.T) objstore.ObjectStore {
		return newLocal(t, ":local:"+filepath.Join(t.TempDir(), "not", "yet", "there"))
	})
}

// s3Server is an in-process S3 server on loopback with one bucket.
type s3Server struct {
	url     string
	backend *s3mem.Backend
}

func newS3Server(t testing.TB) *s3Server {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket(context.Background(), "packs"); err != nil {
		t.Fatal(err)
	}
	faker := gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog()))
	srv := httptest.NewServer(faker.Server()) // listens on 127.0.0.1
	t.Cleanup(srv.Close)
	return &s3Server{url: srv.URL, backend: backend}
}

func (s *s3Server) remote(prefix string) string {
	return fmt.Sprintf(":s3,provider=Other,endpoint='%s',access_key_id=test,secret_access_key=test,region=us-east-1,force_path_style=true:packs/%s", s.url, prefix)
}

// keys lists the bucket's raw keys, to check where objects really land.
func (s *s3Server) keys(t *testing.T) []string {
	t.Helper()
	list, err := s.backend.ListBucket(context.Background(), "packs", &gofakes3.Prefix{}, gofakes3.ListBucketPage{})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, c := range list.Contents {
		keys = append(keys, c.Key)
	}
	return keys
}

func TestRcloneS3Conformance(t *testing.T) {
	srv := newS3Server(t)
	n := 0
	objstoretest.Run(t, func(t *testing.T) objstore.ObjectStore {
		n++
		s, err := rclonestore.New(context.Background(), srv.remote(fmt.Sprintf("run%d", n)))
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestS3Layout(t *testing.T) {
	srv := newS3Server(t)
	s, err := rclonestore.New(context.Background(), srv.remote("acct/7"))
	if err != nil {
		t.Fatal(err)
	}
	objstoretest.MustPut(t, s, "abcdef", []byte("pack"))
	objstoretest.MustPut(t, s, "x", []byte("one-char name"))
	keys := strings.Join(srv.keys(t), ",")
	if keys != "acct/7/ef/abcdef,acct/7/x/x" {
		t.Errorf("bucket keys = %s", keys)
	}
}

func TestLocalLayoutAndNoTemps(t *testing.T) {
	dir := t.TempDir()
	s := newLocal(t, dir)
	objstoretest.MustPut(t, s, "abcdef", []byte("pack"))
	got, err := os.ReadFile(filepath.Join(dir, "ef", "abcdef"))
	if err != nil || string(got) != "pack" {
		t.Fatalf("sharded file: %q, %v", got, err)
	}
	// A failed upload leaves no temporary file behind.
	err = s.Put(context.Background(), "cdef", strings.NewReader("short"), 10)
	if !errors.Is(err, objstore.ErrSizeMismatch) {
		t.Fatalf("short Put = %v", err)
	}
	tmps, _ := os.ReadDir(filepath.Join(dir, ".tmp"))
	if len(tmps) != 0 {
		t.Errorf("temporary files left: %v", tmps)
	}
	if _, err := os.Stat(filepath.Join(dir, "ef", "cdef")); !os.IsNotExist(err) {
		t.Errorf("partial object exists: %v", err)
	}
}

func TestLocalListSkipsForeignFiles(t *testing.T) {
	dir := t.TempDir()
	for _, p := range []string{"README", "ab/other", "ab/AB", "abc/abcd", ".tmp/ab.123", "zz/ab"} {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := newLocal(t, dir)
	objstoretest.MustPut(t, s, "abba", []byte("real"))
	var names []string
	if err := s.List(context.Background(), func(oi objstore.ObjectInfo) error {
		names = append(names, oi.Name)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(names, ",") != "abba" {
		t.Errorf("List = %v, want only abba", names)
	}
}

func TestStaleTempsRemovedOnOpen(t *testing.T) {
	dir := t.TempDir()
	tmp := filepath.Join(dir, ".tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	old, fresh := filepath.Join(tmp, "ab.1"), filepath.Join(tmp, "cd.2")
	for _, p := range []string{old, fresh} {
		if err := os.WriteFile(p, []byte("partial"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	past := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(old, past, past); err != nil {
		t.Fatal(err)
	}
	newLocal(t, dir)
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Errorf("stale temp still there: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("recent temp (maybe another live process's) removed: %v", err)
	}
}

// A handle cached by one server process must not hide a delete done by
// another process sharing the storage.
func TestDeletedElsewhere(t *testing.T) {
	for name, remote := range map[string]func(t *testing.T) string{
		"local": func(t *testing.T) string { return t.TempDir() },
		"s3":    func(t *testing.T) string { return newS3Server(t).remote("p") },
	} {
		t.Run(name, func(t *testing.T) {
			r := remote(t)
			a, err := rclonestore.New(context.Background(), r)
			if err != nil {
				t.Fatal(err)
			}
			b, err := rclonestore.New(context.Background(), r)
			if err != nil {
				t.Fatal(err)
			}
			objstoretest.MustPut(t, a, "abcd", []byte("hello"))
			if got, err := objstoretest.ReadRange(a, "abcd", 1, 3); err != nil || string(got) != "ell" {
				t.Fatalf("read = %q, %v", got, err)
			}
			if err := b.Delete(context.Background(), "abcd"); err != nil {
				t.Fatal(err)
			}
			if _, err := objstoretest.ReadRange(a, "abcd", 1, 3); !errors.Is(err, objstore.ErrNotFound) {
				t.Errorf("read of an object deleted elsewhere = %v, want ErrNotFound", err)
			}
			objstoretest.MustPut(t, b, "abcd", []byte("again, longer"))
			if got, err := objstoretest.ReadRange(a, "abcd", 0, -1); err != nil || string(got) != "again, longer" {
				t.Errorf("read after re-put elsewhere = %q, %v", got, err)
			}
		})
	}
}

func TestNamedRemoteFromConfigFile(t *testing.T) {
	dir := t.TempDir()
	srv := newS3Server(t)
	conf := filepath.Join(dir, "rclone.conf")
	content := fmt.Sprintf(`# test config
[disk]
type = local

[store]
type = s3
provider = Other
endpoint = %s
access_key_id = test
secret_access_key = test
region = us-east-1
force_path_style = true

[dead]
type = s3
provider = Other
endpoint = http://127.0.0.1:1
access_key_id = test
secret_access_key = test
region = us-east-1
force_path_style = true
`, srv.url)
	if err := os.WriteFile(conf, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d, err := rclonestore.NewWithConfig(ctx, "disk:"+filepath.Join(dir, "packs"), conf)
	if err != nil {
		t.Fatal(err)
	}
	objstoretest.MustPut(t, d, "ab12", []byte("local"))
	if _, err := os.Stat(filepath.Join(dir, "packs", "12", "ab12")); err != nil {
		t.Errorf("named local remote did not write where expected: %v", err)
	}
	s, err := rclonestore.NewWithConfig(ctx, "store:packs/x", conf)
	if err != nil {
		t.Fatal(err)
	}
	objstoretest.MustPut(t, s, "cd34", []byte("remote"))
	if keys := strings.Join(srv.keys(t), ","); keys != "x/34/cd34" {
		t.Errorf("bucket keys = %s", keys)
	}
	// Connection-string options override the file's: the file's endpoint
	// for [dead] is a closed port.
	o, err := rclonestore.NewWithConfig(ctx, fmt.Sprintf("dead,endpoint='%s':packs/y", srv.url), conf)
	if err != nil {
		t.Fatal(err)
	}
	objstoretest.MustPut(t, o, "ef56", []byte("override"))
	if keys := strings.Join(srv.keys(t), ","); keys != "x/34/cd34,y/56/ef56" {
		t.Errorf("bucket keys = %s", keys)
	}

	if _, err := rclonestore.NewWithConfig(ctx, "nope:x", conf); !errors.Is(err, rclonestore.ErrRemoteNotConfigured) {
		t.Errorf("unknown remote = %v, want ErrRemoteNotConfigured", err)
	}
	if _, err := rclonestore.New(ctx, "disk:x"); err == nil {
		t.Error("named remote without a config file was accepted")
	}
	if _, err := rclonestore.NewWithConfig(ctx, "disk:x", filepath.Join(dir, "missing.conf")); err == nil {
		t.Error("missing config file was accepted")
	}
	enc := filepath.Join(dir, "enc.conf")
	if err := os.WriteFile(enc, []byte("# Encrypted rclone configuration File\n\nRCLONE_ENCRYPT_V0:\nabcdef"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := rclonestore.NewWithConfig(ctx, "disk:x", enc); err == nil || !strings.Contains(err.Error(), "encrypted") {
		t.Errorf("encrypted config = %v, want an error saying so", err)
	}
}

func TestOnlyLocalAndS3Backends(t *testing.T) {
	for _, remote := range []string{":sftp,host=127.0.0.1:x", ":drive:x", ":crypt:x"} {
		if _, err := rclonestore.New(context.Background(), remote); err == nil {
			t.Errorf("rclonestore.New(%s) succeeded; only local and s3 should be built in", remote)
		}
	}
}

func TestRootIsFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := rclonestore.New(context.Background(), f); err == nil {
		t.Error("a file as root was accepted")
	}
}

func TestPutReadsCallerBuffer(t *testing.T) {
	// Put must not keep the reader's buffer: changing it after Put returns
	// must not change the stored object.
	s := objstore.NewMem()
	buf := []byte("original")
	if err := s.Put(context.Background(), "buf", bytes.NewReader(buf), int64(len(buf))); err != nil {
		t.Fatal(err)
	}
	copy(buf, "XXXXXXXX")
	if got, _ := objstoretest.ReadRange(s, "buf", 0, -1); string(got) != "original" {
		t.Errorf("stored object changed with the caller's buffer: %q", got)
	}
}

func TestRcloneNoticesSilenced(t *testing.T) {
	var buf bytes.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	defer slog.SetDefault(old)
	s := newLocal(t, t.TempDir())
	// rclone's local backend logs a notice when it removes a partial file.
	_ = s.Put(context.Background(), "abc", strings.NewReader("short"), 100)
	if buf.Len() != 0 {
		t.Errorf("rclone logged: %s", buf.String())
	}
}

const packSize = 16 << 20

func BenchmarkLocalPut16MiB(b *testing.B) {
	s := newLocal(b, b.TempDir())
	data := objstoretest.Data(1, packSize)
	b.SetBytes(packSize)
	for i := 0; b.Loop(); i++ {
		name := fmt.Sprintf("pack%06d", i)
		if err := s.Put(context.Background(), name, bytes.NewReader(data), packSize); err != nil {
			b.Fatal(err)
		}
		// Keep the disk footprint small; the delete is not timed.
		b.StopTimer()
		if err := s.Delete(context.Background(), name); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}

func BenchmarkLocalGetRange16MiB(b *testing.B) {
	s := newLocal(b, b.TempDir())
	objstoretest.MustPut(b, s, "pack", objstoretest.Data(1, packSize))
	buf := make([]byte, 256<<10)
	b.SetBytes(packSize)
	for b.Loop() {
		rc, err := s.GetRange(context.Background(), "pack", 0, packSize)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, rc, buf); err != nil {
			b.Fatal(err)
		}
		rc.Close()
	}
}

// One blob of a pack, as the server serves a client's read.
func BenchmarkLocalGetRange1MiBOfPack(b *testing.B) {
	s := newLocal(b, b.TempDir())
	objstoretest.MustPut(b, s, "pack", objstoretest.Data(1, packSize))
	buf := make([]byte, 1<<20)
	b.SetBytes(1 << 20)
	for i := 0; b.Loop(); i++ {
		off := int64(i%15) << 20
		rc, err := s.GetRange(context.Background(), "pack", off+123, 1<<20)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(rc, buf); err != nil {
			b.Fatal(err)
		}
		rc.Close()
	}
}

func TestErrorsDoNotLeakCredentials(t *testing.T) {
	_, err := rclonestore.New(context.Background(), ":s3,secret_access_key=hunter2,provider=Nope,endpoint='http://127.0.0.1:1':b/p/"+strings.Repeat("x", 2000))
	_, err2 := rclonestore.New(context.Background(), ":nosuch,secret_access_key=hunter2:b")
	for _, e := range []error{err, err2} {
		if e != nil && strings.Contains(e.Error(), "hunter2") {
			t.Errorf("error shows the secret: %v", e)
		}
	}
	if err2 == nil {
		t.Error("unknown backend accepted")
	}
}
