package node

import (
	"context"
	"fmt"
	"io"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/fs/localdb"
)

// VersionsDir is the read-only directory at the root through which past
// versions are browsed. Listings of the root leave it out (so tools that
// walk the drive do not walk every version); it is reachable by name.
const VersionsDir = ".versions"

// virtualBit marks the inode numbers of .versions and everything in it;
// the node table's numbers count up from 1 and never reach it.
const virtualBit = uint64(1) << 62

// VersionsIno is the inode number of the .versions directory.
const VersionsIno = virtualBit | 1

func isVirtual(ino uint64) bool { return ino&virtualBit != 0 }

// History is the read-only view of past versions behind .versions.
type History interface {
	// Versions lists the drive's versions, oldest first.
	Versions(ctx context.Context) ([]HistoryVersion, error)
	// Root returns the root tree of a version.
	Root(ctx context.Context, version crypto.ID) (crypto.ID, error)
	// List returns the entries of a tree.
	List(ctx context.Context, tree crypto.ID) ([]HistoryEntry, error)
}

// HistoryVersion is one version of the drive.
type HistoryVersion struct {
	Seq     uint64
	Version crypto.ID
	Time    time.Time
}

// Name is the version's folder in .versions: <N>-<YYYY-MM-DDTHHMMSS>, in
// UTC, so that names sort by time within a number of digits and do not
// change with the device's time zone.
func (v HistoryVersion) Name() string {
	return fmt.Sprintf("%d-%s", v.Seq, v.Time.UTC().Format("2006-01-02T150405"))
}

// HistoryEntry is one entry of a past version's tree.
type HistoryEntry struct {
	Name         string
	Kind         localdb.Kind
	Mode         uint32
	Size         int64
	Mtime, Ctime int64
	Target       string    // symlinks
	Chunks       []byte    // files: localdb.EncodeChunks
	Tree         crypto.ID // directories
}

type vnode struct {
	attr    Attr
	version crypto.ID // version folders: the version, its root found on first use
	tree    crypto.ID // directories, once known
	target  string
	chunks  []byte
}

type vkey struct {
	parent uint64
	name   string
}

// versionTable hands out inode numbers for what is browsed under
// .versions. Past versions never change, so an entry keeps its number for
// the life of the mount (the kernel may ask for it at any time); the table
// grows with what is browsed, not with the history's size.
type versionTable struct {
	h History

	mu    sync.Mutex
	next  uint64
	nodes map[uint64]*vnode
	names map[vkey]uint64
}

func newVersionTable(h History) *versionTable {
	t := &versionTable{h: h, next: VersionsIno + 1, nodes: map[uint64]*vnode{}, names: map[vkey]uint64{}}
	t.nodes[VersionsIno] = &vnode{attr: Attr{Ino: VersionsIno, Kind: localdb.KindDir, Mode: 0o555}}
	return t
}

// intern returns the node for name in parent, creating it from mk.
func (t *versionTable) intern(parent uint64, name string, mk func(ino uint64) *vnode) *vnode {
	t.mu.Lock()
	defer t.mu.Unlock()
	if ino, ok := t.names[vkey{parent, name}]; ok {
		return t.nodes[ino]
	}
	ino := t.next
	t.next++
	n := mk(ino)
	t.nodes[ino] = n
	t.names[vkey{parent, name}] = ino
	return n
}

func (t *versionTable) get(ino uint64) (*vnode, error) {
	if t == nil {
		return nil, syscall.ENOENT
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	n, ok := t.nodes[ino]
	if !ok {
		return nil, syscall.ENOENT
	}
	return n, nil
}

func readOnly(mode uint32) uint32 { return mode &^ 0o222 }

func (t *versionTable) versionNode(v HistoryVersion) *vnode {
	return t.intern(VersionsIno, v.Name(), func(ino uint64) *vnode {
		ns := v.Time.UnixNano()
		return &vnode{attr: Attr{Ino: ino, Kind: localdb.KindDir, Mode: 0o555, Mtime: ns, Ctime: ns}, version: v.Version}
	})
}

func (t *versionTable) entryNode(parent uint64, e HistoryEntry) *vnode {
	return t.intern(parent, e.Name, func(ino uint64) *vnode {
		return &vnode{
			attr:   Attr{Ino: ino, Kind: e.Kind, Mode: readOnly(e.Mode), Size: e.Size, Mtime: e.Mtime, Ctime: e.Ctime},
			tree:   e.Tree,
			target: e.Target,
			chunks: e.Chunks,
		}
	})
}

// treeOf returns a directory's tree, finding a version's root on first use.
func (t *versionTable) treeOf(ctx context.Context, n *vnode) (crypto.ID, error) {
	t.mu.Lock()
	tr, v := n.tree, n.version
	t.mu.Unlock()
	if !tr.IsZero() || v.IsZero() {
		return tr, nil
	}
	root, err := t.h.Root(ctx, v)
	if err != nil {
		return crypto.ID{}, fmt.Errorf("load version %s: %w", v, err)
	}
	t.mu.Lock()
	n.tree = root
	t.mu.Unlock()
	return root, nil
}

// children returns a virtual directory's entries, sorted by name.
func (f *FS) vChildren(ctx context.Context, ino uint64) ([]DirEntry, error) {
	t := f.versions
	n, err := t.get(ino)
	if err != nil {
		return nil, err
	}
	if n.attr.Kind != localdb.KindDir {
		return nil, syscall.ENOTDIR
	}
	var out []DirEntry
	if ino == VersionsIno {
		vs, err := t.h.Versions(ctx)
		if err != nil {
			return nil, fmt.Errorf("list versions: %w", err)
		}
		for _, v := range vs {
			vn := t.versionNode(v)
			out = append(out, DirEntry{Name: v.Name(), Attr: vn.attr})
		}
	} else {
		tr, err := t.treeOf(ctx, n)
		if err != nil {
			return nil, err
		}
		es, err := t.h.List(ctx, tr)
		if err != nil {
			return nil, fmt.Errorf("load tree %s: %w", tr, err)
		}
		for _, e := range es {
			en := t.entryNode(ino, e)
			out = append(out, DirEntry{Name: e.Name, Attr: en.attr})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (f *FS) vLookup(ctx context.Context, parent uint64, name string) (Attr, error) {
	t := f.versions
	if t == nil {
		return Attr{}, syscall.ENOENT
	}
	t.mu.Lock()
	ino, ok := t.names[vkey{parent, name}]
	var n *vnode
	if ok {
		n = t.nodes[ino]
	}
	t.mu.Unlock()
	if n != nil {
		return n.attr, nil
	}
	es, err := f.vChildren(ctx, parent)
	if err != nil {
		return Attr{}, err
	}
	i := sort.Search(len(es), func(i int) bool { return es[i].Name >= name })
	if i == len(es) || es[i].Name != name {
		return Attr{}, syscall.ENOENT
	}
	return es[i].Attr, nil
}

func (f *FS) vReadDir(ctx context.Context, ino uint64, after string, limit int) ([]DirEntry, error) {
	es, err := f.vChildren(ctx, ino)
	if err != nil {
		return nil, err
	}
	i := 0
	if after != "" {
		i = sort.Search(len(es), func(i int) bool { return es[i].Name > after })
	}
	es = es[i:]
	if limit > 0 && len(es) > limit {
		es = es[:limit]
	}
	return es, nil
}

func (f *FS) vGetAttr(ino uint64) (Attr, error) {
	n, err := f.versions.get(ino)
	if err != nil {
		return Attr{}, err
	}
	return n.attr, nil
}

func (f *FS) vReadlink(ino uint64) (string, error) {
	n, err := f.versions.get(ino)
	if err != nil {
		return "", err
	}
	if n.attr.Kind != localdb.KindSymlink {
		return "", syscall.EINVAL
	}
	return n.target, nil
}

// vOpen opens a file or folder of a past version, read-only.
func (f *FS) vOpen(ino uint64, flags uint32) (*Handle, error) {
	if flags&accessModeMask != syscall.O_RDONLY || flags&syscall.O_TRUNC != 0 {
		return nil, syscall.EROFS
	}
	n, err := f.versions.get(ino)
	if err != nil {
		return nil, err
	}
	of := &openFile{ino: ino, refs: 1}
	switch n.attr.Kind {
	case localdb.KindSymlink:
		return nil, syscall.ELOOP
	case localdb.KindFile:
		if f.content == nil {
			return nil, fmt.Errorf("read %d: no content source", ino)
		}
		var src io.ReaderAt
		if n.attr.Size > 0 {
			if src, err = f.content.NewReader(n.chunks, n.attr.Size); err != nil {
				return nil, err
			}
		} else {
			src = emptyReader{}
		}
		of.src, of.size = src, n.attr.Size
	}
	return &Handle{fs: f, of: of, virtual: true}, nil
}

type emptyReader struct{}

func (emptyReader) ReadAt([]byte, int64) (int, error) { return 0, io.EOF }
