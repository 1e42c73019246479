// Package node is the drive's filesystem semantics, shared by every front
// end: lookups and listings from the node table, writes to per-node staging
// files, renames, unlinks, extended attributes. It knows nothing of FUSE;
// errors are syscall.Errno values for POSIX failures and wrapped errors for
// internal ones (which a front end reports as EIO).
//
// Lock order: openFile.mu, then FS.mu, then FS.omu. Nothing takes an
// openFile.mu while holding FS.mu or FS.omu.
package node

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/anysync/anysync/fs/localdb"
)

// MaxName is the longest name a directory entry may have.
const MaxName = 255

// Attr are the attributes of a node as the kernel sees them.
type Attr struct {
	Ino   uint64
	Kind  localdb.Kind
	Mode  uint32 // permission bits
	Size  int64
	Mtime int64 // ns since the epoch
	Ctime int64
}

// DirEntry is one entry of a directory listing.
type DirEntry struct {
	Name string
	Attr Attr
}

// ContentSource reads the committed content of placeholders.
type ContentSource interface {
	// NewReader returns a reader over content given by an encoded chunk
	// list (localdb.EncodeChunks) of size bytes.
	NewReader(chunks []byte, size int64) (io.ReaderAt, error)
}

// Statfs is what statfs reports, in bytes and files.
type Statfs struct {
	Total, Free int64
	Files       int64
}

// Config configures an FS.
type Config struct {
	DB         *localdb.DB
	StagingDir string
	// TrashDir, if set, is where large staging files go to be deleted in
	// the background (emptied at start); without it they are deleted in
	// place.
	TrashDir string
	// Content reads placeholders; nil makes them unreadable (EIO).
	Content ContentSource
	// Changed, if set, is called after local changes (to kick the committer).
	Changed func()
	// Quota, if set, reports the account's space for statfs.
	Quota func(ctx context.Context) (total, used int64, err error)
	// Reserved, if set, answers the user.anysync.* attributes.
	Reserved Reserved
	// History, if set, serves the read-only .versions directory.
	History History
}

// FS is the node layer over one account's node table.
type FS struct {
	db       *localdb.DB
	staging  string
	trash    string
	content  ContentSource
	changed  func()
	quota    func(ctx context.Context) (int64, int64, error)
	reserved Reserved
	versions *versionTable // nil without History

	hmu    sync.RWMutex
	hidden map[HiddenEntry]bool // excluded by selective sync

	mu sync.Mutex // serializes metadata changes

	omu  sync.Mutex
	cond *sync.Cond // on omu: signalled when an upload ends
	open map[uint64]*openFile
	busy map[uint64]claim // nodes an upload holds

	waiting atomic.Int32 // writers waiting for busy nodes

	hooks testHooks
}

// testHooks let tests act inside windows that real concurrency hits only
// rarely; all are nil outside tests.
type testHooks struct {
	created   func(ino uint64) // Create, once the new row is visible
	recording func()           // Record, before it writes the closed files' rows
}

// New returns the node layer, after recovering from any crash: nodes
// unlinked while open are removed, and pending files take their staging
// file's size.
func New(ctx context.Context, cfg Config) (*FS, error) {
	if err := os.MkdirAll(cfg.StagingDir, 0o700); err != nil {
		return nil, fmt.Errorf("create staging dir: %w", err)
	}
	f := &FS{
		db:       cfg.DB,
		staging:  cfg.StagingDir,
		trash:    cfg.TrashDir,
		content:  cfg.Content,
		changed:  cfg.Changed,
		quota:    cfg.Quota,
		reserved: cfg.Reserved,
		open:     map[uint64]*openFile{},
		busy:     map[uint64]claim{},
	}
	f.cond = sync.NewCond(&f.omu)
	if cfg.History != nil {
		f.versions = newVersionTable(cfg.History)
	}
	if err := f.recover(ctx); err != nil {
		return nil, err
	}
	if f.trash != "" {
		// What a previous run left to delete (it may have stopped first).
		if err := os.MkdirAll(f.trash, 0o700); err != nil {
			return nil, fmt.Errorf("create trash dir: %w", err)
		}
		if ents, err := os.ReadDir(f.trash); err == nil && len(ents) > 0 {
			go func() {
				for _, e := range ents {
					_ = os.RemoveAll(filepath.Join(f.trash, e.Name()))
				}
			}()
		}
	}
	return f, nil
}

func (f *FS) recover(ctx context.Context) error {
	keep := map[string]bool{}
	err := f.db.Update(ctx, func(tx *localdb.Tx) error {
		orphans, err := tx.Orphans()
		if err != nil {
			return err
		}
		for _, o := range orphans {
			if o.Ino == localdb.RootIno {
				continue
			}
			if err := tx.Delete(o.Ino); err != nil {
				return err
			}
		}
		pending, err := tx.Pending()
		if err != nil {
			return err
		}
		for _, n := range pending {
			if n.Staging == "" {
				continue // inline: size and content are written together
			}
			st, err := os.Stat(f.stagingPath(n.Staging))
			if err != nil {
				return fmt.Errorf("recover pending node %d: %w", n.Ino, err)
			}
			keep[n.Staging] = true
			if n.Size != st.Size() {
				n.Size = st.Size()
				if err := tx.SetAttrs(&n); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recover node table: %w", err)
	}
	// Staging files of clean nodes are only local copies: drop them.
	ents, err := os.ReadDir(f.staging)
	if err != nil {
		return fmt.Errorf("read staging dir: %w", err)
	}
	for _, e := range ents {
		if keep[e.Name()] {
			continue
		}
		if err := os.Remove(filepath.Join(f.staging, e.Name())); err != nil {
			return fmt.Errorf("remove stale staging file: %w", err)
		}
	}
	return f.db.Update(ctx, func(tx *localdb.Tx) error { return tx.ClearCleanStaging() })
}

func (f *FS) stagingPath(name string) string { return filepath.Join(f.staging, name) }

func now() int64 { return time.Now().UnixNano() }

func (f *FS) notifyChanged() {
	if f.changed != nil {
		f.changed()
	}
}

// DB returns the node database.
func (f *FS) DB() *localdb.DB { return f.db }

// inTree reports whether a node is part of the tree (not unlinked while open).
func inTree(n *localdb.Node) bool {
	return n.Ino == localdb.RootIno || n.Parent != localdb.OrphanParent
}

func attrOf(n *localdb.Node) Attr {
	a := Attr{Ino: n.Ino, Kind: n.Kind, Mode: n.Mode, Size: n.Size, Mtime: n.Mtime, Ctime: n.Ctime}
	if n.Kind == localdb.KindSymlink {
		a.Size = int64(len(n.Target))
	}
	return a
}

// overlay replaces size and times by those of an open file, which are
// newer than the row until the file is flushed.
func (f *FS) overlay(a *Attr) {
	f.omu.Lock()
	of := f.open[a.Ino]
	f.omu.Unlock()
	if of == nil {
		return
	}
	of.mu.RLock()
	if of.dirtyMeta {
		a.Size, a.Mtime, a.Ctime = of.size, of.mtime, of.ctime
		if of.modeDirty {
			a.Mode = of.mode
		}
	}
	of.mu.RUnlock()
}

// dbErr maps a database error to ENOENT when the node is missing.
func dbErr(err error) error {
	if errors.Is(err, localdb.ErrNotFound) {
		return syscall.ENOENT
	}
	return err
}

func checkName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return syscall.EINVAL
	case len(name) > MaxName:
		return syscall.ENAMETOOLONG
	}
	for i := 0; i < len(name); i++ {
		if name[i] == '/' || name[i] == 0 {
			return syscall.EINVAL
		}
	}
	return nil
}

// Lookup finds a child of a directory.
func (f *FS) Lookup(ctx context.Context, parent uint64, name string) (Attr, error) {
	if len(name) > MaxName {
		return Attr{}, syscall.ENAMETOOLONG
	}
	switch {
	case isVirtual(parent):
		return f.vLookup(ctx, parent, name)
	case parent == localdb.RootIno && name == VersionsDir && f.versions != nil:
		return f.vGetAttr(VersionsIno)
	case f.isHidden(parent, name):
		return Attr{}, syscall.ENOENT
	}
	n, err := f.db.Lookup(ctx, parent, name)
	if err != nil {
		return Attr{}, dbErr(err)
	}
	a := attrOf(&n)
	f.overlay(&a)
	return a, nil
}

// GetAttr returns a node's attributes.
func (f *FS) GetAttr(ctx context.Context, ino uint64) (Attr, error) {
	// The kernel asks before every write(2) (its cached attributes are
	// dropped by the previous write); a file being written has them in
	// memory.
	if isVirtual(ino) {
		return f.vGetAttr(ino)
	}
	if a, ok := f.openAttr(f.openOf(ino, nil)); ok {
		return a, nil
	}
	n, err := f.db.Attr(ctx, ino)
	if err != nil {
		return Attr{}, dbErr(err)
	}
	a := attrOf(&n)
	f.overlay(&a)
	return a, nil
}

// ReadDir lists up to limit entries of a directory after the name `after`
// ("" to start), in name order.
func (f *FS) ReadDir(ctx context.Context, ino uint64, after string, limit int) ([]DirEntry, error) {
	if isVirtual(ino) {
		return f.vReadDir(ctx, ino, after, limit)
	}
	hidden := f.hiddenIn(ino) // nil, nearly always
	var out []DirEntry
	for first := after == ""; ; first = false {
		want := limit - len(out)
		nodes, err := f.db.Listing(ctx, ino, after, want)
		if err != nil {
			return nil, err
		}
		// Only directories have children: the kind needs checking
		// (ENOTDIR, ENOENT) when there are none. A query less per
		// directory listed.
		if first && len(nodes) == 0 {
			n, err := f.db.Attr(ctx, ino)
			if err != nil {
				return nil, dbErr(err)
			}
			if n.Kind != localdb.KindDir {
				return nil, syscall.ENOTDIR
			}
		}
		if out == nil {
			out = make([]DirEntry, 0, len(nodes))
		}
		for i := range nodes {
			if hidden[nodes[i].Name] {
				continue
			}
			// Listing gives a symlink's size already (no target).
			n := &nodes[i]
			e := DirEntry{Name: n.Name, Attr: Attr{Ino: n.Ino, Kind: n.Kind, Mode: n.Mode, Size: n.Size, Mtime: n.Mtime, Ctime: n.Ctime}}
			if nodes[i].Kind == localdb.KindFile {
				f.overlay(&e.Attr)
			}
			out = append(out, e)
		}
		// A short page is the end; a full one with hidden entries left
		// out is topped up, so a short page still means the end.
		if len(nodes) < want || len(out) >= limit {
			return out, nil
		}
		after = nodes[len(nodes)-1].Name
	}
}

// Readlink returns a symlink's target.
func (f *FS) Readlink(ctx context.Context, ino uint64) (string, error) {
	if isVirtual(ino) {
		return f.vReadlink(ino)
	}
	n, err := f.db.Attr(ctx, ino)
	if err != nil {
		return "", dbErr(err)
	}
	if n.Kind != localdb.KindSymlink {
		return "", syscall.EINVAL
	}
	return n.Target, nil
}

// parentDir reads a directory that is about to get a new child.
func parentDir(tx *localdb.Tx, ino uint64) (localdb.Node, error) {
	p, err := tx.Get(ino)
	if err != nil {
		return p, dbErr(err)
	}
	if p.Kind != localdb.KindDir {
		return p, syscall.ENOTDIR
	}
	return p, nil
}

// touchDir records a change to a directory's entries.
func touchDir(tx *localdb.Tx, dir uint64, t int64) error {
	err := tx.TouchDir(dir, t)
	switch {
	case errors.Is(err, localdb.ErrNotFound):
		return syscall.ENOENT
	case errors.Is(err, localdb.ErrNotDir):
		return syscall.ENOTDIR
	}
	return err
}

// newChild inserts a new node in a directory; inline marks a new regular
// file's (empty) content as pending in the row. inserted, if not nil, is
// called with the new node's number before the row becomes visible.
func (f *FS) newChild(ctx context.Context, n *localdb.Node, inline bool, inserted func(ino uint64)) (Attr, error) {
	if err := f.guardCreate(n.Parent, n.Name); err != nil {
		return Attr{}, err
	}
	if err := checkName(n.Name); err != nil {
		return Attr{}, err
	}
	t := now()
	n.Mtime, n.Ctime = t, t
	n.Flags = localdb.FlagChanged
	if inline {
		// New files start inline (empty content in the row); they move to
		// a staging file when they outgrow InlineMax.
		n.Flags |= localdb.FlagContent
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.db.Update(ctx, func(tx *localdb.Tx) error {
		// touchDir checks the parent; a failure rolls the insert back.
		if _, err := tx.Insert(n); errors.Is(err, localdb.ErrExists) {
			return syscall.EEXIST
		} else if err != nil {
			return err
		}
		if err := touchDir(tx, n.Parent, t); err != nil {
			return err
		}
		if inserted != nil {
			inserted(n.Ino)
		}
		return nil
	})
	if err != nil {
		return Attr{}, err
	}
	f.notifyChanged()
	return attrOf(n), nil
}

// newStaging creates an empty staging file with a fresh random name.
func (f *FS) newStaging() (string, *os.File, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", nil, fmt.Errorf("staging name: %w", err)
	}
	name := hex.EncodeToString(b[:])
	sf, err := os.OpenFile(f.stagingPath(name), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", nil, fmt.Errorf("create staging file: %w", err)
	}
	return name, sf, nil
}

// Mkdir creates a directory.
func (f *FS) Mkdir(ctx context.Context, parent uint64, name string, mode uint32) (Attr, error) {
	return f.newChild(ctx, &localdb.Node{Parent: parent, Name: name, Kind: localdb.KindDir, Mode: mode & 0o7777}, false, nil)
}

// Symlink creates a symbolic link.
func (f *FS) Symlink(ctx context.Context, parent uint64, name, target string) (Attr, error) {
	if len(target) == 0 {
		return Attr{}, syscall.ENOENT
	}
	if len(target) > 4095 {
		return Attr{}, syscall.ENAMETOOLONG
	}
	return f.newChild(ctx, &localdb.Node{Parent: parent, Name: name, Kind: localdb.KindSymlink, Mode: 0o777, Size: int64(len(target)), Target: target}, false, nil)
}

// Create creates a regular file and opens it.
func (f *FS) Create(ctx context.Context, parent uint64, name string, flags uint32, mode uint32) (Attr, *Handle, error) {
	n := &localdb.Node{Parent: parent, Name: name, Kind: localdb.KindFile, Mode: mode & 0o7777}
	acc := flags & accessModeMask
	write := acc == syscall.O_WRONLY || acc == syscall.O_RDWR
	// The file is registered open, on the row's empty inline content,
	// before its row is visible: an upload listing the new row then skips
	// it while it is open for writing. Registered after the insert, an
	// upload could record the empty content in between, and the open file
	// would go on believing the row records pending content.
	var of *openFile
	a, err := f.newChild(ctx, n, true, func(ino uint64) {
		of = &openFile{ino: ino, refs: 1, staging: &memBacking{}, marked: true, mtime: n.Mtime, ctime: n.Ctime, mode: n.Mode}
		if write {
			of.writers = 1
		}
		f.omu.Lock()
		f.open[ino] = of
		f.omu.Unlock()
	})
	if err != nil {
		if of != nil {
			_ = (&Handle{fs: f, of: of, write: write}).Release(ctx)
		}
		return Attr{}, nil, err
	}
	if f.hooks.created != nil {
		f.hooks.created(a.Ino)
	}
	return a, &Handle{fs: f, of: of, write: write, append: flags&syscall.O_APPEND != 0}, nil
}

// Mknod is refused: only regular files, directories and symlinks are
// stored. Regular files created through mknod(2) are allowed.
func (f *FS) Mknod(ctx context.Context, parent uint64, name string, mode uint32) (Attr, error) {
	if mode&syscall.S_IFMT != syscall.S_IFREG && mode&syscall.S_IFMT != 0 {
		return Attr{}, syscall.EPERM
	}
	return f.newChild(ctx, &localdb.Node{Parent: parent, Name: name, Kind: localdb.KindFile, Mode: mode & 0o7777}, true, nil)
}

// removeNode drops a node from the tree: deleted at once, or kept as an
// orphan while it is open. It returns the staging file to delete, if any.
func (f *FS) removeNode(tx *localdb.Tx, n *localdb.Node) (string, error) {
	f.omu.Lock()
	of := f.open[n.Ino]
	if of != nil {
		of.orphan = true
	}
	f.omu.Unlock()
	if of != nil {
		n.Parent, n.Name = localdb.OrphanParent, strconv.FormatUint(n.Ino, 10)
		return "", tx.SetAttrs(n)
	}
	if err := tx.Delete(n.Ino); err != nil {
		return "", err
	}
	return n.Staging, nil
}

// largeStaging is the size from which a staging file is deleted in the
// background: ext4 takes about 0.25 s to free the blocks of 1 GiB, which
// every commit of a large file, and every rm of one, waited for.
const largeStaging = 64 << 20

func (f *FS) removeStaging(name string) {
	if name == "" {
		return
	}
	// The row is gone already; a leftover file is swept on next start.
	p := f.stagingPath(name)
	if f.trash != "" {
		if st, err := os.Stat(p); err == nil && st.Size() >= largeStaging {
			dst := filepath.Join(f.trash, name)
			if os.Rename(p, dst) == nil {
				go func() { _ = os.Remove(dst) }()
				return
			}
		}
	}
	_ = os.Remove(p)
}

// Unlink removes a file or symlink.
func (f *FS) Unlink(ctx context.Context, parent uint64, name string) error {
	if err := f.guardRemove(parent, name); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var staging string
	err := f.db.Update(ctx, func(tx *localdb.Tx) error {
		n, err := tx.Lookup(parent, name)
		if err != nil {
			return dbErr(err)
		}
		if n.Kind == localdb.KindDir {
			return syscall.EISDIR
		}
		if staging, err = f.removeNode(tx, &n); err != nil {
			return err
		}
		return touchDir(tx, parent, now())
	})
	if err != nil {
		return err
	}
	f.removeStaging(staging)
	f.notifyChanged()
	return nil
}

// Rmdir removes an empty directory.
func (f *FS) Rmdir(ctx context.Context, parent uint64, name string) error {
	if err := f.guardRemove(parent, name); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.db.Update(ctx, func(tx *localdb.Tx) error {
		n, err := tx.Lookup(parent, name)
		if err != nil {
			return dbErr(err)
		}
		if n.Kind != localdb.KindDir {
			return syscall.ENOTDIR
		}
		if has, err := tx.HasChildren(n.Ino); err != nil {
			return err
		} else if has {
			return syscall.ENOTEMPTY
		}
		if err := tx.Delete(n.Ino); err != nil {
			return err
		}
		return touchDir(tx, parent, now())
	})
	if err != nil {
		return err
	}
	f.notifyChanged()
	return nil
}

// Rename flags (renameat2).
const (
	RenameNoReplace = 1
	RenameExchange  = 2
)

// Rename moves an entry, replacing an existing target as rename(2) does.
func (f *FS) Rename(ctx context.Context, parent uint64, name string, newParent uint64, newName string, flags uint32) error {
	if flags&^uint32(RenameNoReplace|RenameExchange) != 0 || flags == RenameNoReplace|RenameExchange {
		return syscall.EINVAL
	}
	if err := f.guardRemove(parent, name); err != nil {
		return err
	}
	if err := f.guardCreate(newParent, newName); err != nil {
		return err
	}
	if err := checkName(newName); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var staging string
	err := f.db.Update(ctx, func(tx *localdb.Tx) error {
		src, err := tx.Lookup(parent, name)
		if err != nil {
			return dbErr(err)
		}
		if _, err := parentDir(tx, newParent); err != nil {
			return err
		}
		if src.Kind == localdb.KindDir && newParent != parent {
			// A directory cannot move below itself.
			for p := newParent; p != localdb.RootIno && p != localdb.OrphanParent; {
				if p == src.Ino {
					return syscall.EINVAL
				}
				pn, err := tx.Get(p)
				if err != nil {
					return dbErr(err)
				}
				p = pn.Parent
			}
		}
		dst, err := tx.Lookup(newParent, newName)
		exists := err == nil
		if err != nil && !errors.Is(err, localdb.ErrNotFound) {
			return err
		}
		if exists && dst.Ino == src.Ino {
			return nil
		}
		t := now()
		switch {
		case flags&RenameExchange != 0:
			if !exists {
				return syscall.ENOENT
			}
			if dst.Kind == localdb.KindDir && parent != newParent {
				for p := parent; p != localdb.RootIno && p != localdb.OrphanParent; {
					if p == dst.Ino {
						return syscall.EINVAL
					}
					pn, err := tx.Get(p)
					if err != nil {
						return dbErr(err)
					}
					p = pn.Parent
				}
			}
			// Park src outside the tree so the (parent, name) index never
			// holds two rows for one name.
			src.Parent, src.Name = localdb.OrphanParent, "exchange-"+strconv.FormatUint(src.Ino, 10)
			if err := tx.SetAttrs(&src); err != nil {
				return err
			}
			dst.Parent, dst.Name, dst.Ctime = parent, name, t
			dst.Flags |= localdb.FlagChanged
			if err := tx.SetAttrs(&dst); err != nil {
				return err
			}
		case exists:
			if flags&RenameNoReplace != 0 {
				return syscall.EEXIST
			}
			if src.Kind == localdb.KindDir {
				if dst.Kind != localdb.KindDir {
					return syscall.ENOTDIR
				}
				if has, err := tx.HasChildren(dst.Ino); err != nil {
					return err
				} else if has {
					return syscall.ENOTEMPTY
				}
			} else if dst.Kind == localdb.KindDir {
				return syscall.EISDIR
			}
			if staging, err = f.removeNode(tx, &dst); err != nil {
				return err
			}
		}
		src.Parent, src.Name, src.Ctime = newParent, newName, t
		src.Flags |= localdb.FlagChanged
		if err := tx.SetAttrs(&src); err != nil {
			return err
		}
		if err := touchDir(tx, parent, t); err != nil {
			return err
		}
		return touchDir(tx, newParent, t)
	})
	if err != nil {
		return err
	}
	f.removeStaging(staging)
	f.notifyChanged()
	return nil
}

// Link is refused: hard links cannot be represented in the tree format.
func (f *FS) Link(context.Context, uint64, uint64, string) (Attr, error) {
	return Attr{}, syscall.EPERM
}

// SetAttrIn says which attributes to change.
type SetAttrIn struct {
	Mode  *uint32
	Size  *int64
	Mtime *int64
	// ClearSetID clears a regular file's set-user-ID and set-group-ID
	// bits, as chown(2) does.
	ClearSetID bool
}

// SetAttr changes attributes. h, if not nil, is the handle the change came
// through (ftruncate).
func (f *FS) SetAttr(ctx context.Context, ino uint64, h *Handle, in SetAttrIn) (Attr, error) {
	if isVirtual(ino) {
		return Attr{}, syscall.EROFS
	}
	if in.Size != nil {
		if *in.Size < 0 {
			return Attr{}, syscall.EINVAL
		}
		if err := f.truncate(ctx, ino, h, *in.Size); err != nil {
			return Attr{}, err
		}
	}
	of := f.openOf(ino, h)
	if in.ClearSetID && in.Mode == nil {
		a, ok := f.openAttr(of)
		if !ok {
			var err error
			if a, err = f.GetAttr(ctx, ino); err != nil {
				return Attr{}, err
			}
		}
		if m := clearSetID(a.Mode); a.Kind == localdb.KindFile && m != a.Mode {
			in.Mode = &m
		}
	}
	if in.Mode != nil || in.Mtime != nil {
		if a, ok := f.setOpenAttr(of, in); ok {
			return a, nil
		}
	} else if a, ok := f.openAttr(of); ok {
		// fchown to the owner (tar does it for every file): nothing to
		// change, and the open file has the newest attributes.
		return a, nil
	}
	if in.Mode != nil || in.Mtime != nil {
		var n localdb.Node
		f.mu.Lock()
		err := f.db.Update(ctx, func(tx *localdb.Tx) error {
			var err error
			mode := in.Mode
			if mode != nil {
				m := *mode & 0o7777
				mode = &m
			}
			n, err = tx.Chattr(ino, mode, in.Mtime, now())
			return dbErr(err)
		})
		f.mu.Unlock()
		if err != nil {
			return Attr{}, err
		}
		// An open file writes its attributes back at flush: keep them in
		// step with the row.
		f.omu.Lock()
		of := f.open[ino]
		f.omu.Unlock()
		if of != nil {
			of.mu.Lock()
			if in.Mode != nil {
				of.mode = n.Mode
			}
			if in.Mtime != nil {
				of.mtime = n.Mtime
			}
			of.mu.Unlock()
		}
		f.notifyChanged()
		a := attrOf(&n)
		f.overlay(&a)
		return a, nil
	}
	return f.GetAttr(ctx, ino)
}

// Statfs reports the account's space.
func (f *FS) Statfs(ctx context.Context) (Statfs, error) {
	nodes, _, err := f.db.Stats(ctx)
	if err != nil {
		return Statfs{}, err
	}
	st := Statfs{Total: 1 << 50, Free: 1 << 50, Files: nodes}
	if f.quota != nil {
		total, used, err := f.quota(ctx)
		if err == nil && total > 0 {
			st.Total, st.Free = total, max(total-used, 0)
		}
	}
	return st, nil
}
