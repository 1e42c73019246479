package integration

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// backupServer runs a real anysync-server for the backup tests; unlike
// the drive tests they need no FUSE.
type backupServer struct {
	data, addr, fingerprint string
}

func startBackupServer(t *testing.T) *backupServer {
	t.Helper()
	client, srvBin := driveBinaries(t)
	if out, err := exec.Command(client, "backup", "--help").CombinedOutput(); err != nil {
		t.Fatalf("anysync has no backup command: %v\n%s", err, out)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &backupServer{data: filepath.Join(t.TempDir(), "server"), addr: l.Addr().String()}
	_ = l.Close()
	out, err := exec.Command(srvBin, "init", "--data", s.data, "--listen", s.addr).CombinedOutput()
	if err != nil {
		t.Fatalf("server init: %v\n%s", err, out)
	}
	if s.fingerprint = driveFingerprint.FindString(string(out)); s.fingerprint == "" {
		t.Fatalf("no fingerprint in:\n%s", out)
	}
	var log bytes.Buffer
	cmd := exec.Command(srvBin, "run", "--data", s.data)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("server log:\n%s", log.String())
		}
	})
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", s.addr); err == nil {
			_ = c.Close()
			return s
		}
		if i > 300 {
			t.Fatalf("server does not listen on %s", s.addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// backupHome is one device's home folder.
type backupHome struct {
	t    *testing.T
	srv  *backupServer
	home string
}

func (s *backupServer) device(t *testing.T, verb string) *backupHome {
	h := &backupHome{t: t, srv: s, home: filepath.Join(t.TempDir(), "home")}
	h.run("", verb, "--server", s.addr, "--fingerprint", s.fingerprint, "--email", "backup@example.invalid")
	return h
}

// run runs anysync and fails the test unless it exits with want ("" for
// success, else a substring of its output).
func (h *backupHome) run(want string, args ...string) string {
	h.t.Helper()
	client, _ := driveBinaries(h.t)
	cmd := exec.Command(client, append([]string{"--home", h.home}, args...)...)
	cmd.Env = append(os.Environ(), "ANYSYNC_PASSWORD="+drivePassword)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	switch {
	case want == "" && err != nil:
		h.t.Fatalf("anysync %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	case want != "" && err == nil:
		h.t.Fatalf("anysync %s succeeded, want a failure mentioning %q\n%s", strings.Join(args, " "), want, out)
	case want != "" && !strings.Contains(string(out)+stderr.String(), want):
		h.t.Fatalf("anysync %s failed without %q:\n%s%s", strings.Join(args, " "), want, out, stderr.String())
	}
	return string(out)
}

type backupReport struct {
	FilesNew, FilesChanged, FilesUnchanged int64
	BytesRead, BytesUploaded               int64
	Committed                              bool
	Version                                uint64
}

func (h *backupHome) backup(dir string, args ...string) backupReport {
	h.t.Helper()
	out := h.run("", append([]string{"backup", dir, "--to", "/Backups/it/src", "--json"}, args...)...)
	var r struct {
		FilesNew       int64  `json:"files_new"`
		FilesChanged   int64  `json:"files_changed"`
		FilesUnchanged int64  `json:"files_unchanged"`
		BytesRead      int64  `json:"bytes_read"`
		BytesUploaded  int64  `json:"bytes_uploaded"`
		Committed      bool   `json:"committed"`
		Version        uint64 `json:"version"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		h.t.Fatalf("backup --json: %v\n%s", err, out)
	}
	return backupReport{r.FilesNew, r.FilesChanged, r.FilesUnchanged, r.BytesRead, r.BytesUploaded, r.Committed, r.Version}
}

// backupEntry is what a comparison looks at for one path.
type backupEntry struct {
	mode    fs.FileMode
	mtime   int64
	content string
	xattr   string
}

func backupSnapshot(t *testing.T, dir string) map[string]backupEntry {
	t.Helper()
	out := map[string]backupEntry{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		e := backupEntry{mode: fs.FileMode(st.Mode), mtime: st.Mtim.Nano()}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFLNK:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			e.content, e.mode = "-> "+target, 0
		case unix.S_IFREG:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			e.content = string(b)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFLNK {
			buf := make([]byte, 256)
			if n, err := unix.Lgetxattr(p, "user.it", buf); err == nil {
				e.xattr = string(buf[:n])
			}
		}
		out[rel] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestBackupRestoreCheckCLI(t *testing.T) {
	srv := startBackupServer(t)
	dev := srv.device(t, "signup")

	src := t.TempDir()
	files := map[string]string{
		"a.txt":              "alpha\n",
		"sub/b.go":           strings.Repeat("package b\n", 30000),
		"sub/deep/empty":     "",
		"big.bin":            string(bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7, 9}, 600<<10)),
		"skip.tmp":           "excluded",
		"sub/deep/setuid.sh": "#!/bin/sh\n",
	}
	for p, c := range files {
		full := filepath.Join(src, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(src, "sub/deep/setuid.sh"), 0o4755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("sub/b.go", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setxattr(filepath.Join(src, "a.txt"), "user.it", []byte("tagged"), 0); err != nil && !errors.Is(err, unix.ENOTSUP) {
		t.Fatal(err)
	}
	old := time.Date(2020, 1, 2, 3, 4, 5, 6000, time.UTC)
	if err := os.Chtimes(filepath.Join(src, "a.txt"), old, old); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // past the timestamp granularity

	first := dev.backup(src, "--exclude", "*.tmp")
	if first.FilesNew != 5 || !first.Committed || first.BytesUploaded == 0 {
		t.Fatalf("first backup %+v", first)
	}
	want := backupSnapshot(t, src)
	delete(want, "skip.tmp")

	again := dev.backup(src, "--exclude", "*.tmp")
	if again.FilesUnchanged != 5 || again.BytesRead != 0 || again.BytesUploaded != 0 || again.Committed {
		t.Fatalf("no-change backup %+v", again)
	}

	if err := os.WriteFile(filepath.Join(src, "a.txt"), []byte("alpha, changed\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	third := dev.backup(src, "--exclude", "*.tmp")
	if third.FilesChanged != 1 || third.FilesUnchanged != 4 || !third.Committed || third.Version != first.Version+1 {
		t.Fatalf("one-file backup %+v", third)
	}
	// Only the changed file's chunk and metadata went up.
	if third.BytesUploaded > 64<<10 {
		t.Errorf("one small change uploaded %d bytes", third.BytesUploaded)
	}

	// A second device of the account restores the older version: the
	// server's index has everything the commits needed.
	other := srv.device(t, "login")
	dst := filepath.Join(t.TempDir(), "restored")
	other.run("", "restore", "/Backups/it/src", "--to", dst, "--version", "1")
	got := backupSnapshot(t, dst)
	for p, w := range want {
		if g, ok := got[p]; !ok || g != w {
			t.Errorf("%s: restored %+v, want %+v", p, g, w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("restored %d entries, want %d", len(got), len(want))
	}
	latest := filepath.Join(t.TempDir(), "latest")
	other.run("", "restore", "/Backups/it/src/a.txt", "--to", latest)
	if b, err := os.ReadFile(filepath.Join(latest, "a.txt")); err != nil || string(b) != "alpha, changed\n" {
		t.Fatalf("latest a.txt: %q, %v", b, err)
	}

	dev.run("", "check", "--read-data")

	// Flip a byte in the middle of the largest pack on the server's disk.
	var victim string
	var size int64
	err := filepath.WalkDir(filepath.Join(srv.data, "packs"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		if fi, err := d.Info(); err == nil && fi.Size() > size {
			victim, size = p, fi.Size()
		}
		return nil
	})
	if err != nil || victim == "" {
		t.Fatalf("no pack on the server: %v", err)
	}
	b, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/3] ^= 0x10
	if err := os.WriteFile(victim, b, 0o600); err != nil {
		t.Fatal(err)
	}
	pack := filepath.Base(victim)
	pack = pack[len(pack)-64:] // stored as <user><pack>
	dev.run(pack, "check", "--read-data")
}
