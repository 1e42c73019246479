//go:build unix

package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/store/repo"
	"github.com/anysync/anysync/store/tree"
)

// restoreBufSize is the read size per file: a few chunks, fetched in
// parallel by the repository's reader.
const restoreBufSize = 4 << 20

// A restore caches up to restorePackCache bytes of whole packs, fetching a
// pack whole from its restoreWholeAfter-th read (see packCache).
const (
	restorePackCache  = 256 << 20
	restoreWholeAfter = 3
)

// RestoreOptions configure a restore.
type RestoreOptions struct {
	Account *Account
	// CloudPath is the folder (or file) to restore.
	CloudPath string
	// Version is the version's sequence number; 0 means the head.
	Version uint64
	// Target is the local folder to restore into; it is created if
	// missing. A folder's contents go into Target; a file or symlink goes
	// into Target under its name.
	Target string
	// Workers is how many files are restored at once; default 8.
	Workers int
	// Progress, if set, is called every ProgressInterval and at the end.
	Progress         func(RestoreProgress)
	ProgressInterval time.Duration
}

// RestoreProgress is a snapshot of a running restore. Totals grow while
// the trees are walked.
type RestoreProgress struct {
	FilesFound, BytesFound int64
	FilesDone, BytesDone   int64
	Errors                 int64
	Elapsed                time.Duration
}

// RestoreSummary describes a finished restore.
type RestoreSummary struct {
	Seq      uint64        `json:"seq"`
	Files    int64         `json:"files"`
	Dirs     int64         `json:"dirs"`
	Symlinks int64         `json:"symlinks"`
	Bytes    int64         `json:"bytes"`
	Errors   []FileError   `json:"-"`
	Duration time.Duration `json:"-"`
}

// Restore writes the tree at o.CloudPath of a version into o.Target with
// contents, modes, times and extended attributes. Every chunk is
// authenticated and checked against its ID by the repository, and every
// file's length against its entry. Names come from validated trees, and
// every path is opened relative to its parent folder without following
// symlinks, so nothing is written outside Target; an existing symlink where
// a folder belongs is refused (ErrUnsafePath).
func Restore(ctx context.Context, o RestoreOptions) (*RestoreSummary, error) {
	started := time.Now()
	comps, err := SplitCloudPath(o.CloudPath)
	if err != nil {
		return nil, err
	}
	if err := o.Account.validate(); err != nil {
		return nil, err
	}
	rp, err := o.Account.openRepoOver(newPackCache(o.Account.Objects, restorePackCache, restoreWholeAfter))
	if err != nil {
		return nil, err
	}
	if err := o.Account.Remote.SyncIndex(ctx); err != nil {
		return nil, fmt.Errorf("sync index: %w", err)
	}
	head, err := resolveVersion(ctx, o.Account.Remote, o.Version)
	if err != nil {
		return nil, err
	}
	v, err := rp.LoadVersion(ctx, head.Version)
	if err != nil {
		return nil, fmt.Errorf("load version %d: %w", head.Seq, err)
	}
	entry, err := lookupPath(ctx, rp, v.Root, comps)
	if err != nil {
		return nil, fmt.Errorf("version %d: %w", head.Seq, err)
	}
	if o.Workers <= 0 {
		o.Workers = 8
	}
	if o.ProgressInterval <= 0 {
		o.ProgressInterval = DefaultProgressInterval
	}

	target, err := filepath.Abs(o.Target)
	if err != nil {
		return nil, fmt.Errorf("restore target: %w", err)
	}
	created := false
	if _, err := os.Stat(target); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(target, 0o700); err != nil {
			return nil, fmt.Errorf("create restore target: %w", err)
		}
		created = true
	}
	fd, err := unix.Open(target, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open restore target %s: %w", target, err)
	}

	rs := &restorer{ctx: ctx, repo: rp, jobs: make(chan fileJob, 2*o.Workers), sum: &RestoreSummary{Seq: head.Seq}}
	rs.bufs.New = func() any { b := make([]byte, restoreBufSize); return &b }
	var workers sync.WaitGroup
	for range o.Workers {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for j := range rs.jobs {
				rs.restoreFile(j)
			}
		}()
	}
	stop := make(chan struct{})
	var progress sync.WaitGroup
	if o.Progress != nil {
		progress.Add(1)
		go func() {
			defer progress.Done()
			t := time.NewTicker(o.ProgressInterval)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					o.Progress(rs.snapshot(started))
				}
			}
		}()
	}

	root := &rdir{fd: fd, path: target}
	root.refs.Store(1)
	if created && entry.Kind == tree.KindDir {
		root.meta, root.apply = entry, true
	}
	switch entry.Kind {
	case tree.KindDir:
		rs.sum.Dirs++
		rs.walk(root, "", entry.Subtree)
	default:
		rs.restoreEntry(root, "", entry)
	}
	rs.release(root)
	close(rs.jobs)
	workers.Wait()
	close(stop)
	progress.Wait()
	if o.Progress != nil {
		o.Progress(rs.snapshot(started))
	}

	s := rs.sum
	s.Files, s.Bytes = rs.files.Load(), rs.bytes.Load()
	s.Duration = time.Since(started)
	if err := ctx.Err(); err != nil {
		return s, err
	}
	if len(s.Errors) > 0 {
		return s, fmt.Errorf("restore of %s: %d entries not restored: %w", o.CloudPath, len(s.Errors), ErrIncomplete)
	}
	return s, nil
}

// rdir is a restored folder, open while entries are created in it. It
// holds a reference on its parent, so its times are set (by name, in the
// parent) once it and everything in it are done.
type rdir struct {
	fd     int
	path   string // relative to the target, for messages
	name   string
	parent *rdir
	meta   tree.Entry
	apply  bool // set meta when done (false for a target that existed)
	refs   atomic.Int32
}

type fileJob struct {
	dir   *rdir
	rel   string
	entry tree.Entry
}

type restorer struct {
	ctx  context.Context
	repo *repo.Repo
	jobs chan fileJob
	bufs sync.Pool

	filesFound, bytesFound atomic.Int64
	files, bytes           atomic.Int64
	nerrs                  atomic.Int64

	mu  sync.Mutex
	sum *RestoreSummary
}

func (rs *restorer) snapshot(started time.Time) RestoreProgress {
	return RestoreProgress{FilesFound: rs.filesFound.Load(), BytesFound: rs.bytesFound.Load(),
		FilesDone: rs.files.Load(), BytesDone: rs.bytes.Load(), Errors: rs.nerrs.Load(), Elapsed: time.Since(started)}
}

func (rs *restorer) report(rel string, err error) {
	rs.nerrs.Add(1)
	rs.mu.Lock()
	rs.sum.Errors = append(rs.sum.Errors, FileError{Path: rel, Err: err})
	rs.mu.Unlock()
}

// release drops a reference; the last one applies the folder's metadata,
// closes it and releases its parent.
func (rs *restorer) release(d *rdir) {
	if d.refs.Add(-1) > 0 {
		return
	}
	if d.apply {
		if err := setMeta(d.fd, d.parent, d.name, d.path, &d.meta); err != nil {
			rs.report(d.path, err)
		}
	}
	_ = unix.Close(d.fd)
	if d.parent != nil {
		rs.release(d.parent)
	}
}

// setMeta applies mode, attributes and times to an open file or folder;
// times are set by name in parent (or by path for the target itself).
func setMeta(fd int, parent *rdir, name, path string, e *tree.Entry) error {
	for _, x := range e.Xattrs {
		if err := unix.Fsetxattr(fd, x.Name, x.Value, 0); err != nil && !unsupported(err) {
			return fmt.Errorf("set attribute %s: %w", x.Name, err)
		}
	}
	if err := unix.Fchmod(fd, e.Mode); err != nil {
		return fmt.Errorf("set mode: %w", err)
	}
	times := []unix.Timespec{unix.NsecToTimespec(e.ModTime), unix.NsecToTimespec(e.ModTime)}
	dirfd := unix.AT_FDCWD
	if parent != nil {
		dirfd = parent.fd
	} else {
		name = path
	}
	if err := unix.UtimesNanoAt(dirfd, name, times, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set times: %w", err)
	}
	return nil
}

// walk restores the entries of tree id into folder d.
func (rs *restorer) walk(d *rdir, rel string, id crypto.ID) {
	t, err := rs.repo.LoadTree(rs.ctx, id)
	if err != nil {
		rs.report(rel, err)
		return
	}
	for i := range t.Entries {
		if rs.ctx.Err() != nil {
			return
		}
		rs.restoreEntry(d, rel, t.Entries[i])
	}
}

// restoreEntry restores one entry into folder d.
func (rs *restorer) restoreEntry(d *rdir, rel string, e tree.Entry) {
	crel := joinRel(rel, e.Name)
	switch e.Kind {
	case tree.KindDir:
		fd, err := openDir(d.fd, e.Name)
		if err != nil {
			rs.report(crel, err)
			return
		}
		rs.sum.Dirs++
		sub := &rdir{fd: fd, path: crel, name: e.Name, parent: d, meta: e, apply: true}
		sub.refs.Store(1)
		d.refs.Add(1)
		rs.walk(sub, crel, e.Subtree)
		rs.release(sub)
	case tree.KindSymlink:
		if err := makeSymlink(d.fd, e); err != nil {
			rs.report(crel, err)
			return
		}
		rs.sum.Symlinks++
	case tree.KindFile:
		rs.filesFound.Add(1)
		rs.bytesFound.Add(int64(e.Size))
		d.refs.Add(1)
		select {
		case rs.jobs <- fileJob{dir: d, rel: crel, entry: e}:
		case <-rs.ctx.Done():
			rs.release(d)
		}
	}
}

// openDir creates (or reuses) folder name in dirfd and opens it without
// following a symlink.
func openDir(dirfd int, name string) (int, error) {
	if err := unix.Mkdirat(dirfd, name, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		return -1, fmt.Errorf("create folder: %w", err)
	}
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
		var st unix.Stat_t
		if serr := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); serr == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
			return -1, fmt.Errorf("existing symlink where a folder belongs: %w", ErrUnsafePath)
		}
		return -1, fmt.Errorf("existing file where a folder belongs: %w", unix.ENOTDIR)
	}
	if err != nil {
		return -1, fmt.Errorf("open folder: %w", err)
	}
	return fd, nil
}

// makeSymlink creates a symlink, replacing a file or symlink of that name.
func makeSymlink(dirfd int, e tree.Entry) error {
	err := unix.Symlinkat(e.Target, dirfd, e.Name)
	if errors.Is(err, unix.EEXIST) {
		if err := unix.Unlinkat(dirfd, e.Name, 0); err != nil {
			return fmt.Errorf("replace existing entry: %w", err)
		}
		err = unix.Symlinkat(e.Target, dirfd, e.Name)
	}
	if err != nil {
		return fmt.Errorf("create symlink: %w", err)
	}
	times := []unix.Timespec{unix.NsecToTimespec(e.ModTime), unix.NsecToTimespec(e.ModTime)}
	if err := unix.UtimesNanoAt(dirfd, e.Name, times, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("set symlink times: %w", err)
	}
	return nil
}

// restoreFile writes one file: contents, attributes, mode, times.
func (rs *restorer) restoreFile(j fileJob) {
	defer rs.release(j.dir)
	if rs.ctx.Err() != nil {
		return
	}
	if err := rs.writeFile(j); err != nil {
		rs.report(j.rel, err)
		return
	}
	rs.files.Add(1)
}

func (rs *restorer) writeFile(j fileJob) error {
	flags := unix.O_WRONLY | unix.O_CREAT | unix.O_TRUNC | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := unix.Openat(j.dir.fd, j.entry.Name, flags, 0o600)
	if errors.Is(err, unix.ELOOP) {
		// An existing symlink: replace it rather than write through it.
		if err := unix.Unlinkat(j.dir.fd, j.entry.Name, 0); err != nil {
			return fmt.Errorf("replace existing symlink: %w", err)
		}
		fd, err = unix.Openat(j.dir.fd, j.entry.Name, flags|unix.O_EXCL, 0o600)
	}
	if err != nil {
		return fmt.Errorf("create file: %w", err)
	}
	// A raw descriptor: os.File would add fcntl calls per file, and
	// restores are mostly many small files.
	closed := false
	defer func() {
		if !closed {
			_ = unix.Close(fd)
		}
	}()
	fr := rs.repo.NewReader(rs.ctx, j.entry.Chunks)
	if fr.Size() != int64(j.entry.Size) {
		return fmt.Errorf("chunks hold %d bytes, entry says %d: %w", fr.Size(), j.entry.Size, repo.ErrCorrupt)
	}
	bp := rs.bufs.Get().(*[]byte)
	defer rs.bufs.Put(bp)
	buf := *bp
	for off := int64(0); off < fr.Size(); {
		n, err := fr.ReadAt(buf, off)
		if err != nil && !(errors.Is(err, io.EOF) && off+int64(n) == fr.Size()) {
			return fmt.Errorf("read at %d: %w", off, err)
		}
		if err := pwriteAll(fd, buf[:n], off); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		off += int64(n)
		rs.bytes.Add(int64(n))
	}
	if err := setMeta(fd, j.dir, j.entry.Name, j.rel, &j.entry); err != nil {
		return err
	}
	closed = true
	if err := unix.Close(fd); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	return nil
}

// pwriteAll writes b at off, continuing after short writes.
func pwriteAll(fd int, b []byte, off int64) error {
	for len(b) > 0 {
		// 32 KiB at a time: page-cache writes of 1 MiB cost this VM's
		// kernel twice the CPU (large folios the host faults in again).
		n, err := unix.Pwrite(fd, b[:min(len(b), 32<<10)], off)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return err
		}
		if n == 0 {
			return io.ErrShortWrite
		}
		b, off = b[n:], off+int64(n)
	}
	return nil
}
