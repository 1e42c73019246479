//go:build linux || darwin

package fusefs

import (
	"context"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/anysync/anysync/fs/node"
)

// dirBatch is how many entries one listing query loads; memory stays
// bounded whatever the directory's size.
const dirBatch = 1024

// dir is an open directory. It lists "." and ".." and then the node
// table's children in name order, a batch at a time, and answers the
// lookups of READDIRPLUS from the batch without another query.
type dir struct {
	n     *inode
	batch []node.DirEntry
	pos   int    // next index in batch
	after string // last name of the previous batch
	off   uint64 // offset of the next entry
	done  bool
	last  map[string]node.Attr // entries handed out from the current batch
}

func (n *inode) OpendirHandle(_ context.Context, _ uint32) (fs.FileHandle, uint32, syscall.Errno) {
	// The kernel opens only directories; the first listing checks the node.
	// The kernel caches listings (and keeps them across opens); it drops
	// them itself when entries change through the mount, and the syncer
	// invalidates directories that remote versions change.
	return &dir{n: n}, fuse.FOPEN_CACHE_DIR | fuse.FOPEN_KEEP_CACHE, 0
}

func (d *dir) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	switch d.off {
	case 0:
		d.off++
		return &fuse.DirEntry{Name: ".", Mode: syscall.S_IFDIR, Ino: d.n.ino(), Off: d.off}, 0
	case 1:
		d.off++
		ino := d.n.ino()
		if _, p := d.n.Parent(); p != nil {
			ino = p.StableAttr().Ino
		}
		return &fuse.DirEntry{Name: "..", Mode: syscall.S_IFDIR, Ino: ino, Off: d.off}, 0
	}
	if d.pos >= len(d.batch) {
		if d.done {
			return nil, 0
		}
		b, err := d.n.m.fsys.ReadDir(nc(ctx), d.n.ino(), d.after, dirBatch)
		if err != nil {
			return nil, d.n.m.errno(err)
		}
		d.batch, d.pos = b, 0
		d.last = make(map[string]node.Attr, len(b))
		if len(b) < dirBatch {
			d.done = true
		}
		if len(b) == 0 {
			return nil, 0
		}
		d.after = b[len(b)-1].Name
	}
	e := d.batch[d.pos]
	d.pos++
	d.off++
	d.last[e.Name] = e.Attr
	return &fuse.DirEntry{Name: e.Name, Mode: typeBits(e.Attr.Kind), Ino: e.Attr.Ino, Off: d.off}, 0
}

// Lookup serves READDIRPLUS from the entries just listed.
func (d *dir) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	a, ok := d.last[name]
	if !ok {
		return d.n.Lookup(ctx, name, out)
	}
	d.n.m.entry(a, out)
	return d.n.child(ctx, a), 0
}

// Seekdir restarts the listing and skips to off (rewinddir, or a
// READDIR that the kernel repeats).
func (d *dir) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	*d = dir{n: d.n}
	for d.off < off {
		e, errno := d.Readdirent(ctx)
		if errno != 0 {
			return errno
		}
		if e == nil {
			break
		}
	}
	return 0
}
