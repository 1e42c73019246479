//go:build unix

package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/store/repo"
	"github.com/anysync/anysync/store/tree"
)

// maxReadAttempts is how often a file that changes while it is read is
// read again before it is reported.
const maxReadAttempts = 3

// racyWindow is how long after its last change a file's ctime may still
// be shared by a later change: Linux stamps files from a coarse clock
// (one tick is 1-10 ms). Whole-second stamps (ext3, FAT, some network file
// systems) get racyWindowCoarse.
const (
	racyWindow       = 20 * time.Millisecond
	racyWindowCoarse = 2 * time.Second
)

// FileError is a file or folder the backup could not store.
type FileError struct {
	Path string // relative to the backed-up folder, '/'-separated
	Err  error
}

func (e *FileError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *FileError) Unwrap() error { return e.Err }

// counters are the live statistics of a run.
type counters struct {
	filesScanned, bytesScanned atomic.Int64
	filesDone, bytesDone       atomic.Int64
	bytesRead                  atomic.Int64
	filesNew, filesChanged     atomic.Int64
	filesUnchanged             atomic.Int64
	dirs, symlinks, excluded   atomic.Int64
	errors                     atomic.Int64
}

// walker scans a folder and stores what changed, building its trees
// bottom-up.
type walker struct {
	ctx      context.Context
	repo     *repo.Repo
	cache    *fileCache
	excl     *excluder
	start    time.Time // entries changed after start-racyWindow are not trusted
	smallMax int64     // files up to this size are one chunk: read whole, stored as one blob
	stats    *counters

	dirSlots  chan struct{} // extra goroutines listing folders
	fileSlots chan struct{} // files being read at once
	bigSlots  chan struct{} // of those, files larger than smallMax
	smallBufs sync.Pool

	errMu sync.Mutex
	errs  []FileError

	// wrapReader, when set, wraps every file's reader (tests inject
	// faults and concurrent writers through it).
	wrapReader func(rel string, r io.Reader) io.Reader
}

func (w *walker) report(rel string, err error) {
	w.stats.errors.Add(1)
	w.errMu.Lock()
	w.errs = append(w.errs, FileError{Path: rel, Err: err})
	w.errMu.Unlock()
}

func joinRel(rel, name string) string {
	if rel == "" {
		return name
	}
	return rel + "/" + name
}

func ts(t unix.Timespec) int64 { return t.Nano() }

// trusted reports whether a later change of a file with this ctime will
// show as a different ctime: the ctime is older than the run's start by
// more than the timestamp granularity.
func (w *walker) trusted(st *unix.Stat_t) bool {
	return ts(st.Ctim) < w.start.Add(-windowOf(st)).UnixNano()
}

func windowOf(st *unix.Stat_t) time.Duration {
	if st.Ctim.Nsec == 0 && st.Mtim.Nsec == 0 {
		return racyWindowCoarse
	}
	return racyWindow
}

// baseEntry fills the fields every kind shares from a stat.
func baseEntry(name string, kind tree.Kind, st *unix.Stat_t) tree.Entry {
	return tree.Entry{Name: name, Kind: kind, Mode: uint32(st.Mode) & tree.ModeMask, ModTime: ts(st.Mtim), ChangeTime: ts(st.Ctim)}
}

// slot is one entry of a folder being built.
type slot struct {
	entry tree.Entry
	meta  entryMeta
	ok    bool // false: nothing to store under this name
}

// dir scans the folder at abs (rel from the backup root) and returns its
// entry, with Subtree set to its stored tree. old is the folder's entry in
// the cached parent, if any. The root folder is opened following a
// symlink; every folder below is opened with O_NOFOLLOW.
func (w *walker) dir(abs, rel string, old *tree.Entry, oldMeta entryMeta) (slot, error) {
	flags := unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC
	if rel != "" {
		flags |= unix.O_NOFOLLOW
	}
	fd, err := unix.Open(abs, flags, 0)
	if err != nil {
		return slot{}, fmt.Errorf("open folder: %w", err)
	}
	f := os.NewFile(uintptr(fd), abs)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return slot{}, fmt.Errorf("stat folder: %w", err)
	}
	self := slot{entry: baseEntry(filepath.Base(abs), tree.KindDir, &st), meta: entryMeta{Ino: st.Ino, Trusted: w.trusted(&st)}, ok: true}
	if old != nil && old.Kind == tree.KindDir && oldMeta.Trusted && oldMeta.Ino == st.Ino && old.ChangeTime == self.entry.ChangeTime {
		self.entry.Xattrs = old.Xattrs // unchanged ctime: unchanged attributes
	} else if self.entry.Xattrs, err = readXattrs(fdXattrs(fd)); err != nil {
		return slot{}, fmt.Errorf("read extended attributes: %w", err)
	}
	names, err := f.Readdirnames(-1)
	if err != nil {
		return slot{}, fmt.Errorf("list folder: %w", err)
	}
	slices.Sort(names)
	cached := w.cache.dir(rel)
	slots := make([]slot, len(names))

	var wg sync.WaitGroup
	defer wg.Wait() // before f.Close: readers use the folder's fd
	for i, name := range names {
		if err := w.ctx.Err(); err != nil {
			return slot{}, err
		}
		crel := joinRel(rel, name)
		if w.excl.match(crel, name) {
			w.stats.excluded.Add(1)
			continue
		}
		var cst unix.Stat_t
		if err := unix.Fstatat(fd, name, &cst, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			if !errors.Is(err, unix.ENOENT) { // vanished since the listing: nothing to store
				w.report(crel, fmt.Errorf("stat: %w", err))
			}
			continue
		}
		oe, om, hasOld := cached.find(name)
		s := &slots[i]
		switch cst.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			var oldDir *tree.Entry
			if hasOld {
				oldDir = oe
			}
			run := func() {
				sub, err := w.dir(filepath.Join(abs, name), crel, oldDir, om)
				if err != nil {
					if !errors.Is(err, unix.ENOENT) && !errors.Is(err, context.Canceled) {
						w.report(crel, err)
					}
					return
				}
				sub.entry.Name = name
				*s = sub
			}
			select {
			case w.dirSlots <- struct{}{}:
				wg.Add(1)
				go func() {
					defer wg.Done()
					defer func() { <-w.dirSlots }()
					run()
				}()
			default:
				run() // no spare goroutine: this one does it, so waiting never deadlocks
			}
		case unix.S_IFREG:
			w.stats.filesScanned.Add(1)
			w.stats.bytesScanned.Add(cst.Size)
			if hasOld && unchanged(oe, om, &cst) {
				s.entry, s.meta, s.ok = *oe, om, true
				w.stats.filesUnchanged.Add(1)
				w.stats.filesDone.Add(1)
				w.stats.bytesDone.Add(cst.Size)
				continue
			}
			big := cst.Size > w.smallMax
			if big {
				// One chunker (and its buffers) per large file: few at
				// once, they chunk and seal in parallel on their own.
				select {
				case w.bigSlots <- struct{}{}:
				case <-w.ctx.Done():
					return slot{}, w.ctx.Err()
				}
			}
			select {
			case w.fileSlots <- struct{}{}:
			case <-w.ctx.Done():
				if big {
					<-w.bigSlots
				}
				return slot{}, w.ctx.Err()
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer func() {
					<-w.fileSlots
					if big {
						<-w.bigSlots
					}
				}()
				e, m, err := w.file(fd, crel, name)
				w.stats.filesDone.Add(1)
				w.stats.bytesDone.Add(cst.Size)
				switch {
				case err == nil:
					*s = slot{entry: e, meta: m, ok: true}
					if hasOld {
						w.stats.filesChanged.Add(1)
					} else {
						w.stats.filesNew.Add(1)
					}
				case errors.Is(err, unix.ENOENT) || errors.Is(err, context.Canceled):
				default:
					w.report(crel, err)
					if hasOld && oe.Kind == tree.KindFile {
						// Keep the last good copy rather than none, and
						// read it again next time.
						*s = slot{entry: *oe, meta: entryMeta{Ino: om.Ino}, ok: true}
					}
				}
			}()
		case unix.S_IFLNK:
			target, err := readlinkat(fd, name)
			if err != nil {
				if !errors.Is(err, unix.ENOENT) {
					w.report(crel, fmt.Errorf("read symlink: %w", err))
				}
				continue
			}
			if target == "" || len(target) > tree.MaxTargetLen {
				w.report(crel, fmt.Errorf("symlink target of %d bytes: %w", len(target), ErrUnsupportedType))
				continue
			}
			e := baseEntry(name, tree.KindSymlink, &cst)
			e.Target = target
			// Linux allows no user.* attributes on symlinks: none to read.
			*s = slot{entry: e, meta: entryMeta{Ino: cst.Ino, Trusted: w.trusted(&cst)}, ok: true}
			w.stats.symlinks.Add(1)
		default:
			w.report(crel, ErrUnsupportedType)
		}
	}
	wg.Wait()
	if err := w.ctx.Err(); err != nil {
		return slot{}, err
	}

	t := &tree.Tree{Entries: make([]tree.Entry, 0, len(slots))}
	meta := make([]entryMeta, 0, len(slots))
	for _, s := range slots {
		if s.ok {
			t.Entries = append(t.Entries, s.entry)
			meta = append(meta, s.meta)
		}
	}
	// names were sorted, so Encode keeps t.Entries (and meta) in order.
	enc, err := t.Encode()
	if err != nil {
		return slot{}, fmt.Errorf("encode folder: %w", err)
	}
	var id crypto.ID
	if cached != nil && bytes.Equal(enc, cached.enc) {
		id = cached.id // stored by an earlier run: no hash, no lookup
	} else if id, err = w.repo.SaveBlob(w.ctx, crypto.BlobTree, enc); err != nil {
		return slot{}, fmt.Errorf("save folder: %w", err)
	}
	w.cache.put(rel, id, enc, meta)
	w.stats.dirs.Add(1)
	self.entry.Subtree = id
	return self, nil
}

// unchanged reports whether a file may be taken from the cache unread.
func unchanged(oe *tree.Entry, om entryMeta, st *unix.Stat_t) bool {
	return om.Trusted && oe.Kind == tree.KindFile && om.Ino == st.Ino &&
		oe.Size == uint64(st.Size) && oe.ModTime == ts(st.Mtim) && oe.ChangeTime == ts(st.Ctim) &&
		oe.Mode == uint32(st.Mode)&tree.ModeMask
}

// errUnstable means a read raced with a writer.
var errUnstable = errors.New("file changed during read")

// file reads and stores the regular file name in the folder dirfd,
// retrying while it changes underneath.
func (w *walker) file(dirfd int, rel, name string) (tree.Entry, entryMeta, error) {
	var err error
	for range maxReadAttempts {
		var e tree.Entry
		var m entryMeta
		e, m, err = w.readOnce(dirfd, rel, name)
		if !errors.Is(err, errUnstable) {
			return e, m, err
		}
	}
	return tree.Entry{}, entryMeta{}, fmt.Errorf("%w (%d attempts)", ErrFileChanged, maxReadAttempts)
}

func (w *walker) openFile(dirfd int, name string) (int, error) {
	// O_NONBLOCK: if the file was replaced by a FIFO since the stat,
	// opening it must not hang. O_NOATIME needs ownership (or
	// CAP_FOWNER); without it, open normally.
	flags := unix.O_RDONLY | unix.O_NOFOLLOW | unix.O_NONBLOCK | unix.O_CLOEXEC
	fd, err := unix.Openat(dirfd, name, flags|oNoAtime, 0)
	if errors.Is(err, unix.EPERM) {
		fd, err = unix.Openat(dirfd, name, flags, 0)
	}
	return fd, err
}

// readOnce reads a file once: errUnstable if it changed meanwhile.
func (w *walker) readOnce(dirfd int, rel, name string) (tree.Entry, entryMeta, error) {
	fd, err := w.openFile(dirfd, name)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return tree.Entry{}, entryMeta{}, errUnstable // became a symlink: the next attempt sees it fail again
		}
		return tree.Entry{}, entryMeta{}, fmt.Errorf("open: %w", err)
	}
	// A raw descriptor, not an os.File: os.NewFile would try (and fail) to
	// register the non-blocking descriptor with the poller, a wasted
	// syscall per file.
	defer unix.Close(fd)
	var before unix.Stat_t
	if err := w.settle(fd, &before); err != nil {
		return tree.Entry{}, entryMeta{}, err
	}
	if before.Mode&unix.S_IFMT != unix.S_IFREG {
		return tree.Entry{}, entryMeta{}, fmt.Errorf("no longer a regular file: %w", ErrUnsupportedType)
	}
	var rd io.Reader = fdReader(fd)
	if w.wrapReader != nil {
		rd = w.wrapReader(rel, rd)
	}
	var chunks []tree.ChunkRef
	var size int64
	if before.Size <= w.smallMax {
		chunks, size, err = w.readSmall(rd, before.Size)
	} else {
		cr := &countingReader{r: rd, n: &w.stats.bytesRead}
		chunks, size, err = w.repo.WriteFile(w.ctx, cr)
	}
	if err != nil {
		return tree.Entry{}, entryMeta{}, fmt.Errorf("read: %w", err)
	}
	var after unix.Stat_t
	if err := unix.Fstat(fd, &after); err != nil {
		return tree.Entry{}, entryMeta{}, fmt.Errorf("stat: %w", err)
	}
	if size != before.Size || after.Size != before.Size || after.Mtim != before.Mtim || after.Ctim != before.Ctim {
		return tree.Entry{}, entryMeta{}, errUnstable
	}
	e := baseEntry(name, tree.KindFile, &after)
	e.Size = uint64(size)
	e.Chunks = chunks
	if e.Xattrs, err = readXattrs(fdXattrs(fd)); err != nil {
		return tree.Entry{}, entryMeta{}, fmt.Errorf("read extended attributes: %w", err)
	}
	return e, entryMeta{Ino: after.Ino, Trusted: w.trusted(&after)}, nil
}

// settle stats fd into st, first waiting out the timestamp granularity if
// the file changed just now: a write during the read must then get a
// ctime different from the one seen before it.
func (w *walker) settle(fd int, st *unix.Stat_t) error {
	for {
		if err := unix.Fstat(fd, st); err != nil {
			return fmt.Errorf("stat: %w", err)
		}
		wait := time.Until(time.Unix(0, ts(st.Ctim)).Add(windowOf(st)))
		if wait <= 0 {
			return nil
		}
		select {
		case <-time.After(wait):
		case <-w.ctx.Done():
			return w.ctx.Err()
		}
	}
}

// readSmall reads a file of at most smallMax bytes whole and stores it as
// one chunk, exactly as WriteFile would, without a chunker per file. It
// reads exactly the size seen before: a file that grew shows in the stat
// after the read, one that shrank ends early; either way the caller
// retries.
func (w *walker) readSmall(rd io.Reader, want int64) ([]tree.ChunkRef, int64, error) {
	if want == 0 {
		return nil, 0, nil
	}
	bp := w.smallBufs.Get().(*[]byte)
	defer w.smallBufs.Put(bp)
	buf := (*bp)[:want]
	n, err := io.ReadFull(rd, buf)
	w.stats.bytesRead.Add(int64(n))
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return nil, int64(n), nil // shrank: the caller sees the size differ
	case err != nil:
		return nil, 0, err
	}
	id, err := w.repo.SaveBlob(w.ctx, crypto.BlobData, buf)
	if err != nil {
		return nil, 0, err
	}
	return []tree.ChunkRef{{ID: id, Length: uint32(n)}}, int64(n), nil
}

// fdReader reads a file descriptor.
type fdReader int

func (fd fdReader) Read(p []byte) (int, error) {
	for {
		n, err := unix.Read(int(fd), p)
		switch {
		case errors.Is(err, unix.EINTR):
			continue
		case err != nil:
			return 0, err
		case n == 0 && len(p) > 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func readlinkat(dirfd int, name string) (string, error) {
	for size := 256; ; size *= 2 {
		buf := make([]byte, size)
		n, err := unix.Readlinkat(dirfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < size {
			return string(buf[:n]), nil
		}
		if size > tree.MaxTargetLen {
			return string(buf[:n]), nil // too long; the caller rejects it
		}
	}
}

// excluder matches exclude globs (filepath.Match syntax). A pattern
// without '/' matches any entry by name ("*.o", ".git"); one with '/'
// matches the path relative to the backed-up folder ("build/cache",
// "/src/*/testdata"; a leading '/' is optional). A matching folder is
// skipped with everything below it.
type excluder struct{ names, paths []string }

func newExcluder(patterns []string) (*excluder, error) {
	x := &excluder{}
	for _, p := range patterns {
		if _, err := path.Match(p, ""); err != nil {
			return nil, fmt.Errorf("exclude pattern %q: %w", p, err)
		}
		if p == "" {
			continue
		}
		if i := len(p) - 1; i > 0 && p[i] == '/' {
			p = p[:i] // "build/" means the folder build
		}
		if strings.Contains(p, "/") {
			x.paths = append(x.paths, path.Clean("/" + p)[1:])
		} else {
			x.names = append(x.names, p)
		}
	}
	return x, nil
}

func (x *excluder) match(rel, name string) bool {
	for _, p := range x.names {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	for _, p := range x.paths {
		if ok, _ := path.Match(p, rel); ok {
			return true
		}
	}
	return false
}
