//go:build unix

package backup

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anysync/anysync/store/objstore"
	"github.com/anysync/anysync/store/repo"
)

// benchTree writes a source-like tree: 40 folders of 50 files of 2-30 KB
// of compressible text, plus a few 1-3 MB files of random bytes.
func benchTree(b *testing.B) (string, int64) {
	b.Helper()
	dir := b.TempDir()
	var total int64
	line := "func example(x int) int { return x*x + 42 } // some source-like text\n"
	for d := range 40 {
		for f := range 50 {
			n := 2<<10 + (d*50+f)*97%(28<<10)
			body := fmt.Sprintf("// file %d/%d\n", d, f) + strings.Repeat(line, n/len(line))
			p := filepath.Join(dir, fmt.Sprintf("pkg%02d", d), fmt.Sprintf("f%02d.go", f))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				b.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
				b.Fatal(err)
			}
			total += int64(len(body))
		}
	}
	for i := range 4 {
		data := randomBytes((1+i%3)<<20, uint64(i))
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("blob%d.bin", i)), data, 0o644); err != nil {
			b.Fatal(err)
		}
		total += int64(len(data))
	}
	settle()
	return dir, total
}

// benchAccount is a fresh account in memory with the format's default
// chunk and pack sizes.
func benchAccount() *Account {
	remote := newMemRemote()
	d := &device{remote: remote, index: repo.NewMemIndex()}
	return &Account{Keys: testKeys(), Objects: objstore.NewMem(), Index: d.index, Remote: deviceRemote{remote, d}}
}

func BenchmarkBackupFirst(b *testing.B) {
	src, total := benchTree(b)
	b.SetBytes(total)
	b.ResetTimer()
	for b.Loop() {
		if _, err := Run(context.Background(), Options{Account: benchAccount(), Dir: src, CloudPath: "/b", CacheDir: b.TempDir()}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBackupNoChange(b *testing.B) {
	src, total := benchTree(b)
	acct, cache := benchAccount(), b.TempDir()
	o := Options{Account: acct, Dir: src, CloudPath: "/b", CacheDir: cache}
	if _, err := Run(context.Background(), o); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(total)
	b.ResetTimer()
	for b.Loop() {
		s, err := Run(context.Background(), o)
		if err != nil {
			b.Fatal(err)
		}
		if s.BytesRead != 0 {
			b.Fatalf("no-change run read %d bytes", s.BytesRead)
		}
	}
}

func BenchmarkRestore(b *testing.B) {
	src, total := benchTree(b)
	acct := benchAccount()
	if _, err := Run(context.Background(), Options{Account: acct, Dir: src, CloudPath: "/b"}); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(total)
	b.ResetTimer()
	for b.Loop() {
		dst := filepath.Join(b.TempDir(), "r")
		if _, err := Restore(context.Background(), RestoreOptions{Account: acct, CloudPath: "/b", Target: dst}); err != nil {
			b.Fatal(err)
		}
	}
}

// goSrc returns $(go env GOROOT)/src, the tree `make bench` backs up, or
// skips the benchmark.
func goSrc(b *testing.B) string {
	b.Helper()
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		b.Skipf("go env GOROOT: %v", err)
	}
	src := filepath.Join(strings.TrimSpace(string(out)), "src")
	if _, err := os.Stat(src); err != nil {
		b.Skipf("no Go source tree: %v", err)
	}
	return src
}

// BenchmarkBackupGoSrc is the first backup of the Go source tree (about
// 12 000 mostly small files) into memory: the client's share of `make
// bench`'s first backup, without the server and the SQLite index. It
// reports the stored bytes per source byte too.
func BenchmarkBackupGoSrc(b *testing.B) {
	src := goSrc(b)
	var stored, total int64
	for b.Loop() {
		acct := benchAccount()
		acct.Objects = discardStore{acct.Objects} // a first backup reads no pack back
		s, err := Run(context.Background(), Options{Account: acct, Dir: src, CloudPath: "/b"})
		if err != nil {
			b.Fatal(err)
		}
		stored, total = s.BytesUploaded, s.BytesTotal
	}
	b.SetBytes(total)
	b.ReportMetric(float64(stored)/float64(total), "stored/byte")
}

// discardStore drops uploads, so a benchmark measures the backup and not
// the test store's copying.
type discardStore struct{ objstore.ObjectStore }

func (discardStore) Put(_ context.Context, _ string, r io.Reader, _ int64) error {
	_, err := io.Copy(io.Discard, r)
	return err
}
