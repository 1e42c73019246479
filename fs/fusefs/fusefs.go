//go:build linux || darwin

// Package fusefs is the go-fuse v2 front end of the drive: a thin adapter
// that turns FUSE requests into calls on the shared node layer. FUSE node
// IDs are the node table's inode numbers (ExternalNodeID), so the node layer
// can invalidate kernel entries by inode number.
package fusefs

import (
	"errors"
	"fmt"
	"log"
	"os"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/anysync/anysync/fs/localdb"
	"github.com/anysync/anysync/fs/node"
)

// Options tune a mount.
type Options struct {
	// EntryTimeout and AttrTimeout bound how long the kernel trusts its
	// cached names and attributes. Changes made through the mount keep
	// them exact; remote changes are invalidated explicitly, so they can
	// be long.
	EntryTimeout, AttrTimeout time.Duration
	// Logger receives internal errors (reported to callers as EIO).
	Logger *log.Logger
	// Debug logs every FUSE request.
	Debug bool
}

// DefaultOptions returns the tuned defaults.
func DefaultOptions() Options {
	return Options{EntryTimeout: time.Hour, AttrTimeout: time.Hour}
}

// maxWrite is the largest write the kernel sends at once.
const maxWrite = 1 << 20

// maxReadAhead is the kernel's read-ahead window: several chunks, so
// sequential reads keep parallel fetches in flight.
const maxReadAhead = 8 << 20

// Mount is a mounted drive.
type Mount struct {
	srv *fuse.Server
	dir string
	m   *mount
}

type mount struct {
	fsys     *node.FS
	uid, gid uint32
	opts     Options
	// directWrites: handles that write a file afresh bypass the page
	// cache (openFlags). Set once the kernel has agreed to what that needs.
	directWrites atomic.Bool
}

// New mounts fsys at dir and returns once the mount is ready.
func New(dir string, fsys *node.FS, opts Options) (*Mount, error) {
	m := &mount{fsys: fsys, uid: uint32(os.Getuid()), gid: uint32(os.Getgid()), opts: opts}
	neg := opts.EntryTimeout
	fopts := &fs.Options{
		MountOptions: fuse.MountOptions{
			DirectMount:   true,
			FsName:        "anysync",
			Name:          "anysync",
			MaxWrite:      maxWrite,
			MaxReadAhead:  maxReadAhead,
			MaxBackground: 64,
			// Replies are memory buffers: splicing them through a pipe
			// gains nothing, and a 1 MiB read plus header overflows it.
			DisableSplice: true,
			// Clearing set-ID bits on write, truncate and chown is ours
			// (fs/node), so the kernel stops asking for
			// security.capability before writes and for attributes
			// before chown: about three round trips per extracted file.
			ExtraCapabilities: extraCapabilities,
			Debug:             opts.Debug,
		},
		EntryTimeout:    &opts.EntryTimeout,
		AttrTimeout:     &opts.AttrTimeout,
		NegativeTimeout: &neg,
		ExternalNodeID:  true,
		RootStableAttr:  &fs.StableAttr{Ino: localdb.RootIno},
		UID:             m.uid,
		GID:             m.gid,
	}
	root := &inode{m: m}
	srv, err := fs.Mount(dir, root, fopts)
	if err != nil {
		return nil, err
	}
	if k := srv.KernelSettings(); directIOAllowMmap != 0 && k != nil && k.Flags64()&directIOAllowMmap != 0 {
		m.directWrites.Store(true)
	}
	raiseReadAhead(dir)
	return &Mount{srv: srv, dir: dir, m: m}, nil
}

// raiseReadAhead widens the mount's kernel read-ahead window, which the
// kernel caps at 128 KiB whatever the mount asks for. Only root can; for
// anyone else it stays as it is.
func raiseReadAhead(dir string) {
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		return
	}
	major, minor := (st.Dev>>8)&0xfff, (st.Dev&0xff)|((st.Dev>>12)&0xfff00)
	path := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", major, minor)
	_ = os.WriteFile(path, []byte(strconv.Itoa(maxReadAhead>>10)), 0o644)
}

// Unmount unmounts the drive.
func (mt *Mount) Unmount() error { return mt.srv.Unmount() }

// Wait returns when the mount is gone (unmounted by anyone).
func (mt *Mount) Wait() { mt.srv.Wait() }

// InvalidateContent drops the kernel's cached data and attributes of a node.
func (mt *Mount) InvalidateContent(ino uint64) { mt.srv.InodeNotify(ino, 0, -1) }

// InvalidateEntry drops the kernel's cached lookup of a name.
func (mt *Mount) InvalidateEntry(parent uint64, name string) { mt.srv.EntryNotify(parent, name) }

func (m *mount) errno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		return e
	}
	if m.opts.Logger != nil {
		m.opts.Logger.Printf("anysync: %v", err)
	}
	return syscall.EIO
}

func typeBits(k localdb.Kind) uint32 {
	switch k {
	case localdb.KindDir:
		return syscall.S_IFDIR
	case localdb.KindSymlink:
		return syscall.S_IFLNK
	}
	return syscall.S_IFREG
}

func (m *mount) fill(a node.Attr, out *fuse.Attr) {
	out.Ino = a.Ino
	out.Mode = typeBits(a.Kind) | a.Mode
	out.Size = uint64(a.Size)
	out.Blocks = (uint64(a.Size) + 511) / 512
	out.Blksize = maxWrite
	out.Nlink = 1
	out.Owner = fuse.Owner{Uid: m.uid, Gid: m.gid}
	out.Mtime, out.Mtimensec = uint64(a.Mtime/1e9), uint32(a.Mtime%1e9)
	out.Atime, out.Atimensec = out.Mtime, out.Mtimensec
	out.Ctime, out.Ctimensec = uint64(a.Ctime/1e9), uint32(a.Ctime%1e9)
}

func (m *mount) entry(a node.Attr, out *fuse.EntryOut) {
	m.fill(a, &out.Attr)
	out.SetEntryTimeout(m.opts.EntryTimeout)
	out.SetAttrTimeout(m.opts.AttrTimeout)
}

// inode is every node of the mount; the node layer holds the state.
type inode struct {
	fs.Inode
	m *mount
}

var (
	_ fs.NodeLookuper       = (*inode)(nil)
	_ fs.NodeGetattrer      = (*inode)(nil)
	_ fs.NodeSetattrer      = (*inode)(nil)
	_ fs.NodeOpener         = (*inode)(nil)
	_ fs.NodeCreater        = (*inode)(nil)
	_ fs.NodeMkdirer        = (*inode)(nil)
	_ fs.NodeMknoder        = (*inode)(nil)
	_ fs.NodeSymlinker      = (*inode)(nil)
	_ fs.NodeReadlinker     = (*inode)(nil)
	_ fs.NodeUnlinker       = (*inode)(nil)
	_ fs.NodeRmdirer        = (*inode)(nil)
	_ fs.NodeRenamer        = (*inode)(nil)
	_ fs.NodeLinker         = (*inode)(nil)
	_ fs.NodeOpendirHandler = (*inode)(nil)
	_ fs.NodeStatfser       = (*inode)(nil)
	_ fs.NodeGetxattrer     = (*inode)(nil)
	_ fs.NodeSetxattrer     = (*inode)(nil)
	_ fs.NodeListxattrer    = (*inode)(nil)
	_ fs.NodeRemovexattrer  = (*inode)(nil)
	_ fs.FileReader         = (*file)(nil)
	_ fs.FileWriter         = (*file)(nil)
	_ fs.FileFlusher        = (*file)(nil)
	_ fs.FileFsyncer        = (*file)(nil)
	_ fs.FileReleaser       = (*file)(nil)
	_ fs.FileReaddirenter   = (*dir)(nil)
	_ fs.FileLookuper       = (*dir)(nil)
	_ fs.FileSeekdirer      = (*dir)(nil)
)
