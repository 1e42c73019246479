// Command bench is AnySync's end-to-end benchmark suite (`make bench`).
//
// It starts a server on loopback and signs a fresh account up, runs the
// core micro-benchmarks, backs a copy of the Go source tree up (first run,
// no-change re-run, one-file-changed re-run, stored bytes), restores it,
// and runs the drive workloads when FUSE is usable. The same backup
// workloads run with restic, and the drive workloads on plain disk and
// with gocryptfs, when those are installed, so every number is compared on
// the machine it ran on. It prints tables and writes JSON.
//
// Timings are wall-clock times of whole commands, process start included,
// the minimum over -repeat runs.
package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

const (
	password = "bench password, not a secret"
	email    = "bench@example.invalid"
)

// Targets of the backup issue, as ratios to restic on the same machine.
var targets = map[string]float64{
	"first backup":     0.7,
	"stored bytes":     1.0,
	"no-change re-run": 0.5,
	"restore":          1.0,
}

type config struct {
	bin, src, work, out string
	micro, drive        bool
	backup              bool
	targets             string // drive targets to run, comma-separated
	repeat              int
	writeMB             int
	keep                bool
}

// Result is one measurement.
type Result struct {
	Group    string  `json:"group"` // micro, backup, drive
	Workload string  `json:"workload"`
	Tool     string  `json:"tool"`
	Seconds  float64 `json:"seconds,omitempty"`
	Bytes    int64   `json:"bytes,omitempty"`
	MBps     float64 `json:"mb_per_s,omitempty"`
	Note     string  `json:"note,omitempty"`
}

type bench struct {
	cfg         config
	results     []Result
	notes       []string
	srv         *exec.Cmd
	addr        string
	fingerprint string
	accounts    int
	caches      int // chunk caches moved aside by remounts
	home        string
	cleanup     []func()
}

func main() {
	var c config
	flag.StringVar(&c.bin, "bin", "bin", "folder with the anysync and anysync-server binaries")
	flag.StringVar(&c.src, "src", "", "folder to back up (default: $(go env GOROOT)/src)")
	flag.StringVar(&c.work, "work", "", "scratch folder (default: a new folder in the temp dir)")
	flag.StringVar(&c.out, "out", "bench/results.json", "JSON results file")
	flag.BoolVar(&c.micro, "micro", true, "run the core micro-benchmarks")
	flag.BoolVar(&c.drive, "drive", true, "run the drive workloads (needs FUSE)")
	flag.BoolVar(&c.backup, "backup", true, "run the backup workloads")
	flag.StringVar(&c.targets, "targets", "plain,anysync,gocryptfs", "drive workloads' targets, comma-separated")
	flag.IntVar(&c.repeat, "repeat", 1, "runs per timed workload; the minimum is reported")
	flag.IntVar(&c.writeMB, "write-mb", 1024, "size of the sequential write, MiB")
	flag.BoolVar(&c.keep, "keep", false, "keep the scratch folder")
	flag.Parse()
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(c config) error {
	if c.src == "" {
		out, err := exec.Command("go", "env", "GOROOT").Output()
		if err != nil {
			return fmt.Errorf("go env GOROOT: %w", err)
		}
		c.src = filepath.Join(strings.TrimSpace(string(out)), "src")
	}
	var err error
	if c.bin, err = filepath.Abs(c.bin); err != nil {
		return err
	}
	if c.work == "" {
		if c.work, err = os.MkdirTemp("", "anysync-bench-"); err != nil {
			return err
		}
	}
	if c.repeat < 1 {
		c.repeat = 1
	}
	b := &bench{cfg: c}
	defer func() {
		for i := len(b.cleanup) - 1; i >= 0; i-- {
			b.cleanup[i]()
		}
		if !c.keep {
			_ = os.RemoveAll(c.work)
		}
	}()
	if err := b.checkBinaries(); err != nil {
		return err
	}
	if c.micro {
		b.runMicro()
	}
	if err := b.startServer(); err != nil {
		return err
	}
	if c.backup {
		if out, err := exec.Command(b.anysync(), "backup", "--help").CombinedOutput(); err != nil {
			b.note("%s has no backup command (%s): backup workloads skipped", b.anysync(), strings.TrimSpace(string(out)))
		} else if err := b.runBackup(); err != nil {
			return err
		}
	}
	if c.drive {
		b.runDrive()
	}
	b.print(os.Stdout)
	return b.writeJSON()
}

func (b *bench) note(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	b.notes = append(b.notes, msg)
	fmt.Fprintln(os.Stderr, "bench:", msg)
}

func (b *bench) add(r Result) { b.results = append(b.results, r) }

func (b *bench) anysync() string { return filepath.Join(b.cfg.bin, "anysync") }

func (b *bench) checkBinaries() error {
	for _, name := range []string{"anysync", "anysync-server"} {
		if _, err := os.Stat(filepath.Join(b.cfg.bin, name)); err != nil {
			return fmt.Errorf("%s: %w (run make build)", name, err)
		}
	}
	return nil
}

// cmd runs a command with the bench environment and returns its stdout
// and wall time. Failures include stderr.
func (b *bench) cmd(env []string, name string, args ...string) (string, time.Duration, error) {
	c := exec.Command(name, args...)
	c.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	c.Stderr = &stderr
	start := time.Now()
	out, err := c.Output()
	d := time.Since(start)
	if err != nil {
		return string(out), d, fmt.Errorf("%s %s: %w\n%s", filepath.Base(name), strings.Join(args, " "), err, stderr.String())
	}
	return string(out), d, nil
}

// cli runs the client with the bench home.
func (b *bench) cli(args ...string) (string, time.Duration, error) {
	return b.cmd([]string{"ANYSYNC_PASSWORD=" + password}, b.anysync(), append([]string{"--home", b.home}, args...)...)
}

var fingerprintRE = regexp.MustCompile(`SHA256:[A-Za-z0-9+/]{43}`)

func (b *bench) startServer() error {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	b.addr = l.Addr().String()
	_ = l.Close()
	data := filepath.Join(b.cfg.work, "server")
	srvBin := filepath.Join(b.cfg.bin, "anysync-server")
	out, _, err := b.cmd(nil, srvBin, "init", "--data", data, "--listen", b.addr)
	if err != nil {
		return err
	}
	fp := fingerprintRE.FindString(out)
	if fp == "" {
		return fmt.Errorf("no fingerprint in server init output:\n%s", out)
	}
	logf, err := os.Create(filepath.Join(b.cfg.work, "server.log"))
	if err != nil {
		return err
	}
	b.srv = exec.Command(srvBin, "run", "--data", data)
	b.srv.Stdout, b.srv.Stderr = logf, logf
	if err := b.srv.Start(); err != nil {
		return err
	}
	b.cleanup = append(b.cleanup, func() {
		_ = b.srv.Process.Signal(syscall.SIGTERM)
		_ = b.srv.Wait()
		_ = logf.Close()
	})
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", b.addr); err == nil {
			_ = c.Close()
			break
		}
		if i > 500 {
			return fmt.Errorf("server does not listen on %s", b.addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return b.signup("main", fp)
}

// signup makes a fresh account and home; each first backup needs one.
func (b *bench) signup(name, fp string) error {
	if fp == "" {
		fp = b.fingerprint
	}
	b.fingerprint = fp
	b.accounts++
	b.home = filepath.Join(b.cfg.work, "home-"+name)
	_, _, err := b.cli("signup", "--server", b.addr, "--fingerprint", fp, "--email", fmt.Sprintf("%d-%s", b.accounts, email))
	return err
}

// ---- micro-benchmarks -------------------------------------------------

var benchLine = regexp.MustCompile(`^(Benchmark\S+?)(?:-\d+)?\s+\d+\s+([\d.]+) ns/op(?:\s+([\d.]+) MB/s)?`)

func (b *bench) runMicro() {
	fmt.Fprintln(os.Stderr, "bench: core micro-benchmarks (go test -bench)")
	c := exec.Command("go", "test", "-run", "^$", "-bench", ".", "-benchtime", "500ms", "./crypto/...", "./store/...")
	c.Stderr = os.Stderr
	out, err := c.Output()
	var failed []string
	pkg := ""
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		line := sc.Text()
		if f, ok := strings.CutPrefix(line, "--- FAIL: "); ok {
			failed = append(failed, pkg+"."+strings.Fields(f)[0])
		}
		if p, ok := strings.CutPrefix(line, "pkg: "); ok {
			pkg = strings.TrimPrefix(p, "github.com/anysync/anysync/")
			continue
		}
		m := benchLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		ns, _ := strconv.ParseFloat(m[2], 64)
		r := Result{Group: "micro", Workload: pkg + "." + strings.TrimPrefix(m[1], "Benchmark"), Tool: "anysync", Seconds: ns / 1e9}
		if m[3] != "" {
			r.MBps, _ = strconv.ParseFloat(m[3], 64)
		}
		b.add(r)
	}
	if err != nil {
		b.note("some micro-benchmarks failed (%v): %s", err, strings.Join(failed, ", "))
	}
}

// ---- backup workloads -------------------------------------------------

// backupJSON is the part of `anysync backup --json` the bench reads.
type backupJSON struct {
	BytesTotal    int64 `json:"bytes_total"`
	BytesRead     int64 `json:"bytes_read"`
	BytesUploaded int64 `json:"bytes_uploaded"`
	FilesNew      int64 `json:"files_new"`
	FilesChanged  int64 `json:"files_changed"`
	Committed     bool  `json:"committed"`
}

func (b *bench) runBackup() error {
	src := filepath.Join(b.cfg.work, "src")
	fmt.Fprintf(os.Stderr, "bench: copying %s to %s\n", b.cfg.src, src)
	if _, _, err := b.cmd(nil, "cp", "-a", b.cfg.src, src); err != nil {
		return err
	}
	// Let the copy's ctimes age past the timestamp granularity, so the
	// first backup trusts every file it reads (as it would any tree not
	// written this very second).
	time.Sleep(time.Second)
	files, size := treeSize(src)
	b.add(Result{Group: "backup", Workload: "source tree", Tool: "-", Bytes: size, Note: fmt.Sprintf("%d files in %s", files, b.cfg.src)})
	changed, err := pickFile(src)
	if err != nil {
		return err
	}

	restic, resticErr := exec.LookPath("restic")
	if resticErr != nil {
		b.note("restic not installed: backup comparison skipped (apt-get install restic)")
	}
	resticEnv := []string{"RESTIC_PASSWORD=" + password, "RESTIC_CACHE_DIR=" + filepath.Join(b.cfg.work, "restic-cache")}

	type step struct {
		name    string
		prepare func(i int) error // before each timed run, untimed
		any     func() (time.Duration, error)
		restic  func() (time.Duration, error)
	}
	cloud := "/Backups/bench/src"
	var resticRepo string
	fresh := func(i int) error {
		if err := b.signup(fmt.Sprintf("first%d", i), ""); err != nil {
			return err
		}
		if restic != "" {
			resticRepo = filepath.Join(b.cfg.work, fmt.Sprintf("restic%d", i))
			if _, _, err := b.cmd(resticEnv, restic, "-r", resticRepo, "init", "-q"); err != nil {
				return err
			}
		}
		return nil
	}
	anyBackup := func(check func(backupJSON) error) func() (time.Duration, error) {
		return func() (time.Duration, error) {
			out, d, err := b.cli("backup", src, "--to", cloud, "--json")
			if err != nil {
				return d, err
			}
			var s backupJSON
			if err := json.Unmarshal([]byte(out), &s); err != nil {
				return d, fmt.Errorf("backup --json: %w", err)
			}
			return d, check(s)
		}
	}
	resticBackup := func() (time.Duration, error) {
		_, d, err := b.cmd(resticEnv, restic, "-r", resticRepo, "backup", "-q", src)
		return d, err
	}
	// Stored bytes are measured right after the first backup: every pack
	// the server holds for the fresh account (headers included), and the
	// whole restic repository.
	packsDir := filepath.Join(b.cfg.work, "server", "packs")
	var packsBefore, anyStored, resticStored int64
	restoreRun := 0
	restoreDir := func(tool string) string {
		return filepath.Join(b.cfg.work, fmt.Sprintf("r-%s-%d", tool, restoreRun))
	}
	steps := []step{
		{name: "first backup",
			prepare: func(i int) error {
				_, packsBefore = treeSize(packsDir)
				return fresh(i)
			},
			any: anyBackup(func(s backupJSON) error {
				_, after := treeSize(packsDir)
				anyStored = after - packsBefore
				if s.FilesNew == 0 {
					return errors.New("first backup found no new files")
				}
				return nil
			}),
			restic: func() (time.Duration, error) {
				d, err := resticBackup()
				_, resticStored = treeSize(resticRepo)
				return d, err
			}},
		{name: "no-change re-run",
			any: anyBackup(func(s backupJSON) error {
				if s.BytesRead != 0 || s.Committed {
					return fmt.Errorf("no-change run read %d bytes, committed %v", s.BytesRead, s.Committed)
				}
				return nil
			}),
			restic: resticBackup},
		{name: "one file changed",
			prepare: func(i int) error { return appendLine(changed, i) },
			any: anyBackup(func(s backupJSON) error {
				if s.FilesChanged != 1 {
					return fmt.Errorf("one-file run saw %d changed files", s.FilesChanged)
				}
				return nil
			}),
			restic: resticBackup},
		{name: "restore",
			// Each run restores into new folders, and nothing is deleted
			// before it: ext4 allocates inodes slowly right after many
			// were freed (it scans for recently deleted ones), which made
			// a restore that followed an rm -rf several times slower.
			prepare: func(i int) error { restoreRun = i; return nil },
			any: func() (time.Duration, error) {
				_, d, err := b.cli("restore", cloud, "--to", restoreDir("anysync"), "--json")
				return d, err
			},
			restic: func() (time.Duration, error) {
				_, d, err := b.cmd(resticEnv, restic, "-r", resticRepo, "restore", "latest", "-q", "--target", restoreDir("restic"))
				return d, err
			}},
		{name: "check --read-data",
			any: func() (time.Duration, error) {
				_, d, err := b.cli("check", "--read-data", "--json")
				return d, err
			},
			restic: func() (time.Duration, error) {
				_, d, err := b.cmd(resticEnv, restic, "-r", resticRepo, "check", "-q", "--read-data")
				return d, err
			}},
	}
	// The first backup needs a fresh repository per run, and the later
	// steps build on it: repeat the whole sequence, keep the minimum.
	best := map[string]map[string]time.Duration{}
	for i := range b.cfg.repeat {
		for _, s := range steps {
			fmt.Fprintf(os.Stderr, "bench: %s (run %d/%d)\n", s.name, i+1, b.cfg.repeat)
			if s.prepare != nil {
				if err := s.prepare(i); err != nil {
					return fmt.Errorf("%s: %w", s.name, err)
				}
			}
			if best[s.name] == nil {
				best[s.name] = map[string]time.Duration{}
			}
			// Alternate which tool goes first, so drift in machine load
			// does not favour one.
			tools := []string{"anysync", "restic"}
			if i%2 == 1 {
				tools[0], tools[1] = tools[1], tools[0]
			}
			for _, tool := range tools {
				f := s.any
				if tool == "restic" {
					if restic == "" {
						continue
					}
					f = s.restic
				}
				d, err := f()
				if err != nil {
					return fmt.Errorf("%s with %s: %w", s.name, tool, err)
				}
				if old, ok := best[s.name][tool]; !ok || d < old {
					best[s.name][tool] = d
				}
			}
		}
	}
	for _, s := range steps {
		for tool, d := range best[s.name] {
			b.add(Result{Group: "backup", Workload: s.name, Tool: tool, Seconds: d.Seconds(), MBps: mbps(size, d)})
		}
	}
	b.add(Result{Group: "backup", Workload: "stored bytes", Tool: "anysync", Bytes: anyStored, Note: "server packs after the first backup"})
	if restic != "" {
		b.add(Result{Group: "backup", Workload: "stored bytes", Tool: "restic", Bytes: resticStored, Note: "repository after the first backup"})
	}

	// The restore must be the source, byte for byte.
	if _, _, err := b.cmd(nil, "diff", "-r", "--no-dereference", src, restoreDir("anysync")); err != nil {
		return fmt.Errorf("restored tree differs from the source: %w", err)
	}
	return nil
}

// pickFile returns a regular file to change in the one-file run.
func pickFile(root string) (string, error) {
	for _, p := range []string{"fmt/print.go", "README.vendor"} {
		if fi, err := os.Lstat(filepath.Join(root, p)); err == nil && fi.Mode().IsRegular() {
			return filepath.Join(root, p), nil
		}
	}
	var found string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && found == "" {
			found = p
			return fs.SkipAll
		}
		return err
	})
	if found == "" {
		return "", fmt.Errorf("no regular file in %s: %w", root, err)
	}
	return found, nil
}

func appendLine(path string, i int) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(f, "\n// bench change %d\n", i)
	return errors.Join(err, f.Close())
}

// treeSize returns the number of regular files below root and their bytes.
func treeSize(root string) (int64, int64) {
	var n, size int64
	_ = filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return nil
		}
		if fi, err := d.Info(); err == nil {
			n++
			size += fi.Size()
		}
		return nil
	})
	return n, size
}

func mbps(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / 1e6 / d.Seconds()
}

// ---- drive workloads --------------------------------------------------

// driveTarget is one file system the drive workloads run on.
type driveTarget struct {
	name    string
	mount   func() (pid int, err error) // mounts (again); pid of the daemon, 0 for none
	unmount func() error
	flush   func(path string) error // make a finished write durable/committed
	dir     string
	// commits: flush commits to a server (`anysync sync --wait`). Such a
	// target also runs the sequential write until committed (issue 4's
	// workload) besides the write until fsync returns (the peers').
	commits bool
}

func fuseUsable() error {
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		return err
	}
	return f.Close()
}

func (b *bench) runDrive() {
	if err := fuseUsable(); err != nil {
		b.note("FUSE not usable (%v): drive workloads skipped", err)
		return
	}
	if out, err := exec.Command(b.anysync(), "mount", "--help").CombinedOutput(); err != nil {
		b.note("anysync has no mount command (%s): drive workloads skipped", strings.TrimSpace(string(out)))
		return
	}
	// Two different files: the committed write must not be deduplicated
	// against the first.
	data := [2]string{filepath.Join(b.cfg.work, "write.bin"), filepath.Join(b.cfg.work, "write2.bin")}
	if err := errors.Join(writeRandom(data[0], int64(b.cfg.writeMB)<<20, 0), writeRandom(data[1], int64(b.cfg.writeMB)<<20, 1)); err != nil {
		b.note("prepare write data: %v", err)
		return
	}
	tarball := filepath.Join(b.cfg.work, "go.tar")
	if _, _, err := b.cmd(nil, "tar", "-cf", tarball, "-C", b.cfg.src, "."); err != nil {
		b.note("prepare tarball: %v", err)
		return
	}
	// The inputs go to disk now, not in the background of the first
	// workloads (whose fsyncs would wait behind them).
	flushDisk()
	var targets []driveTarget
	for _, name := range strings.Split(b.cfg.targets, ",") {
		var t driveTarget
		var err error
		switch strings.TrimSpace(name) {
		case "plain":
			t = b.plainTarget()
		case "anysync":
			t, err = b.anysyncTarget()
		case "gocryptfs":
			t, err = b.gocryptfsTarget()
		default:
			err = errors.New("unknown target (plain, anysync, gocryptfs)")
		}
		if err != nil {
			b.note("%s drive: %v", name, err)
			continue
		}
		targets = append(targets, t)
	}
	for _, t := range targets {
		if err := b.driveWorkloads(t, data, tarball); err != nil {
			b.note("%s drive workloads: %v", t.name, err)
		}
		if t.unmount != nil {
			_ = t.unmount()
		}
	}
}

func (b *bench) plainTarget() driveTarget {
	dir := filepath.Join(b.cfg.work, "plain")
	return driveTarget{name: "plain", dir: dir,
		mount: func() (int, error) { return 0, os.MkdirAll(dir, 0o755) },
		flush: func(string) error { return nil }}
}

var daemonPidRE = regexp.MustCompile(`daemon pid (\d+)`)

func (b *bench) anysyncTarget() (driveTarget, error) {
	if err := b.signup("drive", ""); err != nil {
		return driveTarget{}, err
	}
	mnt := filepath.Join(b.cfg.work, "mnt-anysync")
	t := driveTarget{name: "anysync", dir: mnt, commits: true}
	t.mount = func() (int, error) {
		out, _, err := b.cli("mount", mnt)
		if err != nil {
			return 0, err
		}
		m := daemonPidRE.FindStringSubmatch(out)
		if m == nil {
			return 0, fmt.Errorf("mount printed no daemon pid: %s", out)
		}
		return strconv.Atoi(m[1])
	}
	// Unmounting also empties the chunk cache, which persists across mounts
	// and holds this device's own writes: a "cold" read must fetch.
	// The old cache is moved aside, not deleted: ext4 allocates inodes
	// slowly for about a minute after many were freed, which would charge
	// the cold read for the benchmark's own clean-up.
	t.unmount = func() error {
		if _, _, err := b.cli("unmount", mnt); err != nil {
			return err
		}
		b.caches++
		return os.Rename(filepath.Join(b.home, "cache"), filepath.Join(b.cfg.work, fmt.Sprintf("old-cache-%d", b.caches)))
	}
	t.flush = func(string) error { _, _, err := b.cli("sync", "--wait"); return err }
	b.cleanup = append(b.cleanup, func() { _ = detach(mnt) })
	return t, nil
}

func (b *bench) gocryptfsTarget() (driveTarget, error) {
	bin, err := exec.LookPath("gocryptfs")
	if err != nil {
		return driveTarget{}, errors.New("not installed: comparison skipped (apt-get install gocryptfs)")
	}
	cipher := filepath.Join(b.cfg.work, "gocryptfs-cipher")
	mnt := filepath.Join(b.cfg.work, "mnt-gocryptfs")
	pwfile := filepath.Join(b.cfg.work, "gocryptfs-password")
	if err := os.WriteFile(pwfile, []byte(password), 0o600); err != nil {
		return driveTarget{}, err
	}
	if err := errors.Join(os.MkdirAll(cipher, 0o700), os.MkdirAll(mnt, 0o755)); err != nil {
		return driveTarget{}, err
	}
	if _, _, err := b.cmd(nil, bin, "-init", "-q", "-passfile", pwfile, cipher); err != nil {
		return driveTarget{}, err
	}
	var proc *exec.Cmd
	t := driveTarget{name: "gocryptfs", dir: mnt}
	t.mount = func() (int, error) {
		proc = exec.Command(bin, "-fg", "-q", "-passfile", pwfile, cipher, mnt)
		if err := proc.Start(); err != nil {
			return 0, err
		}
		return proc.Process.Pid, waitMounted(mnt)
	}
	t.unmount = func() error {
		err := exec.Command("fusermount", "-u", mnt).Run()
		if proc != nil {
			_ = proc.Wait()
		}
		return err
	}
	t.flush = func(path string) error { return exec.Command("sync", "-f", path).Run() }
	b.cleanup = append(b.cleanup, func() { _ = detach(mnt) })
	return t, nil
}

// waitMounted waits until dir is a mount point.
func waitMounted(dir string) error {
	for range 500 {
		b, err := os.ReadFile("/proc/self/mountinfo")
		if err == nil && strings.Contains(string(b), " "+dir+" ") {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("%s did not get mounted", dir)
}

func (b *bench) driveWorkloads(t driveTarget, data [2]string, tarball string) error {
	fmt.Fprintf(os.Stderr, "bench: drive workloads on %s\n", t.name)
	flushDisk() // the previous target's writes are not written back during these
	pid, err := t.mount()
	if err != nil {
		return err
	}
	size := int64(b.cfg.writeMB) << 20
	dst := filepath.Join(t.dir, "big.bin")
	// Durable on local disk: write, fsync (and syncfs where flush is one).
	d, err := timed(func() error {
		if err := copyFile(dst, data[0], true); err != nil {
			return err
		}
		if t.commits {
			return nil
		}
		return t.flush(dst)
	})
	if err != nil {
		return fmt.Errorf("sequential write: %w", err)
	}
	b.add(Result{Group: "drive", Workload: fmt.Sprintf("sequential write %d MiB + fsync", b.cfg.writeMB), Tool: t.name, Seconds: d.Seconds(), MBps: mbps(size, d)})
	if t.commits {
		// Committed: write, close, `sync --wait` (issue 4's workload).
		// The first copy is committed first, untimed.
		if err := t.flush(dst); err != nil {
			return fmt.Errorf("commit the first write: %w", err)
		}
		dst2 := filepath.Join(t.dir, "big-committed.bin")
		var written time.Duration
		d, err = timed(func() error {
			start := time.Now()
			if err := copyFile(dst2, data[1], false); err != nil {
				return err
			}
			written = time.Since(start)
			return t.flush(dst2)
		})
		if err != nil {
			return fmt.Errorf("sequential write + commit: %w", err)
		}
		b.add(Result{Group: "drive", Workload: fmt.Sprintf("sequential write %d MiB + sync --wait", b.cfg.writeMB), Tool: t.name, Seconds: d.Seconds(), MBps: mbps(size, d),
			// Where the time went: the writes, then the commit after them.
			Note: fmt.Sprintf("write %.2f s, sync --wait %.2f s", written.Seconds(), (d - written).Seconds())})
	}

	// The daemon's peak RSS over the workloads, read before each remount
	// ends the process that holds it.
	var peakKB int64
	notePeak := func() {
		if kb, err := peakRSS(pid); pid > 0 && err == nil && kb > peakKB {
			peakKB = kb
		}
	}
	if t.unmount != nil { // a fresh mount has nothing cached
		notePeak()
		if err := t.unmount(); err != nil {
			return fmt.Errorf("unmount: %w", err)
		}
		if pid, err = t.mount(); err != nil {
			return fmt.Errorf("remount: %w", err)
		}
		d, err = timed(func() error { return readFile(dst) })
		if err != nil {
			return fmt.Errorf("cold read: %w", err)
		}
		b.add(Result{Group: "drive", Workload: "cold sequential read", Tool: t.name, Seconds: d.Seconds(), MBps: mbps(size, d)})
	}
	d, err = timed(func() error { return readFile(dst) })
	if err != nil {
		return fmt.Errorf("warm read: %w", err)
	}
	b.add(Result{Group: "drive", Workload: "warm sequential read", Tool: t.name, Seconds: d.Seconds(), MBps: mbps(size, d)})

	tree := filepath.Join(t.dir, "go")
	d, err = timed(func() error {
		if err := os.MkdirAll(tree, 0o755); err != nil {
			return err
		}
		if _, _, err := b.cmd(nil, "tar", "-xf", tarball, "-C", tree); err != nil {
			return err
		}
		return t.flush(tree)
	})
	if err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	b.add(Result{Group: "drive", Workload: "extract the Go tree + sync", Tool: t.name, Seconds: d.Seconds()})
	listTree := func() error {
		c := exec.Command("ls", "-lR", tree)
		c.Stdout = io.Discard
		return c.Run()
	}
	if d, err = timed(listTree); err != nil {
		return fmt.Errorf("ls -lR: %w", err)
	}
	b.add(Result{Group: "drive", Workload: "ls -lR of it", Tool: t.name, Seconds: d.Seconds()})
	notePeak()
	if peakKB > 0 {
		b.add(Result{Group: "drive", Workload: "peak daemon RSS", Tool: t.name, Bytes: peakKB << 10})
	}
	if t.unmount != nil { // and once more with nothing in the kernel's caches
		if err := t.unmount(); err != nil {
			return fmt.Errorf("unmount: %w", err)
		}
		if _, err = t.mount(); err != nil {
			return fmt.Errorf("remount: %w", err)
		}
		if d, err = timed(listTree); err != nil {
			return fmt.Errorf("ls -lR after remount: %w", err)
		}
		b.add(Result{Group: "drive", Workload: "ls -lR of it, fresh mount", Tool: t.name, Seconds: d.Seconds()})
	}
	if t.name == "anysync" {
		if err := b.largeFolder(t); err != nil {
			return fmt.Errorf("large folder: %w", err)
		}
	}
	return nil
}

// largeFolder lists a folder of 100,000 files on a fresh mount. The folder
// reaches the cloud by a backup (straight to the store: creating 100,000
// files through FUSE would time the creation), and the mount pulls it.
func (b *bench) largeFolder(t driveTarget) error {
	const n = 100000
	src := filepath.Join(b.cfg.work, "large-folder")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return err
	}
	for i := range n {
		if err := os.WriteFile(filepath.Join(src, fmt.Sprintf("f%06d", i)), nil, 0o644); err != nil {
			return err
		}
	}
	// The same listing on the local disk, for reference (its inodes are
	// cached: the files were just created).
	d, err := timed(func() error { return listLong(src) })
	if err != nil {
		return err
	}
	b.add(Result{Group: "drive", Workload: largeFolderWorkload, Tool: "plain", Seconds: d.Seconds()})
	if _, _, err := b.cli("backup", src, "--to", "/large-folder"); err != nil {
		return err
	}
	if err := t.unmount(); err != nil {
		return err
	}
	if _, err := t.mount(); err != nil { // pulls the new version, then mounts
		return err
	}
	last := filepath.Join(t.dir, "large-folder", fmt.Sprintf("f%06d", n-1))
	for start := time.Now(); ; time.Sleep(100 * time.Millisecond) {
		if _, err := os.Lstat(last); err == nil {
			break
		}
		if time.Since(start) > 2*time.Minute {
			return fmt.Errorf("%s did not appear", last)
		}
	}
	// Once more, so that the listing starts with nothing in the kernel.
	if err := t.unmount(); err != nil {
		return err
	}
	if _, err := t.mount(); err != nil {
		return err
	}
	d, err = timed(func() error { return listLong(filepath.Join(t.dir, "large-folder")) })
	if err != nil {
		return err
	}
	b.add(Result{Group: "drive", Workload: largeFolderWorkload, Tool: t.name, Seconds: d.Seconds()})
	return nil
}

const largeFolderWorkload = "ls -l of a folder of 100,000 files, fresh mount"

func listLong(dir string) error {
	c := exec.Command("ls", "-l", dir)
	c.Stdout = io.Discard
	return c.Run()
}

// timed times f, after writing back what earlier steps left dirty: a
// workload's fsyncs (and the server's) would otherwise wait behind the
// write-back of the previous one's data.
func timed(f func() error) (time.Duration, error) {
	flushDisk()
	start := time.Now()
	err := f()
	return time.Since(start), err
}

func copyFile(dst, src string, fsync bool) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	// 1 MiB writes. Both ends are wrapped: *os.File is an io.WriterTo,
	// and io.CopyBuffer would hand the copy to it, which copies in 32 KiB
	// pieces whatever buffer it is given (the bench wrote 32 KiB pieces
	// until session 5 found it).
	buf := make([]byte, 1<<20)
	if _, err := io.CopyBuffer(struct{ io.Writer }{out}, struct{ io.Reader }{in}, buf); err != nil {
		_ = out.Close()
		return err
	}
	if fsync {
		if err := out.Sync(); err != nil {
			_ = out.Close()
			return err
		}
	}
	return out.Close()
}

func readFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	// 1 MiB reads: io.Discard is an io.ReaderFrom, which reads in 8 KiB
	// pieces whatever buffer io.CopyBuffer is given.
	_, err = io.CopyBuffer(struct{ io.Writer }{io.Discard}, struct{ io.Reader }{f}, make([]byte, 1<<20))
	return err
}

// writeRandom writes n incompressible bytes (a fast PRNG: the data only
// has to defeat compression and dedup).
func writeRandom(path string, n int64, seed byte) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	rng := rand.NewChaCha8([32]byte{1, 2, 3, seed})
	buf := make([]byte, 1<<20)
	for written := int64(0); written < n; written += int64(len(buf)) {
		_, _ = rng.Read(buf)
		if _, err := f.Write(buf[:min(int64(len(buf)), n-written)]); err != nil {
			_ = f.Close()
			return err
		}
	}
	return f.Close()
}

// peakRSS returns a process's peak resident set (VmHWM) in KiB.
func peakRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			return strconv.ParseInt(strings.Fields(v)[0], 10, 64)
		}
	}
	return 0, errors.New("no VmHWM")
}

// ---- output -----------------------------------------------------------

func (b *bench) find(group, workload, tool string) (Result, bool) {
	for _, r := range b.results {
		if r.Group == group && r.Workload == workload && r.Tool == tool {
			return r, true
		}
	}
	return Result{}, false
}

func human(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// cell renders a result: seconds (and MB/s when it has one) or bytes.
func cell(r Result, ok bool) string {
	switch {
	case !ok:
		return "—"
	case r.Seconds > 0 && r.MBps > 0 && r.Group == "drive" && !strings.HasPrefix(r.Workload, "extract"):
		return fmt.Sprintf("%.0f MB/s", r.MBps)
	case r.Seconds > 0:
		return fmt.Sprintf("%.2f s", r.Seconds)
	case r.Bytes > 0:
		return human(r.Bytes)
	}
	return "—"
}

func (b *bench) print(w io.Writer) {
	fmt.Fprintf(w, "\nAnySync benchmarks — %s, %d CPUs, %s\n", runtime.GOOS+"/"+runtime.GOARCH, runtime.NumCPU(), runtime.Version())
	if src, ok := b.find("backup", "source tree", "-"); ok {
		fmt.Fprintf(w, "Backup source: %s (%s)\n", src.Note, human(src.Bytes))
	}
	tw := tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "\nbackup workload\tanysync\trestic\tanysync/restic\ttarget\t")
	for _, wl := range []string{"first backup", "stored bytes", "no-change re-run", "one file changed", "restore", "check --read-data"} {
		a, aok := b.find("backup", wl, "anysync")
		r, rok := b.find("backup", wl, "restic")
		ratio, target := "—", "—"
		if aok && rok {
			av, rv := a.Seconds, r.Seconds
			if wl == "stored bytes" {
				av, rv = float64(a.Bytes), float64(r.Bytes)
			}
			if rv > 0 {
				ratio = fmt.Sprintf("%.2f", av/rv)
				if t, ok := targets[wl]; ok {
					verdict := "met"
					if av/rv > t {
						verdict = "MISSED"
					}
					target = fmt.Sprintf("≤ %.2f %s", t, verdict)
				}
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t\n", wl, cell(a, aok), cell(r, rok), ratio, target)
	}
	_ = tw.Flush()

	var drive []string
	for _, r := range b.results {
		if r.Group == "drive" && !contains(drive, r.Workload) {
			drive = append(drive, r.Workload)
		}
	}
	// Writes first, then the rest in the order they ran (a workload only
	// AnySync runs would otherwise come after the plain disk's).
	slices.SortStableFunc(drive, func(a, b string) int {
		return cmp.Compare(b2i(!strings.HasPrefix(a, "sequential write")), b2i(!strings.HasPrefix(b, "sequential write")))
	})
	if len(drive) > 0 {
		tw = tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "\ndrive workload\tplain disk\tanysync\tgocryptfs\t")
		for _, wl := range drive {
			p, pok := b.find("drive", wl, "plain")
			a, aok := b.find("drive", wl, "anysync")
			g, gok := b.find("drive", wl, "gocryptfs")
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", wl, cell(p, pok), cell(a, aok), cell(g, gok))
		}
		_ = tw.Flush()
		fmt.Fprintln(w, "(\"+ fsync\": durable on local disk; \"+ sync --wait\": committed on the server)")
		for _, wl := range drive {
			if a, ok := b.find("drive", wl, "anysync"); ok && a.Note != "" {
				fmt.Fprintf(w, "%s, anysync: %s\n", wl, a.Note)
			}
		}
	}

	tw = tabwriter.NewWriter(w, 2, 8, 2, ' ', 0)
	header := false
	for _, r := range b.results {
		if r.Group != "micro" {
			continue
		}
		if !header {
			fmt.Fprintln(tw, "\nmicro-benchmark\tthroughput\ttime/op\t")
			header = true
		}
		tp := "—"
		if r.MBps > 0 {
			tp = fmt.Sprintf("%.0f MB/s", r.MBps)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t\n", r.Workload, tp, time.Duration(r.Seconds*1e9).Round(time.Microsecond/10))
	}
	_ = tw.Flush()
	for _, n := range b.notes {
		fmt.Fprintln(w, "note:", n)
	}
}

func contains(xs []string, s string) bool {
	for _, x := range xs {
		if x == s {
			return true
		}
	}
	return false
}

func (b *bench) writeJSON() error {
	host, _ := os.Hostname()
	out := struct {
		Time    time.Time `json:"time"`
		Host    string    `json:"host"`
		CPUs    int       `json:"cpus"`
		Go      string    `json:"go"`
		Source  string    `json:"source"`
		Repeat  int       `json:"repeat"`
		Results []Result  `json:"results"`
		Notes   []string  `json:"notes,omitempty"`
	}{time.Now().UTC(), host, runtime.NumCPU(), runtime.Version(), b.cfg.src, b.cfg.repeat, b.results, b.notes}
	data, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(b.cfg.out), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(b.cfg.out, append(data, '\n'), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "bench: results written to %s\n", b.cfg.out)
	return nil
}

func b2i(v bool) int {
	if v {
		return 1
	}
	return 0
}
