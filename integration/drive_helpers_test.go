package integration

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/anysync/anysync/fs/fstest"
)

var (
	driveBinOnce sync.Once
	driveBinDir  string
	driveBinErr  error
)

// driveBinaries builds anysync and anysync-server once per test process
// into the repository's bin/test/: not bin/ itself, where `make build`
// puts the binaries `make run` and `make bench` use (a test run with
// GOFLAGS=-race left race-enabled ones there, and the bench measured them).
func driveBinaries(t *testing.T) (client, server string) {
	t.Helper()
	driveBinOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			driveBinErr = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		root := filepath.Dir(strings.TrimSpace(string(out)))
		driveBinDir = testBinDir(root)
		for _, c := range []string{"anysync", "anysync-server"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(driveBinDir, c), "./cmd/"+c)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				driveBinErr = fmt.Errorf("build %s: %v\n%s", c, err, out)
				return
			}
		}
	})
	if driveBinErr != nil {
		t.Fatal(driveBinErr)
	}
	return filepath.Join(driveBinDir, "anysync"), filepath.Join(driveBinDir, "anysync-server")
}

// driveServer is a real anysync-server with its own data folder.
type driveServer struct {
	data, addr, fingerprint string
	cmd                     *exec.Cmd
	log                     bytes.Buffer
}

var driveFingerprint = regexp.MustCompile(`SHA256:[A-Za-z0-9+/]{43}`)

func startDriveServer(t *testing.T) *driveServer {
	t.Helper()
	fstest.RequireFUSE(t)
	_, srvBin := driveBinaries(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &driveServer{data: filepath.Join(t.TempDir(), "server"), addr: l.Addr().String()}
	_ = l.Close()
	out, err := exec.Command(srvBin, "init", "--data", s.data, "--listen", s.addr).CombinedOutput()
	if err != nil {
		t.Fatalf("server init: %v\n%s", err, out)
	}
	s.fingerprint = driveFingerprint.FindString(string(out))
	if s.fingerprint == "" {
		t.Fatalf("no fingerprint in:\n%s", out)
	}
	s.cmd = exec.Command(srvBin, "run", "--data", s.data)
	s.cmd.Stdout, s.cmd.Stderr = &s.log, &s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	})
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", s.addr)
		if err == nil {
			_ = c.Close()
			break
		}
		if i > 300 {
			t.Fatalf("server does not listen on %s", s.addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return s
}

// driveHome is one device: a home folder and its mountpoint.
type driveHome struct {
	t         *testing.T
	srv       *driveServer
	home, mnt string
	email     string
}

const drivePassword = "correct horse battery staple"

func (s *driveServer) newHome(t *testing.T, email string) *driveHome {
	dir := t.TempDir()
	h := &driveHome{t: t, srv: s, home: filepath.Join(dir, "home"), mnt: filepath.Join(dir, "mnt"), email: email}
	t.Cleanup(h.cleanup)
	return h
}

// cli runs anysync with this home and returns its output; it fails the
// test on error.
func (h *driveHome) cli(args ...string) string {
	h.t.Helper()
	out, err := h.try(args...)
	if err != nil {
		h.t.Fatalf("anysync %s: %v\n%s\n--- daemon log:\n%s", strings.Join(args, " "), err, out, h.daemonLog())
	}
	return out
}

func (h *driveHome) try(args ...string) (string, error) {
	h.t.Helper()
	bin, _ := driveBinaries(h.t)
	cmd := exec.Command(bin, append([]string{"--home", h.home}, args...)...)
	cmd.Env = append(os.Environ(), "ANYSYNC_PASSWORD="+drivePassword)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (h *driveHome) daemonLog() string {
	b, _ := os.ReadFile(filepath.Join(h.home, "daemon.log"))
	return string(b)
}

func (h *driveHome) signup() *driveHome {
	h.cli("signup", "--server", h.srv.addr, "--fingerprint", h.srv.fingerprint, "--email", h.email)
	return h
}

func (h *driveHome) login() *driveHome {
	h.cli("login", "--server", h.srv.addr, "--fingerprint", h.srv.fingerprint, "--email", h.email)
	return h
}

var daemonPid = regexp.MustCompile(`daemon pid (\d+)`)

// mount mounts the drive and returns the daemon's pid.
func (h *driveHome) mount() int {
	h.t.Helper()
	out := h.cli("mount", h.mnt)
	m := daemonPid.FindStringSubmatch(out)
	if m == nil {
		h.t.Fatalf("mount printed no pid: %s", out)
	}
	pid, _ := strconv.Atoi(m[1])
	h.checkFrontend()
	return pid
}

// checkFrontend fails the test unless the daemon mounted through the front
// end ANYSYNC_FRONTEND names (the drive tests run once per front end;
// `make test` runs them again with ANYSYNC_FRONTEND=cgofuse).
func (h *driveHome) checkFrontend() {
	h.t.Helper()
	if fe := os.Getenv("ANYSYNC_FRONTEND"); fe != "" && !strings.Contains(h.daemonLog(), "(front end "+fe+")") {
		h.t.Fatalf("the daemon did not mount through %s:\n%s", fe, h.daemonLog())
	}
}

func (h *driveHome) sync() { h.cli("sync", "--wait") }

func (h *driveHome) unmount() { h.cli("unmount", h.mnt) }

func (h *driveHome) path(p string) string { return filepath.Join(h.mnt, p) }

// cleanup stops a daemon a test left running.
func (h *driveHome) cleanup() {
	if h.t.Failed() {
		h.t.Logf("daemon log of %s:\n%s", h.home, h.daemonLog())
	}
	if _, err := os.Stat(filepath.Join(h.home, "control.sock")); err == nil {
		_, _ = h.try("unmount", h.mnt)
	}
	_ = syscall.Unmount(h.mnt, syscall.MNT_DETACH)
}

// driveWait polls cond until it holds or a minute passes.
func driveWait(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for start := time.Now(); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Since(start) > time.Minute {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// run runs a command in dir and fails the test on error.
func driveRun(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}
