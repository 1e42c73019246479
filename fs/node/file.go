package node

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/anysync/anysync/fs/localdb"
)

// openFile is the shared state of one open node: every handle reads and
// writes through it, so readers see writers' data at once.
type openFile struct {
	ino           uint64
	refs, writers int  // guarded by FS.omu
	orphan        bool // unlinked while open; guarded by FS.omu

	mu sync.RWMutex
	// staging is the local copy (dirty content or hydrated placeholder):
	// a staging file, or memory for inline content; nil while the node is
	// read from src.
	staging backing
	src     io.ReaderAt
	size    int64
	mtime   int64
	ctime   int64
	// dirtyMeta: size/times (and mode, if modeDirty) changed in memory,
	// not yet in the row.
	dirtyMeta bool
	modeDirty bool
	mode      uint32
	// marked: the row already records pending content in staging.
	marked bool
	// stagingName is the staging file's name; "" for inline content.
	stagingName string
	// stale: a remote version replaced the committed content this open
	// file reads or copied (FS.ContentReplaced); its view is dropped and
	// the row read again before the next read or write.
	stale atomic.Bool
	// unflushed counts bytes the staging file grew by since writeback was
	// last started; flushing is set while a start is in flight.
	unflushed int64
	flushing  atomic.Bool
}

// writebackStep is how much a staging file takes before the kernel is
// asked to start writing it to disk. Without it, an fsync after writing a
// large file waits for all of it (0.6 s for 1 GiB here, the CPUs idle);
// the kernel's own writeback starts only at a tenth of memory dirty.
const writebackStep = 16 << 20

// Handle is one open file description.
type Handle struct {
	fs      *FS
	of      *openFile
	write   bool
	append  bool
	virtual bool // in .versions: read-only, not registered
}

// accessModeMask selects O_RDONLY/O_WRONLY/O_RDWR (O_ACCMODE is not
// defined everywhere).
const accessModeMask = syscall.O_RDONLY | syscall.O_WRONLY | syscall.O_RDWR

// Ino returns the handle's node.
func (h *Handle) Ino() uint64 { return h.of.ino }

// claim is how an upload holds a node.
type claim uint8

const (
	// claimStored: its content is being stored; writers wait.
	claimStored claim = iota + 1
	// claimRecording: its row is being recorded; every open waits.
	claimRecording
)

// acquire registers a handle on ino, waiting while an upload holds the node
// if the handle writes, or while an upload records it.
func (f *FS) acquire(ino uint64, write bool) *openFile {
	f.omu.Lock()
	defer f.omu.Unlock()
	blocked := func() bool { c := f.busy[ino]; return c == claimRecording || (write && c != 0) }
	if blocked() {
		if write {
			f.waiting.Add(1)
		}
		for blocked() {
			f.cond.Wait()
		}
		if write {
			f.waiting.Add(-1)
		}
	}
	of := f.open[ino]
	if of == nil {
		of = &openFile{ino: ino}
		f.open[ino] = of
	}
	of.refs++
	if write {
		of.writers++
	}
	return of
}

// Open opens a file. Opening for writing without O_TRUNC hydrates a
// placeholder into a staging file first.
func (f *FS) Open(ctx context.Context, ino uint64, flags uint32) (*Handle, error) {
	if isVirtual(ino) {
		return f.vOpen(ino, flags)
	}
	acc := flags & accessModeMask
	write := acc == syscall.O_WRONLY || acc == syscall.O_RDWR
	n, err := f.db.Attr(ctx, ino)
	if err != nil {
		return nil, dbErr(err)
	}
	switch n.Kind {
	case localdb.KindDir:
		if write {
			return nil, syscall.EISDIR
		}
	case localdb.KindSymlink:
		return nil, syscall.ELOOP
	}
	of := f.acquire(ino, write)
	h := &Handle{fs: f, of: of, write: write, append: flags&syscall.O_APPEND != 0}
	if n.Kind == localdb.KindDir {
		return h, nil
	}
	of.mu.Lock()
	// The row is read again under of.mu: an upload or a release may have
	// changed it since.
	err = f.prepare(ctx, of, write, write && flags&syscall.O_TRUNC != 0)
	of.mu.Unlock()
	if err != nil {
		_ = h.Release(ctx)
		return nil, err
	}
	return h, nil
}

// prepare makes of ready for reading, and for writing if write; truncate
// empties the file. Called with of.mu held.
func (f *FS) prepare(ctx context.Context, of *openFile, write, truncate bool) error {
	f.dropStale(of)
	if of.staging == nil && of.src == nil {
		n, err := f.db.Get(ctx, of.ino)
		if err != nil {
			return dbErr(err)
		}
		of.size, of.mtime, of.ctime, of.mode = n.Size, n.Mtime, n.Ctime, n.Mode
		of.marked = n.Flags&localdb.FlagContent != 0
		switch {
		case n.Staging != "":
			sf, err := os.OpenFile(f.stagingPath(n.Staging), os.O_RDWR, 0)
			if err != nil {
				return fmt.Errorf("open staging file of %d: %w", of.ino, err)
			}
			of.staging, of.stagingName = sf, n.Staging
		case n.Flags&localdb.FlagContent != 0:
			m := &memBacking{data: n.Inline}
			if err := m.Truncate(n.Size); err != nil {
				return err
			}
			of.staging, of.stagingName = m, ""
		case !write:
			if f.content == nil {
				return fmt.Errorf("read placeholder %d: no content source", of.ino)
			}
			r, err := f.content.NewReader(n.Chunks, n.Size)
			if err != nil {
				return fmt.Errorf("read placeholder %d: %w", of.ino, err)
			}
			of.src = r
		}
	}
	if !write || of.staging != nil {
		if truncate {
			return f.truncateOpen(ctx, of, 0)
		}
		return nil
	}
	return f.hydrate(ctx, of, truncate)
}

// errReplaced: the content a change was to apply to was replaced by a
// remote version meanwhile; the change is retried on the new content.
var errReplaced = errors.New("content replaced by a remote version")

// ContentReplaced tells an open file of ino, if any, that a remote version
// replaced the node's committed content (the syncer calls it with the FS
// Locked, once the row changed). Handles that read it see the new content
// from their next read on, as if another process had rewritten the file.
func (f *FS) ContentReplaced(ino uint64) {
	f.omu.Lock()
	defer f.omu.Unlock()
	if of := f.open[ino]; of != nil {
		of.stale.Store(true)
	}
}

// dropStale forgets a view of content that a remote version replaced: a
// reader over the old chunks, or a clean local copy of them, which the
// row no longer names. Called with of.mu held.
func (f *FS) dropStale(of *openFile) {
	if !of.stale.Swap(false) || of.marked {
		return
	}
	if of.staging != nil {
		_ = of.staging.Close()
	}
	f.removeStaging(of.stagingName)
	of.staging, of.src, of.stagingName = nil, nil, ""
}

// hydrate gives of a staging file holding its current content (or nothing,
// if it is about to be truncated). Called with of.mu held.
func (f *FS) hydrate(ctx context.Context, of *openFile, empty bool) error {
	if empty || of.size <= InlineMax {
		// Small content is hydrated into memory; the row records it at
		// the first change.
		m := &memBacking{}
		if !empty && of.size > 0 {
			if err := f.copyCommitted(ctx, of, m); err != nil {
				return err
			}
		}
		of.staging, of.stagingName, of.src = m, "", nil
		if empty {
			return f.truncateOpen(ctx, of, 0)
		}
		return nil
	}
	// The row names the staging file only once it is complete: a crash
	// while copying leaves a stray file, swept at the next start.
	name, sf, err := f.newStaging()
	if err != nil {
		return err
	}
	fail := func(err error) error {
		_ = sf.Close()
		f.removeStaging(name)
		return err
	}
	if err := f.copyCommitted(ctx, of, sf); err != nil {
		return fail(err)
	}
	f.mu.Lock()
	err = f.db.Update(ctx, func(tx *localdb.Tx) error { return tx.SetStaging(of.ino, name) })
	f.mu.Unlock()
	if err != nil {
		return fail(err)
	}
	of.staging, of.stagingName, of.src = sf, name, nil
	return nil
}

// copyCommitted copies a file's committed content into w.
func (f *FS) copyCommitted(ctx context.Context, of *openFile, w io.WriterAt) error {
	src := of.src
	if src == nil {
		n, err := f.db.Get(ctx, of.ino)
		if err != nil {
			return dbErr(err)
		}
		if f.content == nil {
			return fmt.Errorf("hydrate %d: no content source", of.ino)
		}
		if src, err = f.content.NewReader(n.Chunks, n.Size); err != nil {
			return fmt.Errorf("hydrate %d: %w", of.ino, err)
		}
	}
	if _, err := io.Copy(io.NewOffsetWriter(w, 0), io.NewSectionReader(src, 0, of.size)); err != nil {
		return fmt.Errorf("hydrate %d: %w", of.ino, err)
	}
	return nil
}

// spill moves inline content that outgrows InlineMax to a staging file.
// Called with of.mu held.
func (f *FS) spill(ctx context.Context, of *openFile) error {
	m, ok := of.staging.(*memBacking)
	if !ok {
		return nil
	}
	name, sf, err := f.newStaging()
	if err != nil {
		return err
	}
	if _, err := sf.WriteAt(m.data, 0); err != nil {
		_ = sf.Close()
		f.removeStaging(name)
		return fmt.Errorf("spill %d to a staging file: %w", of.ino, err)
	}
	if of.marked {
		f.mu.Lock()
		err = f.db.Update(ctx, func(tx *localdb.Tx) error { return tx.SetStaging(of.ino, name) })
		f.mu.Unlock()
		if err != nil {
			_ = sf.Close()
			f.removeStaging(name)
			return err
		}
	}
	of.staging, of.stagingName = sf, name
	return nil
}

// markContent records in the row that staging holds new content, on the
// first change. A change that keeps some of the old content (base) fails
// with errReplaced if a remote version replaced it meanwhile. Called with
// of.mu held.
func (f *FS) markContent(ctx context.Context, of *openFile, base bool) error {
	if of.marked {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if base && of.stale.Load() {
		return errReplaced
	}
	err := f.db.Update(ctx, func(tx *localdb.Tx) error {
		n, err := tx.Get(of.ino)
		if err != nil {
			return dbErr(err)
		}
		n.Staging = of.stagingName
		n.Flags |= localdb.FlagContent
		if inTree(&n) {
			n.Flags |= localdb.FlagChanged
		}
		if err := tx.SetAttrs(&n); err != nil {
			return err
		}
		return tx.MarkChanged(n.Parent)
	})
	if err != nil {
		return err
	}
	of.marked = true
	return nil
}

// truncateOpen sets the size of an open file with staging. Called with
// of.mu held.
func (f *FS) truncateOpen(ctx context.Context, of *openFile, size int64) error {
	if size > InlineMax {
		if err := f.spill(ctx, of); err != nil {
			return err
		}
	}
	if err := f.markContent(ctx, of, size > 0); err != nil {
		return err
	}
	if err := of.staging.Truncate(size); err != nil {
		return fmt.Errorf("truncate staging file of %d: %w", of.ino, err)
	}
	t := now()
	of.size, of.mtime, of.ctime, of.dirtyMeta = size, t, t, true
	of.killSetID()
	return nil
}

// killSetID clears the set-user-ID bit, and the set-group-ID bit of a
// group-executable file, as a write or truncate does. The mount asks the
// kernel to leave this to the file system (HANDLE_KILLPRIV_V2, which
// spares a security.capability query per write); the caller's privilege
// is not known here, so the bits are cleared for every caller, where the
// kernel keeps them for a caller with CAP_FSETID. Called with of.mu held.
func (of *openFile) killSetID() {
	if m := clearSetID(of.mode); m != of.mode {
		of.mode, of.modeDirty = m, true
	}
}

// clearSetID returns mode without set-user-ID, and without set-group-ID if
// it is group-executable (otherwise the bit marks mandatory locking).
func clearSetID(mode uint32) uint32 {
	mode &^= syscall.S_ISUID
	if mode&0o010 != 0 {
		mode &^= syscall.S_ISGID
	}
	return mode
}

// truncate implements truncate(2) and ftruncate(2).
func (f *FS) truncate(ctx context.Context, ino uint64, h *Handle, size int64) error {
	if h == nil || !h.write {
		n, err := f.db.Attr(ctx, ino)
		if err != nil {
			return dbErr(err)
		}
		switch n.Kind {
		case localdb.KindDir:
			return syscall.EISDIR
		case localdb.KindSymlink:
			return syscall.EINVAL
		}
		// Hold the node as a writer for the duration, as open(O_WRONLY).
		var err2 error
		if h, err2 = f.Open(ctx, ino, syscall.O_WRONLY); err2 != nil {
			return err2
		}
		defer func() { _ = h.Release(ctx) }()
	}
	of := h.of
	of.mu.Lock()
	defer of.mu.Unlock()
	for {
		if of.stale.Load() {
			if err := f.prepare(ctx, of, true, false); err != nil {
				return err
			}
		}
		if of.staging == nil {
			if err := f.hydrate(ctx, of, size == 0); err != nil {
				return err
			}
		}
		err := f.truncateOpen(ctx, of, size)
		if errors.Is(err, errReplaced) {
			continue
		}
		if err != nil {
			return err
		}
		return f.persistMeta(ctx, of)
	}
}

// persistMeta writes in-memory size and times to the row. Called with
// of.mu held.
func (f *FS) persistMeta(ctx context.Context, of *openFile) error {
	if !of.dirtyMeta {
		return nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.db.Update(ctx, func(tx *localdb.Tx) error {
		if m, ok := of.staging.(*memBacking); ok && of.marked {
			return tx.SetMetaInline(of.ino, of.size, of.mtime, of.ctime, of.mode, m.data)
		}
		return tx.SetMeta(of.ino, of.size, of.mtime, of.ctime, of.mode)
	})
	if err != nil {
		return err
	}
	of.dirtyMeta, of.modeDirty = false, false
	return nil
}

// openOf returns the open file a setattr applies to: the handle's, or,
// for chmod/utimens by path or fchmod/futimens (which the kernel sends
// without a handle), the node's open file, if any.
func (f *FS) openOf(ino uint64, h *Handle) *openFile {
	if h != nil {
		return h.of
	}
	f.omu.Lock()
	defer f.omu.Unlock()
	return f.open[ino]
}

// ownsAttrs reports whether an open file's in-memory attributes are the
// node's newest: it records pending content, so its size, times and mode
// are written to the row at the next flush, fsync or release. Called with
// of.mu held.
func (of *openFile) ownsAttrs() bool { return of.marked && of.staging != nil }

func (of *openFile) attr() Attr {
	return Attr{Ino: of.ino, Kind: localdb.KindFile, Mode: of.mode, Size: of.size, Mtime: of.mtime, Ctime: of.ctime}
}

// openAttr returns the attributes of an open file that owns them.
func (f *FS) openAttr(of *openFile) (Attr, bool) {
	if of == nil {
		return Attr{}, false
	}
	of.mu.RLock()
	defer of.mu.RUnlock()
	if !of.ownsAttrs() {
		return Attr{}, false
	}
	return of.attr(), true
}

// setOpenAttr applies chmod/utimens to an open file that records pending
// changes in memory, to be written with the size at flush or release:
// archive extractors set times and modes on every file they write, and a
// transaction for each would cost more than the write.
func (f *FS) setOpenAttr(of *openFile, in SetAttrIn) (Attr, bool) {
	if of == nil {
		return Attr{}, false
	}
	of.mu.Lock()
	defer of.mu.Unlock()
	if !of.ownsAttrs() {
		return Attr{}, false
	}
	of.ctime, of.dirtyMeta = now(), true
	if in.Mtime != nil {
		of.mtime = *in.Mtime
	}
	if in.Mode != nil {
		of.mode, of.modeDirty = *in.Mode&0o7777, true
	}
	f.notifyChanged()
	return of.attr(), true
}

// ReadAt reads from the file; a short count means end of file.
func (h *Handle) ReadAt(ctx context.Context, p []byte, off int64) (int, error) {
	of := h.of
	of.mu.RLock()
	if of.stale.Load() && !h.virtual {
		of.mu.RUnlock()
		of.mu.Lock()
		err := h.fs.prepare(ctx, of, h.write, false)
		of.mu.Unlock()
		if err != nil {
			return 0, err
		}
		of.mu.RLock()
	}
	defer of.mu.RUnlock()
	if off >= of.size {
		return 0, nil
	}
	if int64(len(p)) > of.size-off {
		p = p[:of.size-off]
	}
	var n int
	var err error
	switch {
	case of.staging != nil:
		n, err = of.staging.ReadAt(p, off)
	case of.src != nil:
		n, err = of.src.ReadAt(p, off)
	default:
		return 0, syscall.EISDIR
	}
	if errors.Is(err, io.EOF) {
		// Sparse tail beyond the staging file's data reads as zeros.
		clear(p[n:])
		n, err = len(p), nil
	}
	if err != nil {
		return n, fmt.Errorf("read %d at %d: %w", of.ino, off, err)
	}
	return n, nil
}

// WriteAt writes to the file (at the end, for O_APPEND handles).
func (h *Handle) WriteAt(ctx context.Context, p []byte, off int64) (int, error) {
	if !h.write || h.virtual {
		return 0, syscall.EBADF
	}
	of := h.of
	of.mu.Lock()
	defer of.mu.Unlock()
	if err := h.prepareWrite(ctx, len(p), &off); err != nil {
		return 0, err
	}
	var n int
	var err error
	if m, ok := of.staging.(*memBacking); ok {
		n, err = m.WriteAt(p, off)
	} else {
		n, err = writeAtPieces(of.staging, p, off)
		// Only growth counts: rewrites of a region (a database's pages)
		// coalesce in the page cache, and starting their writeback over
		// and over would write them again and again.
		of.unflushed += max(0, off+int64(n)-max(off, of.size))
		if f, ok := of.staging.(*os.File); ok && of.unflushed >= writebackStep && !of.flushing.Swap(true) {
			of.unflushed = 0
			go func() {
				defer of.flushing.Store(false)
				startWriteback(f)
			}()
		}
	}
	if end := off + int64(n); end > of.size {
		of.size = end
	}
	t := now()
	of.mtime, of.ctime, of.dirtyMeta = t, t, true
	of.killSetID()
	if err != nil {
		return n, fmt.Errorf("write %d at %d: %w", of.ino, off, err)
	}
	return n, nil
}

// prepareWrite readies of for a write of n bytes at *off (the end of the
// file for O_APPEND) and marks the row pending. Called with of.mu held.
func (h *Handle) prepareWrite(ctx context.Context, n int, off *int64) error {
	of := h.of
	for {
		// A reader that dropped a stale view left no local copy to write
		// to: hydrate one, as an open for writing does.
		if of.stale.Load() || of.staging == nil {
			if err := h.fs.prepare(ctx, of, true, false); err != nil {
				return err
			}
		}
		if h.append {
			*off = of.size
		}
		if *off+int64(n) > InlineMax {
			if err := h.fs.spill(ctx, of); err != nil {
				return err
			}
		}
		err := h.fs.markContent(ctx, of, true)
		if !errors.Is(err, errReplaced) {
			return err
		}
	}
}

// Flush is called on every close(2) of a descriptor: it records the
// file's size and times.
func (h *Handle) Flush(ctx context.Context) error {
	if h.virtual {
		return nil
	}
	h.of.mu.Lock()
	defer h.of.mu.Unlock()
	return h.fs.persistMeta(ctx, h.of)
}

// Fsync makes the file's data and its journal entry durable.
func (h *Handle) Fsync(ctx context.Context) error {
	if h.virtual {
		return nil
	}
	of := h.of
	of.mu.Lock()
	defer of.mu.Unlock()
	if of.staging != nil {
		if err := of.staging.Sync(); err != nil {
			return fmt.Errorf("fsync staging of %d: %w", of.ino, err)
		}
	}
	if err := h.fs.persistMeta(ctx, of); err != nil {
		return err
	}
	return h.fs.db.SyncWAL()
}

// Release ends a handle. The last release of a node closes its staging
// file, drops the local copy of clean content, and removes a node
// unlinked while open. The openFile stays registered until that is done,
// so an open racing with it waits on of.mu and then starts afresh from the
// row, never from a staging file about to be removed.
func (h *Handle) Release(ctx context.Context) error {
	if h.virtual {
		return nil
	}
	f, of := h.fs, h.of
	of.mu.Lock()
	defer of.mu.Unlock()
	err := f.persistMeta(ctx, of)
	f.omu.Lock()
	of.refs--
	if h.write {
		of.writers--
	}
	last := of.refs == 0
	orphan := of.orphan
	f.omu.Unlock()
	if h.write {
		f.notifyChanged()
	}
	if !last {
		return err
	}
	if of.staging != nil {
		if cerr := of.staging.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("close staging of %d: %w", of.ino, cerr)
		}
	}
	// Only an orphan, or a local copy of clean content, needs cleaning up.
	cleanup := orphan || (of.stagingName != "" && !of.marked)
	copyName := ""
	if !of.marked {
		copyName = of.stagingName
	}
	of.staging, of.src, of.stagingName, of.marked, of.dirtyMeta = nil, nil, "", false, false
	var drop string
	var uerr error
	if cleanup {
		f.mu.Lock()
		uerr = f.db.Update(ctx, func(tx *localdb.Tx) error {
			n, err := tx.Get(of.ino)
			if errors.Is(err, localdb.ErrNotFound) {
				return nil
			} else if err != nil {
				return err
			}
			if orphan {
				drop = n.Staging
				return tx.Delete(n.Ino)
			}
			if n.Staging != "" && n.Flags&localdb.FlagContent == 0 {
				drop, n.Staging = n.Staging, ""
				return tx.SetAttrs(&n)
			}
			if n.Staging != copyName {
				drop = copyName // a remote version replaced what it copied
			}
			return nil
		})
		f.mu.Unlock()
	}
	f.removeStaging(drop)
	f.omu.Lock()
	if of.refs == 0 {
		delete(f.open, of.ino)
	}
	f.omu.Unlock()
	return errors.Join(err, uerr)
}
