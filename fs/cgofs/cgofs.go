//go:build windows || (darwin && cgo) || (linux && cgo && fuse3)

package cgofs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/winfsp/cgofuse/fuse"

	"github.com/anysync/anysync/fs/localdb"
	"github.com/anysync/anysync/fs/node"
)

// Mount is a mounted drive.
type Mount struct {
	host *fuse.FileSystemHost
	fs   *fsys
	dir  string
	done chan struct{} // closed when the host's Mount returns
	err  error         // why Mount failed; set before done is closed
}

// New mounts fsys at dir and returns once the mount is ready. On Windows
// dir is a drive letter ("X:") or a folder that does not exist yet.
func New(dir string, nfs *node.FS, opts Options) (*Mount, error) {
	f := &fsys{
		r:       resolver{fsys: nfs, winNames: opts.WindowsNames, fold: opts.CaseInsensitive},
		opts:    opts,
		uid:     uint32(os.Getuid()),
		gid:     uint32(os.Getgid()),
		handles: map[uint64]*node.Handle{},
		hidden:  map[string]uint64{},
		ready:   make(chan struct{}),
	}
	if runtime.GOOS == "windows" {
		// WinFsp maps -1 to the user who mounted (with uid=-1 below).
		f.uid, f.gid = ^uint32(0), ^uint32(0)
	}
	m := &Mount{host: fuse.NewFileSystemHost(f), fs: f, dir: dir, done: make(chan struct{})}
	m.host.SetCapCaseInsensitive(opts.CaseInsensitive)
	m.host.SetCapReaddirPlus(true)
	m.host.SetCapOpenTrunc(true)
	m.host.SetUseIno(true)
	go m.serve(mountOptions(opts))
	select {
	case <-f.ready:
	case <-m.done:
		return nil, fmt.Errorf("mount %s: %w", dir, m.err)
	}
	if runtime.GOOS == "windows" {
		// WinFsp calls Init slightly before the drive appears.
		for start := time.Now(); time.Since(start) < 10*time.Second; time.Sleep(10 * time.Millisecond) {
			if _, err := os.Stat(dir); err == nil {
				break
			}
		}
	}
	return m, nil
}

// serve runs the host's loop until the drive is unmounted.
func (m *Mount) serve(args []string) {
	defer close(m.done)
	defer func() {
		// cgofuse panics when it cannot load the FUSE library.
		if r := recover(); r != nil {
			m.err = fmt.Errorf("%v (%s)", r, installHint())
		}
	}()
	if !m.host.Mount(m.dir, args) {
		m.err = errors.New("the FUSE library refused the mount (see the log above)")
	}
}

// installHint says what the platform's FUSE library is.
func installHint() string {
	switch runtime.GOOS {
	case "windows":
		return "install WinFsp: https://winfsp.dev"
	case "darwin":
		return "install macFUSE: https://osxfuse.github.io"
	}
	return "install libfuse3 (Debian: apt-get install fuse3)"
}

// mountOptions are the FUSE library's options for opts.
func mountOptions(opts Options) []string {
	var args []string
	if opts.Debug {
		args = append(args, "-d")
	}
	switch runtime.GOOS {
	case "windows":
		args = append(args, "-o", "uid=-1", "-o", "gid=-1", "--FileSystemName=AnySync",
			"-o", fmt.Sprintf("FileInfoTimeout=%d", opts.AttrTimeout.Milliseconds()))
		if opts.VolumeName != "" {
			args = append(args, "-o", "volname="+opts.VolumeName)
		}
	case "darwin":
		args = append(args, "-o", "fsname=anysync", "-o", fmt.Sprintf("attr_timeout=%g", opts.AttrTimeout.Seconds()))
		if opts.VolumeName != "" {
			args = append(args, "-o", "volname="+opts.VolumeName)
		}
	default:
		// cgofuse resets libfuse 3's configuration (timeouts, hard_remove)
		// when the mount starts: the kernel caches nothing, and a file
		// unlinked while open is renamed to .fuse_hidden first (see
		// Rename3).
		args = append(args, "-o", "fsname=anysync", "-o", "subtype=anysync", "-o", "max_idle_threads=16")
	}
	return args
}

// Unmount unmounts the drive.
func (m *Mount) Unmount() error {
	select {
	case <-m.done:
		return nil
	default:
	}
	if !m.host.Unmount() {
		return fmt.Errorf("unmount %s: refused", m.dir)
	}
	return nil
}

// Wait returns when the mount is gone (unmounted by anyone).
func (m *Mount) Wait() { <-m.done }

// InvalidateContent tells the host that a node's content or listing
// changed. Only WinFsp takes notifications (Explorer then refreshes); on
// Linux and macOS the kernel caches nothing for longer than AttrTimeout.
func (m *Mount) InvalidateContent(ino uint64) {
	if runtime.GOOS != "windows" {
		return
	}
	ctx := context.Background()
	p, err := m.fs.r.hostPath(ctx, ino)
	if err != nil {
		return
	}
	m.host.Notify(p, fuse.NOTIFY_CHMOD|fuse.NOTIFY_UTIME|fuse.NOTIFY_TRUNCATE)
}

// InvalidateEntry tells the host that a name appeared, disappeared or
// now names another node.
func (m *Mount) InvalidateEntry(parent uint64, name string) {
	if runtime.GOOS != "windows" {
		return
	}
	ctx := context.Background()
	dir, err := m.fs.r.hostPath(ctx, parent)
	if err != nil {
		return
	}
	p := strings.TrimSuffix(dir, "/") + "/" + m.fs.r.hostName(name)
	a, err := m.fs.r.fsys.Lookup(ctx, parent, name)
	switch {
	case err != nil:
		m.host.Notify(p, fuse.NOTIFY_UNLINK)
	case a.Kind == localdb.KindDir:
		m.host.Notify(p, fuse.NOTIFY_MKDIR)
	default:
		m.host.Notify(p, fuse.NOTIFY_CREATE)
	}
}

// fsys is the cgofuse file system: every call resolves its path to a node
// and hands the request to the node layer.
type fsys struct {
	fuse.FileSystemBase
	r        resolver
	opts     Options
	uid, gid uint32
	ready    chan struct{}

	mu      sync.Mutex
	handles map[uint64]*node.Handle // open files by cgofuse handle
	nextFh  uint64
	// hidden maps the .fuse_hidden names libfuse gave files unlinked
	// while open to their nodes (see Rename3).
	hidden map[string]uint64
}

var (
	_ fuse.FileSystemInterface = (*fsys)(nil)
	_ fuse.FileSystemRename3   = (*fsys)(nil)
	_ fuse.FileSystemChmod3    = (*fsys)(nil)
	_ fuse.FileSystemChown3    = (*fsys)(nil)
	_ fuse.FileSystemUtimens3  = (*fsys)(nil)
	_ fuse.FileSystemGetpath   = (*fsys)(nil)
)

// noFh is cgofuse's "no file handle".
const noFh = ^uint64(0)

// bg is the context of every request: FUSE interrupts are not honoured
// (see fusefs), and remote fetches have their own timeouts.
func bg() context.Context { return context.Background() }

func (f *fsys) Init() { close(f.ready) }

// errc turns a node-layer error into cgofuse's negative error number.
// Internal errors are logged and reported as EIO.
func (f *fsys) errc(err error) int {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		if n, ok := errnos[e]; ok {
			return -n
		}
	}
	if f.opts.Logger != nil {
		f.opts.Logger.Printf("anysync: %v", err)
	}
	return -fuse.EIO
}

func (f *fsys) handle(fh uint64) *node.Handle {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.handles[fh]
}

func (f *fsys) addHandle(h *node.Handle) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextFh++
	f.handles[f.nextFh] = h
	return f.nextFh
}

// attr returns the node a request is about: its open file, if it has one,
// else the one at its path.
func (f *fsys) attr(path string, fh uint64) (node.Attr, error) {
	if h := f.handle(fh); h != nil {
		return f.r.fsys.GetAttr(bg(), h.Ino())
	}
	f.mu.Lock()
	ino, hidden := f.hidden[path]
	f.mu.Unlock()
	if hidden {
		return f.r.fsys.GetAttr(bg(), ino)
	}
	return f.r.walk(bg(), path)
}

func typeBits(k localdb.Kind) uint32 {
	switch k {
	case localdb.KindDir:
		return fuse.S_IFDIR
	case localdb.KindSymlink:
		return fuse.S_IFLNK
	}
	return fuse.S_IFREG
}

// nodeMode translates the host's file type bits to the node layer's.
func nodeMode(mode uint32) uint32 {
	perm := mode & 0o7777
	switch mode & fuse.S_IFMT {
	case 0:
		return perm
	case fuse.S_IFREG:
		return perm | syscall.S_IFREG
	case fuse.S_IFDIR:
		return perm | syscall.S_IFDIR
	case fuse.S_IFLNK:
		return perm | syscall.S_IFLNK
	case fuse.S_IFCHR:
		return perm | syscall.S_IFCHR
	case fuse.S_IFBLK:
		return perm | syscall.S_IFBLK
	case fuse.S_IFIFO:
		return perm | syscall.S_IFIFO
	}
	return perm | syscall.S_IFSOCK
}

// nodeFlags translates the host's open flags to the node layer's.
func nodeFlags(flags int) uint32 {
	var out uint32
	switch flags & fuse.O_ACCMODE {
	case fuse.O_WRONLY:
		out = syscall.O_WRONLY
	case fuse.O_RDWR:
		out = syscall.O_RDWR
	}
	if flags&fuse.O_APPEND != 0 {
		out |= syscall.O_APPEND
	}
	if flags&fuse.O_TRUNC != 0 {
		out |= syscall.O_TRUNC
	}
	return out
}

// blockSize is the preferred I/O size reported to applications.
const blockSize = 128 << 10

func (f *fsys) fill(a node.Attr, st *fuse.Stat_t) {
	*st = fuse.Stat_t{
		Ino:     a.Ino,
		Mode:    typeBits(a.Kind) | a.Mode&0o7777,
		Nlink:   1,
		Uid:     f.uid,
		Gid:     f.gid,
		Size:    a.Size,
		Blksize: blockSize,
		Blocks:  (a.Size + 511) / 512,
		Mtim:    fuse.NewTimespec(time.Unix(0, a.Mtime)),
		Ctim:    fuse.NewTimespec(time.Unix(0, a.Ctime)),
	}
	st.Atim, st.Birthtim = st.Mtim, st.Mtim
}

func (f *fsys) Getattr(path string, st *fuse.Stat_t, fh uint64) int {
	a, err := f.attr(path, fh)
	if err != nil {
		return f.errc(err)
	}
	f.fill(a, st)
	return 0
}

// Getpath returns the path of a node with its names as stored, for a
// case-insensitive host that looked it up in another case.
func (f *fsys) Getpath(path string, _ uint64) (int, string) {
	_, p, err := f.r.walkNames(bg(), path, true)
	if err != nil {
		return f.errc(err), ""
	}
	return 0, p
}

func (f *fsys) Access(path string, _ uint32) int {
	_, err := f.attr(path, noFh)
	return f.errc(err)
}

func (f *fsys) Statfs(_ string, st *fuse.Statfs_t) int {
	s, err := f.r.fsys.Statfs(bg())
	if err != nil {
		return f.errc(err)
	}
	const bsize = 4096
	*st = fuse.Statfs_t{
		Bsize: bsize, Frsize: bsize,
		Blocks: uint64(s.Total) / bsize, Bfree: uint64(s.Free) / bsize, Bavail: uint64(s.Free) / bsize,
		Files: uint64(s.Files), Ffree: 1 << 32, Favail: 1 << 32,
		Namemax: node.MaxName,
	}
	return 0
}

func (f *fsys) Readlink(path string) (int, string) {
	a, err := f.attr(path, noFh)
	if err != nil {
		return f.errc(err), ""
	}
	t, err := f.r.fsys.Readlink(bg(), a.Ino)
	if err != nil {
		return f.errc(err), ""
	}
	return 0, t
}

// newEntry resolves the directory and name of an entry about to be made.
func (f *fsys) newEntry(path string) (uint64, string, error) {
	dir, name, err := f.r.parent(bg(), path)
	if err != nil {
		return 0, "", err
	}
	return dir, name, f.r.free(bg(), dir, name)
}

func (f *fsys) Mknod(path string, mode uint32, _ uint64) int {
	dir, name, err := f.newEntry(path)
	if err == nil {
		_, err = f.r.fsys.Mknod(bg(), dir, name, nodeMode(mode))
	}
	return f.errc(err)
}

func (f *fsys) Mkdir(path string, mode uint32) int {
	dir, name, err := f.newEntry(path)
	if err == nil {
		_, err = f.r.fsys.Mkdir(bg(), dir, name, mode&0o7777)
	}
	return f.errc(err)
}

func (f *fsys) Symlink(target, newpath string) int {
	dir, name, err := f.newEntry(newpath)
	if err == nil {
		_, err = f.r.fsys.Symlink(bg(), dir, name, target)
	}
	return f.errc(err)
}

func (f *fsys) Link(string, string) int { return -fuse.EPERM }

func (f *fsys) Unlink(path string) int {
	f.mu.Lock()
	_, hidden := f.hidden[path]
	delete(f.hidden, path)
	f.mu.Unlock()
	if hidden {
		return 0 // unlinked when it was hidden
	}
	dir, name, _, err := f.r.entry(bg(), path)
	if err == nil {
		err = f.r.fsys.Unlink(bg(), dir, name)
	}
	return f.errc(err)
}

func (f *fsys) Rmdir(path string) int {
	dir, name, _, err := f.r.entry(bg(), path)
	if err == nil {
		err = f.r.fsys.Rmdir(bg(), dir, name)
	}
	return f.errc(err)
}

func (f *fsys) Rename(oldpath, newpath string) int { return f.Rename3(oldpath, newpath, 0) }

// fuseHidden is the name libfuse gives a file unlinked while open, when
// it keeps it until the last close (hard_remove off, which cgofuse
// forces with libfuse 3).
var fuseHidden = regexp.MustCompile(`^\.fuse_hidden[0-9a-f]{16}$`)

func (f *fsys) Rename3(oldpath, newpath string, flags uint32) int {
	ctx := bg()
	dir, name, a, err := f.r.entry(ctx, oldpath)
	if err != nil {
		return f.errc(err)
	}
	names := split(newpath)
	if len(names) > 0 && fuseHidden.MatchString(names[len(names)-1]) && f.r.fsys.IsOpen(a.Ino) {
		// libfuse hides an open file instead of unlinking it: unlink it
		// now (the node layer keeps it while open), so the name is never
		// listed nor committed, and answer for the hidden name until
		// libfuse unlinks it at the last close.
		if err := f.r.fsys.Unlink(ctx, dir, name); err != nil {
			return f.errc(err)
		}
		f.mu.Lock()
		f.hidden[newpath] = a.Ino
		f.mu.Unlock()
		return 0
	}
	newDir, newName, err := f.r.parent(ctx, newpath)
	if err != nil {
		return f.errc(err)
	}
	if f.r.fold {
		// On a case-insensitive host, a target that differs only in case
		// is the target: it is replaced and takes the new name's case.
		t, found, err := f.r.lookupFold(ctx, newDir, newName)
		switch {
		case err != nil:
			return f.errc(err)
		case !found || t.Name == newName || t.Attr.Ino == a.Ino:
		case flags != 0:
			return -fuse.EEXIST // no exchange with, nor keeping of, a name in another case
		default:
			if err := f.r.fsys.Rename(ctx, dir, name, newDir, t.Name, 0); err != nil {
				return f.errc(err)
			}
			dir, name = newDir, t.Name
		}
	}
	return f.errc(f.r.fsys.Rename(ctx, dir, name, newDir, newName, flags))
}

func (f *fsys) setattr(path string, fh uint64, in node.SetAttrIn) int {
	a, err := f.attr(path, fh)
	if err == nil {
		_, err = f.r.fsys.SetAttr(bg(), a.Ino, f.handle(fh), in)
	}
	return f.errc(err)
}

func (f *fsys) Chmod(path string, mode uint32) int { return f.Chmod3(path, mode, noFh) }

func (f *fsys) Chmod3(path string, mode uint32, fh uint64) int {
	m := mode & 0o7777
	return f.setattr(path, fh, node.SetAttrIn{Mode: &m})
}

func (f *fsys) Chown(path string, uid, gid uint32) int { return f.Chown3(path, uid, gid, noFh) }

// Chown3: owners are not stored; the mounting user owns every file, and
// chown to that user clears set-ID bits as chown(2) does.
func (f *fsys) Chown3(path string, uid, gid uint32, fh uint64) int {
	if (uid != noID && uid != f.uid) || (gid != noID && gid != f.gid) {
		return -fuse.EPERM
	}
	return f.setattr(path, fh, node.SetAttrIn{ClearSetID: uid != noID || gid != noID})
}

// noID is chown's "leave unchanged".
const noID = ^uint32(0)

func (f *fsys) Utimens(path string, tmsp []fuse.Timespec) int { return f.Utimens3(path, tmsp, noFh) }

func (f *fsys) Utimens3(path string, tmsp []fuse.Timespec, fh uint64) int {
	var in node.SetAttrIn
	if len(tmsp) == 2 {
		switch mt := tmsp[1]; mt.Nsec {
		case fuse.UTIME_OMIT:
		case fuse.UTIME_NOW:
			t := time.Now().UnixNano()
			in.Mtime = &t
		default:
			t := mt.Time().UnixNano()
			in.Mtime = &t
		}
	}
	return f.setattr(path, fh, in)
}

func (f *fsys) Truncate(path string, size int64, fh uint64) int {
	return f.setattr(path, fh, node.SetAttrIn{Size: &size})
}

func (f *fsys) Create(path string, flags int, mode uint32) (int, uint64) {
	dir, name, err := f.newEntry(path)
	if err != nil {
		return f.errc(err), noFh
	}
	_, h, err := f.r.fsys.Create(bg(), dir, name, nodeFlags(flags), mode&0o7777)
	if err != nil {
		return f.errc(err), noFh
	}
	return 0, f.addHandle(h)
}

func (f *fsys) Open(path string, flags int) (int, uint64) {
	a, err := f.attr(path, noFh)
	if err != nil {
		return f.errc(err), noFh
	}
	h, err := f.r.fsys.Open(bg(), a.Ino, nodeFlags(flags))
	if err != nil {
		return f.errc(err), noFh
	}
	return 0, f.addHandle(h)
}

func (f *fsys) Read(_ string, buf []byte, off int64, fh uint64) int {
	h := f.handle(fh)
	if h == nil {
		return -fuse.EBADF
	}
	n, err := h.ReadAt(bg(), buf, off)
	if err != nil {
		return f.errc(err)
	}
	return n
}

func (f *fsys) Write(_ string, buf []byte, off int64, fh uint64) int {
	h := f.handle(fh)
	if h == nil {
		return -fuse.EBADF
	}
	n, err := h.WriteAt(bg(), buf, off)
	if err != nil {
		return f.errc(err)
	}
	return n
}

func (f *fsys) Flush(_ string, fh uint64) int {
	h := f.handle(fh)
	if h == nil {
		return -fuse.EBADF
	}
	return f.errc(h.Flush(bg()))
}

func (f *fsys) Fsync(_ string, _ bool, fh uint64) int {
	h := f.handle(fh)
	if h == nil {
		return -fuse.EBADF
	}
	return f.errc(h.Fsync(bg()))
}

func (f *fsys) Release(_ string, fh uint64) int {
	f.mu.Lock()
	h := f.handles[fh]
	delete(f.handles, fh)
	f.mu.Unlock()
	if h == nil {
		return -fuse.EBADF
	}
	return f.errc(h.Release(bg()))
}

// Opendir checks that path is a directory; listings find it by path.
func (f *fsys) Opendir(path string) (int, uint64) {
	a, err := f.attr(path, noFh)
	if err != nil {
		return f.errc(err), noFh
	}
	if a.Kind != localdb.KindDir {
		return -fuse.ENOTDIR, noFh
	}
	return 0, a.Ino
}

func (f *fsys) Releasedir(string, uint64) int { return 0 }

func (f *fsys) Fsyncdir(string, bool, uint64) int { return 0 }

// Readdir lists a whole directory in one call (offsets of zero, which
// libfuse, macFUSE and WinFsp all take): the host buffers the listing, so
// this costs memory in proportion to the directory's size, in the host
// library rather than here.
func (f *fsys) Readdir(path string, fill func(string, *fuse.Stat_t, int64) bool, _ int64, fh uint64) int {
	ctx := bg()
	ino := fh
	if fh == noFh {
		a, err := f.attr(path, noFh)
		if err != nil {
			return f.errc(err)
		}
		ino = a.Ino
	}
	fill(".", nil, 0)
	fill("..", nil, 0)
	after := ""
	for {
		ents, err := f.r.fsys.ReadDir(ctx, ino, after, dirBatch)
		if err != nil {
			return f.errc(err)
		}
		for _, e := range ents {
			var st fuse.Stat_t
			f.fill(e.Attr, &st)
			if !fill(f.r.hostName(e.Name), &st, 0) {
				return -fuse.ENOMEM
			}
		}
		if len(ents) < dirBatch {
			return 0
		}
		after = ents[len(ents)-1].Name
	}
}

// dirBatch is how many entries one listing query loads.
const dirBatch = 1024

func (f *fsys) Setxattr(path, name string, value []byte, flags int) int {
	a, err := f.attr(path, noFh)
	if err == nil {
		var fl uint32
		if flags&fuse.XATTR_CREATE != 0 {
			fl |= node.XattrCreate
		}
		if flags&fuse.XATTR_REPLACE != 0 {
			fl |= node.XattrReplace
		}
		err = f.r.fsys.SetXattr(bg(), a.Ino, name, value, fl)
	}
	return f.errc(err)
}

func (f *fsys) Getxattr(path, name string) (int, []byte) {
	a, err := f.attr(path, noFh)
	if err != nil {
		return f.errc(err), nil
	}
	v, err := f.r.fsys.GetXattr(bg(), a.Ino, name)
	if err != nil {
		return f.errc(err), nil
	}
	return 0, v
}

func (f *fsys) Removexattr(path, name string) int {
	a, err := f.attr(path, noFh)
	if err == nil {
		err = f.r.fsys.RemoveXattr(bg(), a.Ino, name)
	}
	return f.errc(err)
}

func (f *fsys) Listxattr(path string, fill func(string) bool) int {
	a, err := f.attr(path, noFh)
	if err != nil {
		return f.errc(err)
	}
	names, err := f.r.fsys.ListXattr(bg(), a.Ino)
	if err != nil {
		return f.errc(err)
	}
	for _, n := range names {
		if !fill(n) {
			return -fuse.ERANGE
		}
	}
	return 0
}
