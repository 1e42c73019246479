//go:build linux || darwin

package fusefs

import (
	"context"
	"strings"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/anysync/anysync/fs/node"
)

func (n *inode) ino() uint64 { return n.StableAttr().Ino }

// child returns the kernel-facing inode of a node the kernel learns about.
func (n *inode) child(ctx context.Context, a node.Attr) *fs.Inode {
	return n.NewInode(ctx, &inode{m: n.m}, fs.StableAttr{Mode: typeBits(a.Kind), Ino: a.Ino})
}

func (n *inode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	a, err := n.m.fsys.Lookup(nc(ctx), n.ino(), name)
	if err != nil {
		return nil, n.m.errno(err)
	}
	n.m.entry(a, out)
	return n.child(ctx, a), 0
}

func (n *inode) Getattr(ctx context.Context, _ fs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	a, err := n.m.fsys.GetAttr(nc(ctx), n.ino())
	if err != nil {
		return n.m.errno(err)
	}
	n.m.fill(a, &out.Attr)
	out.SetTimeout(n.m.opts.AttrTimeout)
	return 0
}

func (n *inode) Setattr(ctx context.Context, fh fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	var set node.SetAttrIn
	if mode, ok := in.GetMode(); ok {
		set.Mode = &mode
	}
	if size, ok := in.GetSize(); ok {
		s := int64(size)
		set.Size = &s
	}
	if mt, ok := in.GetMTime(); ok {
		t := mt.UnixNano()
		set.Mtime = &t
	}
	// Owners are not stored: the mounting user owns every file.
	if uid, ok := in.GetUID(); ok && uid != n.m.uid {
		return syscall.EPERM
	}
	if gid, ok := in.GetGID(); ok && gid != n.m.gid {
		return syscall.EPERM
	}
	// The kernel leaves clearing set-ID bits to the file system
	// (HANDLE_KILLPRIV_V2): chown clears them, and so does a truncate
	// that asks to (writes clear them in the node layer).
	_, uidSet := in.GetUID()
	_, gidSet := in.GetGID()
	set.ClearSetID = uidSet || gidSet || in.Valid&fuse.FATTR_KILL_SUIDGID != 0
	var h *node.Handle
	if f, ok := fh.(*file); ok {
		h = f.h
	}
	a, err := n.m.fsys.SetAttr(nc(ctx), n.ino(), h, set)
	if err != nil {
		return n.m.errno(err)
	}
	n.m.fill(a, &out.Attr)
	out.SetTimeout(n.m.opts.AttrTimeout)
	return 0
}

func (n *inode) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	h, err := n.m.fsys.Open(nc(ctx), n.ino(), flags)
	if err != nil {
		return nil, 0, n.m.errno(err)
	}
	return &file{h: h, m: n.m}, n.m.openFlags(flags), 0
}

// openFlags are a new handle's FOPEN flags. The page cache stays valid
// across opens (KEEP_CACHE): local writes go through it or drop what they
// replace, remote changes are invalidated explicitly. A handle that writes
// a file afresh (write-only, or read-write and truncated: the kernel
// passes O_TRUNC with a creation, and truncates an existing file with a
// setattr before opening it) writes around the page cache (DIRECT_IO): its
// data is in the staging file already, and a second copy in the mount's
// page cache cost each written GiB a GiB of memory and, on this project's
// VM, where every new page-cache page costs a host fault, about 0.5 s of
// the daemon's CPU (docs/drive.md). Reads of such a handle go to the
// daemon too, so a database or a file edited in place (opened read-write,
// not truncated) keeps the page cache.
func (m *mount) openFlags(flags uint32) uint32 {
	out := uint32(fuse.FOPEN_KEEP_CACHE)
	acc := flags & syscall.O_ACCMODE
	if m.directWrites.Load() && (acc == syscall.O_WRONLY || acc == syscall.O_RDWR && flags&syscall.O_TRUNC != 0) {
		out |= fuse.FOPEN_DIRECT_IO
	}
	return out
}

func (n *inode) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	a, h, err := n.m.fsys.Create(nc(ctx), n.ino(), name, flags, mode)
	if err != nil {
		return nil, nil, 0, n.m.errno(err)
	}
	n.m.entry(a, out)
	return n.child(ctx, a), &file{h: h, m: n.m}, n.m.openFlags(flags), 0
}

func (n *inode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	a, err := n.m.fsys.Mkdir(nc(ctx), n.ino(), name, mode)
	if err != nil {
		return nil, n.m.errno(err)
	}
	n.m.entry(a, out)
	return n.child(ctx, a), 0
}

func (n *inode) Mknod(ctx context.Context, name string, mode uint32, _ uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	a, err := n.m.fsys.Mknod(nc(ctx), n.ino(), name, mode)
	if err != nil {
		return nil, n.m.errno(err)
	}
	n.m.entry(a, out)
	return n.child(ctx, a), 0
}

func (n *inode) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	a, err := n.m.fsys.Symlink(nc(ctx), n.ino(), name, target)
	if err != nil {
		return nil, n.m.errno(err)
	}
	n.m.entry(a, out)
	return n.child(ctx, a), 0
}

func (n *inode) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	t, err := n.m.fsys.Readlink(nc(ctx), n.ino())
	if err != nil {
		return nil, n.m.errno(err)
	}
	return []byte(t), 0
}

func (n *inode) Unlink(ctx context.Context, name string) syscall.Errno {
	return n.m.errno(n.m.fsys.Unlink(nc(ctx), n.ino(), name))
}

func (n *inode) Rmdir(ctx context.Context, name string) syscall.Errno {
	return n.m.errno(n.m.fsys.Rmdir(nc(ctx), n.ino(), name))
}

func (n *inode) Rename(ctx context.Context, name string, newParent fs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	np := newParent.EmbeddedInode().StableAttr().Ino
	return n.m.errno(n.m.fsys.Rename(nc(ctx), n.ino(), name, np, newName, flags))
}

func (n *inode) Link(ctx context.Context, target fs.InodeEmbedder, name string, _ *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	_, err := n.m.fsys.Link(nc(ctx), target.EmbeddedInode().StableAttr().Ino, n.ino(), name)
	return nil, n.m.errno(err)
}

func (n *inode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	st, err := n.m.fsys.Statfs(nc(ctx))
	if err != nil {
		return n.m.errno(err)
	}
	const bsize = 4096
	out.Bsize, out.Frsize = bsize, bsize
	out.Blocks = uint64(st.Total) / bsize
	out.Bfree = uint64(st.Free) / bsize
	out.Bavail = out.Bfree
	out.Files = uint64(st.Files)
	out.Ffree = 1 << 32
	out.NameLen = node.MaxName
	return 0
}

func (n *inode) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	v, err := n.m.fsys.GetXattr(nc(ctx), n.ino(), attr)
	if err != nil {
		return 0, n.m.errno(err)
	}
	if len(dest) < len(v) {
		return uint32(len(v)), syscall.ERANGE
	}
	return uint32(copy(dest, v)), 0
}

func (n *inode) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	return n.m.errno(n.m.fsys.SetXattr(nc(ctx), n.ino(), attr, data, flags))
}

func (n *inode) Removexattr(ctx context.Context, attr string) syscall.Errno {
	return n.m.errno(n.m.fsys.RemoveXattr(nc(ctx), n.ino(), attr))
}

func (n *inode) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	names, err := n.m.fsys.ListXattr(nc(ctx), n.ino())
	if err != nil {
		return 0, n.m.errno(err)
	}
	var b strings.Builder
	for _, name := range names {
		b.WriteString(name)
		b.WriteByte(0)
	}
	if len(dest) < b.Len() {
		return uint32(b.Len()), syscall.ERANGE
	}
	return uint32(copy(dest, b.String())), 0
}

// file is an open file.
type file struct {
	h *node.Handle
	m *mount
}

func (f *file) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n, err := f.h.ReadAt(nc(ctx), dest, off)
	if err != nil {
		return nil, f.m.errno(err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

func (f *file) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	n, err := f.h.WriteAt(nc(ctx), data, off)
	if err != nil {
		return uint32(n), f.m.errno(err)
	}
	return uint32(n), 0
}

func (f *file) Flush(ctx context.Context) syscall.Errno { return f.m.errno(f.h.Flush(nc(ctx))) }

func (f *file) Fsync(ctx context.Context, _ uint32) syscall.Errno {
	return f.m.errno(f.h.Fsync(nc(ctx)))
}

func (f *file) Release(ctx context.Context) syscall.Errno { return f.m.errno(f.h.Release(nc(ctx))) }

// nc detaches a request's context from FUSE interrupts. The kernel
// interrupts a request whenever the calling thread gets a signal, and Go
// programs signal their threads all the time (goroutine preemption), so
// honouring interrupts turns ordinary calls into spurious errors. Local
// operations are short; remote fetches have their own timeouts.
func nc(ctx context.Context) context.Context { return context.WithoutCancel(ctx) }
