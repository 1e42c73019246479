package integration

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/remote"
)

var (
	serverBinOnce sync.Once
	serverBinPath string
	serverBinErr  error
)

// serverBinary builds the real anysync-server once per test process, into
// the repository's bin/test/ (testBinDir), so nothing is left in temporary
// folders.
func serverBinary(t *testing.T) string {
	t.Helper()
	serverBinOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			serverBinErr = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		root := filepath.Dir(strings.TrimSpace(string(out)))
		serverBinPath = filepath.Join(testBinDir(root), "anysync-server")
		cmd := exec.Command("go", "build", "-o", serverBinPath, "./cmd/anysync-server")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			serverBinErr = fmt.Errorf("build anysync-server: %v\n%s", err, out)
		}
	})
	if serverBinErr != nil {
		t.Fatal(serverBinErr)
	}
	return serverBinPath
}

// testBinDir is where the tests build the binaries they run: beside
// `make build`'s, not over them.
func testBinDir(root string) string { return filepath.Join(root, "bin", "test") }

// serverCLI runs an anysync-server subcommand to completion.
func serverCLI(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(serverBinary(t), args...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// freeAddr returns a loopback address with a port that was free a moment
// ago, so a restarted server comes back on the same address.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}

var fingerprintLine = regexp.MustCompile(`Certificate fingerprint: (SHA256:[A-Za-z0-9+/]{43})\n`)

// serverData is an initialised data folder.
type serverData struct {
	dir, addr, fingerprint string
}

func initServer(t *testing.T, extra ...string) serverData {
	t.Helper()
	d := serverData{dir: filepath.Join(t.TempDir(), "server"), addr: freeAddr(t)}
	out, err := serverCLI(t, append([]string{"init", "--data", d.dir, "--listen", d.addr}, extra...)...)
	if err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	m := fingerprintLine.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("init printed no fingerprint:\n%s", out)
	}
	d.fingerprint = m[1]
	return d
}

// syncBuffer collects a process's log.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// serverProc is a running `anysync-server run`.
type serverProc struct {
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan error
}

var listeningLine = regexp.MustCompile(`msg=listening addr=(\S+)`)

// start runs the server and waits until it listens.
func (d serverData) start(t *testing.T) *serverProc {
	t.Helper()
	cmd := exec.Command(serverBinary(t), "run", "--data", d.dir, "--drain", "5s")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &serverProc{cmd: cmd, log: &syncBuffer{}, done: make(chan error, 1)}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(p.log, line)
			if m := listeningLine.FindStringSubmatch(line); m != nil {
				select {
				case ready <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(p.log, stderr)
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	select {
	case addr := <-ready:
		if addr != d.addr {
			t.Fatalf("server listens on %s, want %s", addr, d.addr)
		}
	case err := <-p.done:
		t.Fatalf("server exited before listening: %v\n%s", err, p.log)
	case <-time.After(30 * time.Second):
		t.Fatalf("server did not start:\n%s", p.log)
	}
	return p
}

// stop sends SIGTERM and expects a clean exit.
func (p *serverProc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("server exit after SIGTERM: %v\n%s", err, p.log)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("server did not stop on SIGTERM:\n%s", p.log)
	}
}

// alive reports whether the process is still running.
func (p *serverProc) alive() bool {
	return p.cmd.ProcessState == nil && p.cmd.Process.Signal(syscall.Signal(0)) == nil
}

func (d serverData) dial(t *testing.T) *remote.Client {
	t.Helper()
	c, err := remote.Dial(context.Background(), d.addr, d.fingerprint, remote.WithRetry(8, 50*time.Millisecond, time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// user is an account driven by its own client, as from its own home.
type user struct {
	email   string
	proof   []byte
	params  remote.Params
	keys    []byte
	session *remote.Session
	c       *remote.Client
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func (d serverData) signUp(t *testing.T, email string) *user {
	t.Helper()
	p, err := crypto.NewScryptParams()
	if err != nil {
		t.Fatal(err)
	}
	u := &user{email: email, proof: randomBytes(t, 32), params: p, keys: randomBytes(t, 150)}
	c := d.dial(t)
	u.session, err = c.Signup(context.Background(), remote.SignupRequest{
		Email: email, Proof: u.proof, Params: p, MasterKeys: u.keys, DeviceName: "home of " + email,
	})
	if err != nil {
		t.Fatalf("sign up %s: %v", email, err)
	}
	u.c = c.WithToken(u.session.Token)
	return u
}

// login logs the user in from a fresh client, as a second device would.
func (d serverData) login(t *testing.T, u *user) *remote.Client {
	t.Helper()
	c := d.dial(t)
	s, err := c.Login(context.Background(), remote.LoginRequest{Email: u.email, Proof: u.proof, DeviceName: "second device"})
	if err != nil {
		t.Fatalf("log in %s: %v", u.email, err)
	}
	if !bytes.Equal(s.MasterKeys, u.keys) {
		t.Fatal("login returned other master.keys")
	}
	return c.WithToken(s.Token)
}

func packName(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func blobID(s string) crypto.ID { return crypto.ID(sha256.Sum256([]byte(s))) }

// commit uploads a pack with a version blob in it and commits that
// version on top of head.
func commit(t *testing.T, c *remote.Client, head remote.Head, label string) (remote.Head, string) {
	t.Helper()
	ctx := context.Background()
	data := []byte(strings.Repeat(label, 64))
	name := packName(data)
	if err := c.UploadPack(ctx, name, data); err != nil {
		t.Fatalf("upload %s: %v", label, err)
	}
	v := blobID("version " + label)
	h, err := c.Commit(ctx, remote.CommitRequest{
		ExpectedSeq: head.Seq, Version: v, Parent: head.Version,
		Entries: []remote.IndexEntry{{ID: v, Pack: name, Offset: 0, Length: uint32(len(label))}},
	})
	if err != nil {
		t.Fatalf("commit %s: %v", label, err)
	}
	return h, name
}

// nextHead waits for a head on a Watch channel.
func nextHead(t *testing.T, ch <-chan remote.Head) remote.Head {
	t.Helper()
	select {
	case h, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return h
	case <-time.After(20 * time.Second):
		t.Fatal("no head from Watch")
	}
	return remote.Head{}
}

// storedFiles lists the regular files under dir.
func storedFiles(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(path string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.Type().IsRegular() {
			out = append(out, path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
