package syncer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/fs/localdb"
	"github.com/anysync/anysync/fs/node"
	"github.com/anysync/anysync/store/chunker"
	"github.com/anysync/anysync/store/objstore"
	"github.com/anysync/anysync/store/repo"
)

// fakeRemote is the server's head and index, in memory.
type fakeRemote struct {
	mu    sync.Mutex
	seq   uint64
	head  crypto.ID
	index []repo.IndexEntry
}

func (r *fakeRemote) Head(context.Context) (Head, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return Head{Seq: r.seq, Version: r.head}, nil
}

func (r *fakeRemote) Commit(_ context.Context, expected uint64, v, parent crypto.ID, entries []repo.IndexEntry) (Head, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if expected != r.seq || parent != r.head {
		return Head{}, ErrHeadMoved
	}
	r.index = append(r.index, entries...)
	r.seq++
	r.head = v
	return Head{Seq: r.seq, Version: v}, nil
}

func (r *fakeRemote) IndexSince(_ context.Context, cursor uint64) ([]repo.IndexEntry, uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	end := min(int(cursor)+100, len(r.index))
	if int(cursor) >= end {
		return nil, cursor, nil
	}
	return append([]repo.IndexEntry(nil), r.index[cursor:end]...), uint64(end), nil
}

type cloud struct {
	keys   *crypto.AccountKeys
	objs   objstore.ObjectStore
	remote *fakeRemote
}

func newCloud(t *testing.T) *cloud {
	keys, err := crypto.NewAccountKeys()
	if err != nil {
		t.Fatal(err)
	}
	return &cloud{keys: keys, objs: objstore.NewMem(), remote: &fakeRemote{}}
}

type device struct {
	t    *testing.T
	db   *localdb.DB
	fs   *node.FS
	sync *Syncer
	ctx  context.Context
}

func (c *cloud) device(t *testing.T, name string) *device {
	t.Helper()
	ctx := context.Background()
	home := t.TempDir()
	db, err := localdb.Open(filepath.Join(home, "node.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	params := chunker.Params{Min: 1 << 10, Avg: 4 << 10, Max: 16 << 10}
	rp, err := repo.Open(repo.Config{Keys: c.keys, Objects: c.objs, Index: Index{DB: db}, PackSize: 64 << 10, Chunker: &params})
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := node.New(ctx, node.Config{DB: db, StagingDir: filepath.Join(home, "staging"), Content: ContentSource{Ctx: ctx, Repo: rp}})
	if err != nil {
		t.Fatal(err)
	}
	s := New(Config{FS: fsys, DB: db, Repo: rp, Remote: c.remote, Device: name})
	return &device{t: t, db: db, fs: fsys, sync: s, ctx: ctx}
}

// resolve walks a slash path to a node.
func (d *device) resolve(p string) node.Attr {
	d.t.Helper()
	a, err := d.fs.GetAttr(d.ctx, localdb.RootIno)
	if err != nil {
		d.t.Fatal(err)
	}
	for _, part := range strings.Split(strings.Trim(p, "/"), "/") {
		if part == "" {
			continue
		}
		if a, err = d.fs.Lookup(d.ctx, a.Ino, part); err != nil {
			d.t.Fatalf("lookup %s: %v", p, err)
		}
	}
	return a
}

func (d *device) dirOf(p string) (uint64, string) {
	dir, name := filepath.Split(p)
	return d.resolve(dir).Ino, name
}

func (d *device) write(p, content string) {
	d.t.Helper()
	parent, name := d.dirOf(p)
	var h *node.Handle
	if a, err := d.fs.Lookup(d.ctx, parent, name); err == nil {
		h, err = d.fs.Open(d.ctx, a.Ino, syscall.O_WRONLY|syscall.O_TRUNC)
		if err != nil {
			d.t.Fatal(err)
		}
	} else {
		if _, h, err = d.fs.Create(d.ctx, parent, name, syscall.O_WRONLY, 0o644); err != nil {
			d.t.Fatal(err)
		}
	}
	if _, err := h.WriteAt(d.ctx, []byte(content), 0); err != nil {
		d.t.Fatal(err)
	}
	if err := h.Release(d.ctx); err != nil {
		d.t.Fatal(err)
	}
}

// openPartial leaves /open.txt open for writing with "partial" written and
// writes /closed.txt ("done") beside it.
func (d *device) openPartial() *node.Handle {
	d.t.Helper()
	_, h, err := d.fs.Create(d.ctx, localdb.RootIno, "open.txt", syscall.O_RDWR, 0o644)
	if err != nil {
		d.t.Fatal(err)
	}
	if _, err := h.WriteAt(d.ctx, []byte("partial"), 0); err != nil {
		d.t.Fatal(err)
	}
	d.write("/closed.txt", "done")
	return h
}

func (d *device) read(p string) string {
	d.t.Helper()
	a := d.resolve(p)
	h, err := d.fs.Open(d.ctx, a.Ino, syscall.O_RDONLY)
	if err != nil {
		d.t.Fatal(err)
	}
	defer func() { _ = h.Release(d.ctx) }()
	buf := make([]byte, a.Size+1)
	n, err := h.ReadAt(d.ctx, buf, 0)
	if err != nil {
		d.t.Fatal(err)
	}
	return string(buf[:n])
}

func (d *device) mkdir(p string) {
	d.t.Helper()
	parent, name := d.dirOf(p)
	if _, err := d.fs.Mkdir(d.ctx, parent, name, 0o755); err != nil {
		d.t.Fatal(err)
	}
}

func (d *device) commit() {
	d.t.Helper()
	if _, err := d.sync.SyncOnce(d.ctx); err != nil {
		d.t.Fatal(err)
	}
}

func (d *device) pull() {
	d.t.Helper()
	if err := d.sync.Pull(d.ctx); err != nil {
		d.t.Fatal(err)
	}
}

// listing renders the whole tree: path, kind, mode, content or target.
func (d *device) listing() string {
	d.t.Helper()
	var lines []string
	var walk func(ino uint64, prefix string)
	walk = func(ino uint64, prefix string) {
		ents, err := d.fs.ReadDir(d.ctx, ino, "", 1<<20)
		if err != nil {
			d.t.Fatal(err)
		}
		for _, e := range ents {
			p := prefix + "/" + e.Name
			switch e.Attr.Kind {
			case localdb.KindDir:
				lines = append(lines, fmt.Sprintf("%s/ %o", p, e.Attr.Mode))
				walk(e.Attr.Ino, p)
			case localdb.KindSymlink:
				t, err := d.fs.Readlink(d.ctx, e.Attr.Ino)
				if err != nil {
					d.t.Fatal(err)
				}
				lines = append(lines, fmt.Sprintf("%s -> %s", p, t))
			default:
				lines = append(lines, fmt.Sprintf("%s %o %d %q", p, e.Attr.Mode, e.Attr.Mtime, d.read(p)))
			}
		}
	}
	walk(localdb.RootIno, "")
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

func TestCommitAndPull(t *testing.T) {
	c := newCloud(t)
	a, b := c.device(t, "A"), c.device(t, "B")
	a.mkdir("/docs")
	a.mkdir("/docs/deep")
	a.write("/docs/deep/x.txt", "x content")
	big := strings.Repeat("0123456789abcdef", 20000)
	a.write("/big.bin", big)
	if _, err := a.fs.Symlink(a.ctx, localdb.RootIno, "link", "docs/deep/x.txt"); err != nil {
		t.Fatal(err)
	}
	if err := a.fs.SetXattr(a.ctx, a.resolve("/docs").Ino, "user.tag", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
	a.commit()
	if c.remote.seq != 1 {
		t.Fatalf("seq %d after one commit", c.remote.seq)
	}
	b.pull()
	if got, want := b.listing(), a.listing(); got != want {
		t.Fatalf("B differs from A:\n%s\n--- want\n%s", got, want)
	}
	if v, err := b.fs.GetXattr(b.ctx, b.resolve("/docs").Ino, "user.tag"); err != nil || string(v) != "v" {
		t.Fatalf("xattr on B: %q %v", v, err)
	}

	// Renames, deletes and edits travel too.
	if err := a.fs.Rename(a.ctx, a.resolve("/docs").Ino, "deep", localdb.RootIno, "moved", 0); err != nil {
		t.Fatal(err)
	}
	if err := a.fs.Unlink(a.ctx, localdb.RootIno, "big.bin"); err != nil {
		t.Fatal(err)
	}
	a.write("/moved/x.txt", "edited")
	a.commit()
	b.pull()
	if got, want := b.listing(), a.listing(); got != want {
		t.Fatalf("B differs from A after changes:\n%s\n--- want\n%s", got, want)
	}
	// Nothing changed: no new version.
	a.commit()
	if c.remote.seq != 2 {
		t.Fatalf("seq %d, want 2", c.remote.seq)
	}
}

func TestMergeAndConflict(t *testing.T) {
	c := newCloud(t)
	a, b := c.device(t, "A"), c.device(t, "B")
	a.write("/shared.txt", "base")
	a.write("/a-only.txt", "a")
	a.commit()
	b.pull()

	a.write("/shared.txt", "from A")
	a.write("/new-a.txt", "new a")
	b.write("/shared.txt", "from B")
	b.write("/new-b.txt", "new b")
	if err := b.fs.Unlink(b.ctx, localdb.RootIno, "a-only.txt"); err != nil {
		t.Fatal(err)
	}
	a.commit()
	b.commit() // head moved: merge, conflict copy, commit
	a.pull()
	if got, want := a.listing(), b.listing(); got != want {
		t.Fatalf("devices differ:\n%s\n--- B\n%s", got, want)
	}
	if got := a.read("/shared.txt"); got != "from A" {
		t.Fatalf("shared.txt = %q, want the first committer's", got)
	}
	ents, err := a.fs.ReadDir(a.ctx, localdb.RootIno, "", 100)
	if err != nil {
		t.Fatal(err)
	}
	var conflict string
	var names []string
	for _, e := range ents {
		names = append(names, e.Name)
		if strings.HasPrefix(e.Name, "shared (conflict B ") && strings.HasSuffix(e.Name, ").txt") {
			conflict = e.Name
		}
	}
	if conflict == "" || a.read("/"+conflict) != "from B" {
		t.Fatalf("no conflict copy with B's content in %v", names)
	}
	if _, err := a.fs.Lookup(a.ctx, localdb.RootIno, "a-only.txt"); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("a-only.txt deleted on B is still on A: %v", err)
	}
	if a.read("/new-b.txt") != "new b" || b.read("/new-a.txt") != "new a" {
		t.Fatal("independent additions were not merged")
	}
}

func TestOpenFileWaitsForClose(t *testing.T) {
	c := newCloud(t)
	a, b := c.device(t, "A"), c.device(t, "B")
	h := a.openPartial()
	a.commit()
	b.pull()
	if _, err := b.fs.Lookup(b.ctx, localdb.RootIno, "open.txt"); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("a file still open for writing was committed: %v", err)
	}
	if b.read("/closed.txt") != "done" {
		t.Fatal("closed file missing")
	}
	if err := h.Release(a.ctx); err != nil {
		t.Fatal(err)
	}
	a.commit()
	b.pull()
	if b.read("/open.txt") != "partial" {
		t.Fatal("file not committed after close")
	}
}

func TestRollbackRefused(t *testing.T) {
	c := newCloud(t)
	a := c.device(t, "A")
	a.write("/f", "1")
	a.commit()
	a.write("/f", "2")
	a.commit()
	c.remote.mu.Lock()
	c.remote.seq = 1
	c.remote.mu.Unlock()
	if err := a.sync.Pull(a.ctx); !errors.Is(err, ErrRollback) {
		t.Fatalf("pull of an older head: %v, want ErrRollback", err)
	}
}

// TestStaleAnnouncementSkipped: a head announced before this device
// committed a later one arrives late; it is skipped, not taken for a
// rollback (the soak test's logs were full of false alarms).
func TestStaleAnnouncementSkipped(t *testing.T) {
	c := newCloud(t)
	a := c.device(t, "A")
	a.write("/f", "1")
	a.commit()
	first, err := a.sync.localHead(a.ctx)
	if err != nil {
		t.Fatal(err)
	}
	a.write("/f", "2")
	a.commit()
	if err := a.sync.PullHead(a.ctx, first.Head); err != nil {
		t.Fatalf("stale announced head %d: %v", first.Seq, err)
	}
	if got := a.read("/f"); got != "2" {
		t.Fatalf("f = %q after a stale announcement, want the newer commit's", got)
	}
	// Read from the server, the same head is a rollback.
	c.remote.mu.Lock()
	c.remote.seq = first.Seq
	c.remote.mu.Unlock()
	if err := a.sync.Pull(a.ctx); !errors.Is(err, ErrRollback) {
		t.Fatalf("pull of an older head: %v, want ErrRollback", err)
	}
}

func TestPendingSurvivesRestart(t *testing.T) {
	c := newCloud(t)
	a := c.device(t, "A")
	a.write("/f", "content")
	// A new node layer on the same database (a restart) still has it
	// pending, and commits it.
	fs2, err := node.New(a.ctx, node.Config{DB: a.db, StagingDir: filepath.Join(filepath.Dir(a.db.Path()), "staging")})
	if err != nil {
		t.Fatal(err)
	}
	_ = fs2
	pending, err := a.db.Pending(a.ctx)
	if err != nil || len(pending) != 1 {
		t.Fatalf("pending %v %v", pending, err)
	}
	a.commit()
	b := c.device(t, "B")
	b.pull()
	if got := b.read("/f"); !bytes.Equal([]byte(got), []byte("content")) {
		t.Fatalf("got %q", got)
	}
}

func (d *device) exists(p string) bool {
	d.t.Helper()
	parent, name := d.dirOf(p)
	_, err := d.fs.Lookup(d.ctx, parent, name)
	return err == nil
}

// TestMergeKeepsData covers the cases where one side deletes or moves what
// the other changes: nothing changed is ever lost.
func TestMergeKeepsData(t *testing.T) {
	c := newCloud(t)
	a, b := c.device(t, "A"), c.device(t, "B")
	a.mkdir("/dir")
	a.write("/dir/old.txt", "old")
	a.write("/f1", "v1")
	a.write("/f2", "v1")
	a.commit()
	b.pull()

	// A renames the folder and deletes f1; B adds a file in the folder and
	// edits f1; A deletes f2 after B edited it.
	if err := a.fs.Rename(a.ctx, localdb.RootIno, "dir", localdb.RootIno, "renamed", 0); err != nil {
		t.Fatal(err)
	}
	if err := a.fs.Unlink(a.ctx, localdb.RootIno, "f1"); err != nil {
		t.Fatal(err)
	}
	b.write("/dir/new.txt", "new")
	b.write("/f1", "edited by B")
	b.write("/f2", "edited by B")
	b.commit()
	if err := a.fs.Unlink(a.ctx, localdb.RootIno, "f2"); err != nil {
		t.Fatal(err)
	}
	a.commit() // merges B's version
	b.pull()
	if got, want := a.listing(), b.listing(); got != want {
		t.Fatalf("devices differ:\n%s\n--- B\n%s", got, want)
	}
	if a.read("/dir/new.txt") != "new" || a.read("/renamed/old.txt") != "old" {
		t.Fatalf("files lost around the renamed folder:\n%s", a.listing())
	}
	// Edit wins over delete, whichever side committed first.
	if a.read("/f2") != "edited by B" {
		t.Fatalf("f2 edited by B and deleted later by A is gone:\n%s", a.listing())
	}
	if !b.exists("/f1") || b.read("/f1") != "edited by B" {
		t.Fatalf("f1 edited by B and deleted earlier by A is gone:\n%s", b.listing())
	}
}

// While changes go on, closed files upload ahead of the commit, without
// committing; a file open for writing waits; the commit after uses what
// was uploaded.
func TestUploadAheadWhileBusy(t *testing.T) {
	c := newCloud(t)
	a, b := c.device(t, "A"), c.device(t, "B")
	a.sync.cfg.Quiet = 50 * time.Millisecond
	h := a.openPartial()

	ctx, cancel := context.WithCancel(a.ctx)
	defer cancel()
	done := make(chan struct{})
	go func() { a.sync.Run(ctx); close(done) }()
	pendingNames := func() []string {
		ps, err := a.db.Pending(a.ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, p := range ps {
			names = append(names, p.Name)
		}
		return names
	}
	// Keep kicking, as a writer would: the quiet period never comes.
	deadline := time.Now().Add(10 * time.Second)
	for {
		a.sync.Kick()
		if names := pendingNames(); len(names) == 1 && names[0] == "open.txt" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing uploaded ahead; pending %v", pendingNames())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, commits, err := a.sync.Position(a.ctx); err != nil || commits != 0 {
		t.Fatalf("uploading ahead committed (%d commits, %v)", commits, err)
	}
	cancel()
	<-done

	if err := h.Release(a.ctx); err != nil {
		t.Fatal(err)
	}
	a.commit()
	b.pull()
	if got := b.read("/closed.txt"); got != "done" {
		t.Fatalf("file uploaded ahead reads %q", got)
	}
	if got := b.read("/open.txt"); got != "partial" {
		t.Fatalf("file closed later reads %q", got)
	}
}

// countingObjects counts stored objects and can refuse to store them.
type countingObjects struct {
	objstore.ObjectStore
	puts atomic.Int32
	down atomic.Bool
}

func (o *countingObjects) Put(ctx context.Context, name string, r io.Reader, size int64) error {
	if o.down.Load() {
		return errors.New("storage down")
	}
	o.puts.Add(1)
	return o.ObjectStore.Put(ctx, name, r, size)
}

// TestUploadRecordsOncePacksAreStored: a pass over many batches of small
// files records them once their pack is stored, not with a pack per batch
// (360 packs for the Go tree); if the pack cannot be stored, nothing is
// recorded and every file stays pending.
func TestUploadRecordsOncePacksAreStored(t *testing.T) {
	c := newCloud(t)
	objs := &countingObjects{ObjectStore: c.objs}
	c.objs = objs
	d := c.device(t, "A")
	d.sync.recordEvery = time.Hour // only the end of the pass records
	const files = 10 * uploadBatch
	for i := range files {
		d.write(fmt.Sprintf("/f%03d", i), fmt.Sprintf("content %d", i))
	}
	pending := func() []localdb.Node {
		ps, err := d.db.Pending(d.ctx)
		if err != nil {
			t.Fatal(err)
		}
		return ps
	}

	objs.down.Store(true)
	if err := d.sync.uploadAll(d.ctx, pending()); err == nil {
		t.Fatal("upload with the storage down succeeded")
	}
	if n := len(pending()); n != files {
		t.Fatalf("after a failed pack upload %d of %d files are pending", n, files)
	}

	objs.down.Store(false)
	if err := d.sync.uploadAll(d.ctx, pending()); err != nil {
		t.Fatal(err)
	}
	if n := len(pending()); n != 0 {
		t.Fatalf("%d files pending after the upload", n)
	}
	if n := objs.puts.Load(); n != 1 {
		t.Fatalf("%d batches of small files stored %d packs, want 1", files/uploadBatch, n)
	}
	d.commit()
	b := c.device(t, "B")
	b.pull()
	if got := b.read("/f123"); got != "content 123" {
		t.Fatalf("/f123 on another device reads %q", got)
	}
}

// TestStoreAheadWhileWriting: a large file being written is stored a
// prefix at a time before it closes; changed inside that prefix before
// the close, it still commits exactly what was written last.
func TestStoreAheadWhileWriting(t *testing.T) {
	c := newCloud(t)
	objs := &countingObjects{ObjectStore: c.objs}
	c.objs = objs
	a := c.device(t, "A")
	a.sync.growStep = 256 << 10
	ctx := a.ctx

	data := make([]byte, 3<<20)
	for i := range data {
		data[i] = byte(i*7 + i/4096)
	}
	_, h, err := a.fs.Create(ctx, localdb.RootIno, "big", syscall.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt(ctx, data[:2<<20], 0); err != nil {
		t.Fatal(err)
	}
	if err := a.sync.growAhead(ctx); err != nil {
		t.Fatal(err)
	}
	gf := a.sync.grown.files[a.resolve("/big").Ino]
	if gf == nil || gf.covered < 1<<20 || objs.puts.Load() == 0 {
		t.Fatalf("nothing stored ahead of the open file (%+v, %d packs)", gf, objs.puts.Load())
	}

	// Change a byte inside the stored prefix, and write the rest.
	data[1000] ^= 0xff
	if _, err := h.WriteAt(ctx, data[1000:1001], 1000); err != nil {
		t.Fatal(err)
	}
	if _, err := h.WriteAt(ctx, data[2<<20:], 2<<20); err != nil {
		t.Fatal(err)
	}
	if err := h.Release(ctx); err != nil {
		t.Fatal(err)
	}
	a.commit()
	b := c.device(t, "B")
	b.pull()
	if got := b.read("/big"); got != string(data) {
		t.Fatal("the file stored ahead and changed before its close reads back wrong on another device")
	}
}

// TestRemoteChangeWhileOpen: a file open for reading on B when A's new
// version of it arrives reads the new content through a new open.
func TestRemoteChangeWhileOpen(t *testing.T) {
	c := newCloud(t)
	a, b := c.device(t, "A"), c.device(t, "B")
	a.write("/f", "old")
	a.commit()
	b.pull()
	h, err := b.fs.Open(b.ctx, b.resolve("/f").Ino, syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = h.Release(b.ctx) }()
	a.write("/f", "new and longer")
	a.commit()
	b.pull()
	if got := b.read("/f"); got != "new and longer" {
		t.Fatalf("f = %q on B after A's change, while an old handle is open", got)
	}
}

// TestRemoteChangeUnderOpenCopy: B holds a file open for writing, not
// written yet (a local copy of the old content), when A's new version
// arrives: B's handles read the new content, B's write applies to it, and
// the old copy's staging file does not outlive it. The new content is
// read first through the writing handle, or through a reading one (which
// leaves the writer no local copy to write to).
func TestRemoteChangeUnderOpenCopy(t *testing.T) {
	for _, size := range []int{100, node.InlineMax + 100} {
		for _, viaReader := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d/reader=%v", size, viaReader), func(t *testing.T) {
				c := newCloud(t)
				a, b := c.device(t, "A"), c.device(t, "B")
				a.write("/f", strings.Repeat("o", size))
				a.commit()
				b.pull()
				ino := b.resolve("/f").Ino
				h, err := b.fs.Open(b.ctx, ino, syscall.O_RDWR)
				if err != nil {
					t.Fatal(err)
				}
				r, err := b.fs.Open(b.ctx, ino, syscall.O_RDONLY)
				if err != nil {
					t.Fatal(err)
				}
				newer := strings.Repeat("n", size+10)
				a.write("/f", newer)
				a.commit()
				b.pull()
				first := h
				if viaReader {
					first = r
				}
				buf := make([]byte, size+20)
				if n, err := first.ReadAt(b.ctx, buf, 0); err != nil || string(buf[:n]) != newer {
					t.Fatalf("open handle after A's change read %d bytes (%.10q...), %v; want A's %d", n, buf[:n], err, len(newer))
				}
				if _, err := h.WriteAt(b.ctx, []byte("X"), 0); err != nil {
					t.Fatalf("write after A's change: %v", err)
				}
				for _, h := range []*node.Handle{h, r} {
					if err := h.Release(b.ctx); err != nil {
						t.Fatal(err)
					}
				}
				want := "X" + newer[1:]
				if got := b.read("/f"); got != want {
					t.Fatalf("f on B = %.10q... (%d bytes), want %.10q... (%d)", got, len(got), want, len(want))
				}
				b.commit()
				a.pull()
				if got := a.read("/f"); got != want {
					t.Fatalf("f on A = %.10q... (%d bytes), want B's write on A's content", got, len(got))
				}
				left, err := os.ReadDir(filepath.Join(filepath.Dir(b.db.Path()), "staging"))
				if err != nil || len(left) != 0 {
					t.Fatalf("staging files left on B after commit: %v, %v", left, err)
				}
			})
		}
	}
}
