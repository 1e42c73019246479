//go:build unix

package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/store/chunker"
	"github.com/anysync/anysync/store/objstore"
	"github.com/anysync/anysync/store/repo"
)

func testKeys() *crypto.AccountKeys {
	k := &crypto.AccountKeys{}
	for i := range k.FileKey {
		k.FileKey[i] = 3
		k.AuthKey[i] = 4
	}
	return k
}

// smallChunks keeps tests fast while files still span many chunks.
var smallChunks = chunker.Params{Min: 8 << 10, Avg: 32 << 10, Max: 128 << 10}

// memRemote is a server head in memory: versions, compare-and-swap, and
// the server's index (only what commits carried).
type memRemote struct {
	mu       sync.Mutex
	versions []Head
	index    map[crypto.ID]repo.Location
	commits  int
	// beforeCommit runs (unlocked) before each commit; tests move the head
	// from it to play another device.
	beforeCommit func()
}

func newMemRemote() *memRemote { return &memRemote{index: map[crypto.ID]repo.Location{}} }

func (m *memRemote) Head(context.Context) (Head, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.versions) == 0 {
		return Head{}, nil
	}
	return m.versions[len(m.versions)-1], nil
}

func (m *memRemote) Versions(_ context.Context, after uint64, limit int) ([]Head, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []Head
	for _, v := range m.versions {
		if v.Seq > after && len(out) < limit {
			out = append(out, v)
		}
	}
	return out, nil
}

func (m *memRemote) Commit(_ context.Context, expected uint64, version, parent crypto.ID, entries []repo.IndexEntry) (Head, error) {
	if f := m.beforeCommit; f != nil {
		f()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if expected != uint64(len(m.versions)) {
		return Head{}, fmt.Errorf("head is at %d: %w", len(m.versions), ErrHeadMoved)
	}
	var headVersion crypto.ID
	if len(m.versions) > 0 {
		headVersion = m.versions[len(m.versions)-1].Version
	}
	if parent != headVersion {
		return Head{}, errors.New("parent is not the head")
	}
	if len(entries) > MaxCommitEntries {
		return Head{}, errors.New("too many entries")
	}
	for _, e := range entries {
		m.index[e.ID] = e.Location
	}
	if _, ok := m.index[version]; !ok {
		return Head{}, errors.New("version blob not indexed")
	}
	h := Head{Seq: uint64(len(m.versions)) + 1, Version: version}
	m.versions = append(m.versions, h)
	m.commits++
	return h, nil
}

// device is one client of the account: its own index, synced from the
// server's.
type device struct {
	remote *memRemote
	index  *repo.MemIndex
}

func (d *device) SyncIndex(context.Context) error {
	d.remote.mu.Lock()
	entries := make([]repo.IndexEntry, 0, len(d.remote.index))
	for id, loc := range d.remote.index {
		entries = append(entries, repo.IndexEntry{ID: id, Location: loc})
	}
	d.remote.mu.Unlock()
	return d.index.Add(entries)
}

// deviceRemote is the Remote a device sees: the shared head, its own index.
type deviceRemote struct {
	*memRemote
	dev *device
}

func (r deviceRemote) SyncIndex(ctx context.Context) error { return r.dev.SyncIndex(ctx) }

// countingStore counts the bytes stored through it.
type countingStore struct {
	objstore.ObjectStore
	put  atomic.Int64
	puts atomic.Int64
}

func (c *countingStore) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if err := c.ObjectStore.Put(ctx, name, r, size); err != nil {
		return err
	}
	c.put.Add(size)
	c.puts.Add(1)
	return nil
}

// world is one account: storage, server, and device accounts on it.
type world struct {
	objs   *countingStore
	remote *memRemote
	cache  string
}

func newWorld(t *testing.T) *world {
	return &world{objs: &countingStore{ObjectStore: objstore.NewMem()}, remote: newMemRemote(), cache: t.TempDir()}
}

// account returns a new device of the account, with an empty index.
func (w *world) account() *Account {
	d := &device{remote: w.remote, index: repo.NewMemIndex()}
	return &Account{Keys: testKeys(), Objects: w.objs, Index: d.index, Remote: deviceRemote{w.remote, d},
		Chunker: &smallChunks, PackSize: 256 << 10}
}

func (w *world) backup(t *testing.T, acct *Account, dir string, mod func(*Options)) (*Summary, error) {
	t.Helper()
	o := Options{Account: acct, Dir: dir, CloudPath: "/Backups/test/data", CacheDir: w.cache, Device: "test"}
	if mod != nil {
		mod(&o)
	}
	return Run(context.Background(), o)
}

func (w *world) mustBackup(t *testing.T, acct *Account, dir string, mod func(*Options)) *Summary {
	t.Helper()
	s, err := w.backup(t, acct, dir, mod)
	if err != nil {
		t.Fatalf("backup: %v", err)
	}
	return s
}

func (w *world) restore(t *testing.T, cloudPath string, version uint64) (string, *RestoreSummary) {
	t.Helper()
	dst := filepath.Join(t.TempDir(), "restored")
	s, err := Restore(context.Background(), RestoreOptions{Account: w.account(), CloudPath: cloudPath, Version: version, Target: dst})
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	return dst, s
}

func randomBytes(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

func writeFile(t *testing.T, path string, data []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil { // WriteFile's mode is masked by umask
		t.Fatal(err)
	}
}

// xattrsSupported reports whether dir's file system takes user xattrs.
func xattrsSupported(t *testing.T, dir string) bool {
	p := filepath.Join(dir, ".xattr-probe")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(p)
	return unix.Setxattr(p, "user.probe", []byte("1"), 0) == nil
}

// settle waits until files just written are older than the racy window,
// so a backup trusts their timestamps.
func settle() { time.Sleep(2 * racyWindow) }

// node is what a comparison looks at for one path.
type node struct {
	Kind    string
	Mode    fs.FileMode
	Size    int64
	ModTime int64
	Sum     [32]byte
	Target  string
	Xattrs  map[string]string
}

// snapshot describes every entry below dir (not dir itself), by relative
// path. Directory mtimes are included.
func snapshot(t *testing.T, dir string) map[string]node {
	t.Helper()
	out := map[string]node{}
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
		n := node{Mode: fs.FileMode(st.Mode & 0o7777), ModTime: st.Mtim.Nano()}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			n.Kind = "dir"
		case unix.S_IFLNK:
			n.Kind = "symlink"
			n.Mode = 0 // symlink modes are not restorable on Linux
			if n.Target, err = os.Readlink(p); err != nil {
				return err
			}
		case unix.S_IFREG:
			n.Kind = "file"
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			n.Size, n.Sum = int64(len(data)), sha256.Sum256(data)
		default:
			n.Kind = "special"
		}
		if n.Kind != "symlink" {
			n.Xattrs = listXattrs(t, p)
		}
		out[filepath.ToSlash(rel)] = n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func listXattrs(t *testing.T, p string) map[string]string {
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if err != nil || n == 0 {
		return nil
	}
	out := map[string]string{}
	for _, name := range bytes.Split(buf[:n], []byte{0}) {
		if len(name) == 0 || !keepXattr(string(name)) {
			continue
		}
		v := make([]byte, 64<<10)
		m, err := unix.Lgetxattr(p, string(name), v)
		if err != nil {
			t.Fatalf("getxattr %s %s: %v", p, name, err)
		}
		out[string(name)] = string(v[:m])
	}
	return out
}

func compareTrees(t *testing.T, want, got map[string]node) {
	t.Helper()
	for p, w := range want {
		g, ok := got[p]
		if !ok {
			t.Errorf("%s: missing after restore", p)
			continue
		}
		if fmt.Sprint(w) != fmt.Sprint(g) {
			t.Errorf("%s:\n got  %+v\n want %+v", p, g, w)
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: restored but not in the source", p)
		}
	}
}
