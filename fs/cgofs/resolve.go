package cgofs

import (
	"context"
	"errors"
	"strings"
	"syscall"

	"github.com/anysync/anysync/fs/localdb"
	"github.com/anysync/anysync/fs/node"
)

// resolver turns the host's paths into nodes: cgofuse names files by path,
// the node layer by inode number and name. It holds no state of its own,
// so it cannot go stale: every call walks the node table.
type resolver struct {
	fsys *node.FS
	// winNames shows names through EscapeName (Windows).
	winNames bool
	// fold lets a lookup that misses exactly match a name that differs
	// only in case (Windows, macOS).
	fold bool
}

// foldBatch is how many entries a case-insensitive lookup reads at once.
const foldBatch = 1024

// nodeName is the node name a name from the host stands for.
func (r *resolver) nodeName(host string) string {
	if r.winNames {
		return UnescapeName(host)
	}
	return host
}

// hostName is the name the host sees for a node name.
func (r *resolver) hostName(name string) string {
	if r.winNames {
		return EscapeName(name)
	}
	return name
}

// lookup finds the child that a host name stands for, and returns it with
// its name in the node table.
func (r *resolver) lookup(ctx context.Context, dir uint64, host string) (node.Attr, string, error) {
	name := r.nodeName(host)
	a, err := r.fsys.Lookup(ctx, dir, name)
	if err == nil || !r.fold || !errors.Is(err, syscall.ENOENT) {
		return a, name, err
	}
	e, ok, err := r.lookupFold(ctx, dir, name)
	if err != nil {
		return node.Attr{}, "", err
	}
	if !ok {
		return node.Attr{}, "", syscall.ENOENT
	}
	return e.Attr, e.Name, nil
}

// lookupFold finds the first child, in name order, whose name equals name
// without regard to case (Unicode simple folding, as strings.EqualFold).
// It reads the whole directory when nothing matches: case-insensitive
// platforms pay that on every lookup of a missing name.
func (r *resolver) lookupFold(ctx context.Context, dir uint64, name string) (node.DirEntry, bool, error) {
	after := ""
	for {
		ents, err := r.fsys.ReadDir(ctx, dir, after, foldBatch)
		if err != nil {
			return node.DirEntry{}, false, err
		}
		for _, e := range ents {
			if strings.EqualFold(e.Name, name) {
				return e, true, nil
			}
		}
		if len(ents) < foldBatch {
			return node.DirEntry{}, false, nil
		}
		after = ents[len(ents)-1].Name
	}
}

// split cuts a host path ("/a/b") into its names.
func split(path string) []string {
	var names []string
	for _, s := range strings.Split(path, "/") {
		if s != "" {
			names = append(names, s)
		}
	}
	return names
}

// walk returns the node at a host path.
func (r *resolver) walk(ctx context.Context, path string) (node.Attr, error) {
	a, _, err := r.walkNames(ctx, path, false)
	return a, err
}

// walkNames returns the node at a host path and, if names, the path with
// each name as stored (shown to the host), which a case-insensitive
// lookup may have found in another case.
func (r *resolver) walkNames(ctx context.Context, path string, names bool) (node.Attr, string, error) {
	a, err := r.fsys.GetAttr(ctx, localdb.RootIno)
	if err != nil {
		return node.Attr{}, "", err
	}
	var b strings.Builder
	for _, host := range split(path) {
		if a.Kind != localdb.KindDir {
			return node.Attr{}, "", syscall.ENOTDIR
		}
		var name string
		if a, name, err = r.lookup(ctx, a.Ino, host); err != nil {
			return node.Attr{}, "", err
		}
		if names {
			b.WriteByte('/')
			b.WriteString(r.hostName(name))
		}
	}
	if names && b.Len() == 0 {
		b.WriteByte('/')
	}
	return a, b.String(), nil
}

// parent returns the directory a host path names an entry of, and the
// entry's node name as the host gave it (to create it).
func (r *resolver) parent(ctx context.Context, path string) (uint64, string, error) {
	names := split(path)
	if len(names) == 0 {
		return 0, "", syscall.EINVAL // the root has no parent
	}
	dir, err := r.walk(ctx, strings.Join(names[:len(names)-1], "/"))
	if err != nil {
		return 0, "", err
	}
	if dir.Kind != localdb.KindDir {
		return 0, "", syscall.ENOTDIR
	}
	return dir.Ino, r.nodeName(names[len(names)-1]), nil
}

// entry returns an existing entry of a host path: its directory, its name
// in the node table (which a case-insensitive lookup may have found in
// another case) and its attributes.
func (r *resolver) entry(ctx context.Context, path string) (uint64, string, node.Attr, error) {
	names := split(path)
	if len(names) == 0 {
		return 0, "", node.Attr{}, syscall.EBUSY // the root cannot be removed or moved
	}
	dir, err := r.walk(ctx, strings.Join(names[:len(names)-1], "/"))
	if err != nil {
		return 0, "", node.Attr{}, err
	}
	if dir.Kind != localdb.KindDir {
		return 0, "", node.Attr{}, syscall.ENOTDIR
	}
	a, name, err := r.lookup(ctx, dir.Ino, names[len(names)-1])
	if err != nil {
		return 0, "", node.Attr{}, err
	}
	return dir.Ino, name, a, nil
}

// free checks that a new entry may take a name: on a case-insensitive
// mount, no entry may differ from it only in case.
func (r *resolver) free(ctx context.Context, dir uint64, name string) error {
	if !r.fold {
		return nil
	}
	if _, found, err := r.lookupFold(ctx, dir, name); err != nil {
		return err
	} else if found {
		return syscall.EEXIST
	}
	return nil
}

// hostPath returns the host path of a node (for change notifications), by
// its ancestors in the node table.
func (r *resolver) hostPath(ctx context.Context, ino uint64) (string, error) {
	var names []string
	for ino != localdb.RootIno {
		n, err := r.fsys.DB().Attr(ctx, ino)
		if err != nil {
			return "", err
		}
		if n.Parent == localdb.OrphanParent {
			return "", syscall.ENOENT
		}
		names = append(names, r.hostName(n.Name))
		ino = n.Parent
	}
	var b strings.Builder
	for i := len(names) - 1; i >= 0; i-- {
		b.WriteByte('/')
		b.WriteString(names[i])
	}
	if b.Len() == 0 {
		return "/", nil
	}
	return b.String(), nil
}
