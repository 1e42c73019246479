//go:build linux && cgo && fuse3

package cgofs

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/winfsp/cgofuse/fuse"

	"github.com/anysync/anysync/fs/fstest"
	"github.com/anysync/anysync/fs/localdb"
	"github.com/anysync/anysync/fs/node"
)

func mounter(opts Options) fstest.Mounter {
	return func(dir string, fsys *node.FS) (func() error, error) {
		opts.Logger = log.New(os.Stderr, "", 0)
		m, err := New(dir, fsys, opts)
		if err != nil {
			return nil, err
		}
		return func() error {
			if err := m.Unmount(); err != nil {
				return err
			}
			m.Wait()
			return nil
		}, nil
	}
}

// TestFS runs the front ends' shared suite through cgofuse and libfuse 3.
func TestFS(t *testing.T) {
	fstest.Run(t, mounter(DefaultOptions()))
}

// winEnv mounts an empty drive with the Windows options (escaped names,
// case-insensitive lookups) on Linux, so their logic runs where CI runs.
func winEnv(t *testing.T) (*node.FS, string) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("FUSE is required in CI: %v", err)
		}
		t.Skipf("no /dev/fuse: %v", err)
	}
	f := newNodeFS(t)
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := DefaultOptions()
	opts.WindowsNames, opts.CaseInsensitive = true, true
	unmount, err := mounter(opts)(dir, f)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	return f, dir
}

func writeNode(t *testing.T, f *node.FS, parent uint64, name, content string) uint64 {
	t.Helper()
	ctx := context.Background()
	a, h, err := f.Create(ctx, parent, name, syscall.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt(ctx, []byte(content), 0); err != nil {
		t.Fatal(err)
	}
	if err := h.Release(ctx); err != nil {
		t.Fatal(err)
	}
	return a.Ino
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// TestWindowsNames: names Windows cannot hold are listed escaped and stay
// reachable, names made through the mount are stored unescaped.
func TestWindowsNames(t *testing.T) {
	f, dir := winEnv(t)
	ctx := context.Background()
	writeNode(t, f, localdb.RootIno, "a:b", "colon")
	writeNode(t, f, localdb.RootIno, "CON", "device")
	writeNode(t, f, localdb.RootIno, "trail.", "dot")
	if got, want := fmt.Sprint(names(t, dir)), fmt.Sprint([]string{"a\uF03Ab", "trail\uF02E", "\uF043ON"}); got != want {
		t.Fatalf("listing %s, want %s", got, want)
	}
	for name, want := range map[string]string{"a\uF03Ab": "colon", "\uF043ON": "device", "trail\uF02E": "dot"} {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != want {
			t.Fatalf("read %q: %q %v", name, b, err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "why\uF03F"), []byte("q"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Lookup(ctx, localdb.RootIno, "why?"); err != nil {
		t.Fatalf("a name made through the mount is stored unescaped: %v", err)
	}
	// A name Windows would refuse, made through the mount (from Linux
	// here), is stored as given and listed escaped.
	if err := os.Rename(filepath.Join(dir, "why\uF03F"), filepath.Join(dir, "AUX.txt")); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Lookup(ctx, localdb.RootIno, "AUX.txt"); err != nil {
		t.Fatalf("renamed name: %v", err)
	}
	if got, want := fmt.Sprint(names(t, dir)), fmt.Sprint([]string{"a\uF03Ab", "trail\uF02E", "\uF041UX.txt", "\uF043ON"}); got != want {
		t.Fatalf("listing %s, want %s", got, want)
	}
}

// TestCaseInsensitive: lookups that miss exactly find a name in another
// case; new names that differ only in case are refused; a rename that
// changes only case, or replaces an entry named in another case, works.
func TestCaseInsensitive(t *testing.T) {
	f, dir := winEnv(t)
	ctx := context.Background()
	p := func(s string) string { return filepath.Join(dir, s) }
	docs, err := f.Mkdir(ctx, localdb.RootIno, "Docs", 0o755)
	if err != nil {
		t.Fatal(err)
	}
	writeNode(t, f, docs.Ino, "Report.txt", "r1")
	if b, err := os.ReadFile(p("DOCS/report.TXT")); err != nil || string(b) != "r1" {
		t.Fatalf("read in another case: %q %v", b, err)
	}
	if _, err := os.OpenFile(p("docs/REPORT.txt"), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("create over a name in another case: %v", err)
	}
	if err := os.Mkdir(p("dOcS"), 0o755); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("mkdir over a name in another case: %v", err)
	}
	if err := os.WriteFile(p("docs/new.txt"), []byte("n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Lookup(ctx, docs.Ino, "new.txt"); err != nil {
		t.Fatalf("a file made in a folder named in another case: %v", err)
	}
	// Case-only rename.
	if err := os.Rename(p("Docs"), p("DOCS")); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(names(t, dir)); got != "[DOCS]" {
		t.Fatalf("after a case-only rename: %s", got)
	}
	// A rename onto a name taken in another case replaces that entry.
	if err := os.Rename(p("DOCS/new.txt"), p("DOCS/REPORT.TXT")); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(names(t, p("DOCS"))); got != "[REPORT.TXT]" {
		t.Fatalf("after a replacing rename: %s", got)
	}
	if b, err := os.ReadFile(p("docs/report.txt")); err != nil || string(b) != "n" {
		t.Fatalf("replaced content: %q %v", b, err)
	}
}

// TestGetpath reports names as stored, for WinFsp's case-insensitive
// lookups (called directly: only Windows asks for it).
func TestGetpath(t *testing.T) {
	nfs := newNodeFS(t)
	docs := mkdir(t, nfs, localdb.RootIno, "Docs")
	mkfile(t, nfs, docs, "a:b")
	f := &fsys{r: resolver{fsys: nfs, winNames: true, fold: true}, handles: map[uint64]*node.Handle{}, hidden: map[string]uint64{}}
	if errc, p := f.Getpath("/DOCS/A\uF03AB", noFh); errc != 0 || p != "/Docs/a\uF03Ab" {
		t.Fatalf("Getpath: %d %q", errc, p)
	}
	if errc, _ := f.Getpath("/missing", noFh); errc != -fuse.ENOENT {
		t.Fatalf("Getpath of a missing name: %d", errc)
	}
}

// TestRenameFold: on a case-insensitive mount, renaming onto a name taken
// in another case replaces it (flags 0) or is refused (RENAME_NOREPLACE,
// RENAME_EXCHANGE).
func TestRenameFold(t *testing.T) {
	nfs := newNodeFS(t)
	f := &fsys{r: resolver{fsys: nfs, fold: true}, handles: map[uint64]*node.Handle{}, hidden: map[string]uint64{}}
	for _, p := range []string{"/x", "/B"} {
		if errc := f.Mknod(p, fuse.S_IFREG|0o644, 0); errc != 0 {
			t.Fatalf("mknod %s: %d", p, errc)
		}
	}
	if errc := f.Rename3("/x", "/b", fuse.RENAME_NOREPLACE); errc != -fuse.EEXIST {
		t.Fatalf("RENAME_NOREPLACE onto a name in another case: %d", errc)
	}
	if errc := f.Rename3("/x", "/b", fuse.RENAME_EXCHANGE); errc != -fuse.EEXIST {
		t.Fatalf("RENAME_EXCHANGE with a name in another case: %d", errc)
	}
	x, err := f.r.walk(context.Background(), "/x")
	if err != nil {
		t.Fatal(err)
	}
	if errc := f.Rename("/x", "/b"); errc != 0 {
		t.Fatalf("rename: %d", errc)
	}
	var listed []string
	f.Readdir("/", func(name string, _ *fuse.Stat_t, _ int64) bool { listed = append(listed, name); return true }, 0, noFh)
	if fmt.Sprint(listed) != "[. .. b]" {
		t.Fatalf("listing after the rename: %v", listed)
	}
	if a, err := nfs.Lookup(context.Background(), localdb.RootIno, "b"); err != nil || a.Ino != x.Ino {
		t.Fatalf("b is x: %v %v", a, err)
	}
}

// TestHiddenRename: libfuse renames a file unlinked while open to
// .fuse_hidden…; the adapter unlinks it in the node layer instead and
// answers for the hidden name until libfuse unlinks that.
func TestHiddenRename(t *testing.T) {
	nfs := newNodeFS(t)
	f := &fsys{r: resolver{fsys: nfs}, handles: map[uint64]*node.Handle{}, hidden: map[string]uint64{}}
	errc, fh := f.Create("/open.txt", fuse.O_RDWR, 0o644)
	if errc != 0 {
		t.Fatalf("create: %d", errc)
	}
	if n := f.Write("/open.txt", []byte("data"), 0, fh); n != 4 {
		t.Fatalf("write: %d", n)
	}
	const hidden = "/.fuse_hidden0000000200000001"
	if errc := f.Rename("/open.txt", hidden); errc != 0 {
		t.Fatalf("rename to the hidden name: %d", errc)
	}
	var st fuse.Stat_t
	if errc := f.Getattr(hidden, &st, noFh); errc != 0 || st.Size != 4 {
		t.Fatalf("getattr of the hidden name: %d %+v", errc, st)
	}
	var listed []string
	f.Readdir("/", func(name string, _ *fuse.Stat_t, _ int64) bool { listed = append(listed, name); return true }, 0, noFh)
	if fmt.Sprint(listed) != "[. ..]" {
		t.Fatalf("listing with a hidden file: %v", listed)
	}
	buf := make([]byte, 4)
	if n := f.Read(hidden, buf, 0, fh); n != 4 || string(buf) != "data" {
		t.Fatalf("read through the handle: %d %q", n, buf)
	}
	if errc := f.Release(hidden, fh); errc != 0 {
		t.Fatalf("release: %d", errc)
	}
	if errc := f.Unlink(hidden); errc != 0 {
		t.Fatalf("unlink of the hidden name: %d", errc)
	}
	if errc := f.Getattr(hidden, &st, noFh); errc != -fuse.ENOENT {
		t.Fatalf("getattr after unlink: %d", errc)
	}
	nodes, _, err := nfs.DB().Stats(context.Background())
	if err != nil || nodes != 1 {
		t.Fatalf("%d nodes left (%v), want only the root", nodes, err)
	}
	// A rename to such a name of a file that is not open is a rename.
	if errc := f.Mknod("/closed", fuse.S_IFREG|0o644, 0); errc != 0 {
		t.Fatalf("mknod: %d", errc)
	}
	if errc := f.Rename("/closed", hidden); errc != 0 {
		t.Fatalf("rename: %d", errc)
	}
	if errc := f.Getattr(hidden, &st, noFh); errc != 0 {
		t.Fatalf("getattr after a plain rename: %d", errc)
	}
}
