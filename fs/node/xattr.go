package node

import (
	"context"
	"strings"
	"syscall"

	"github.com/anysync/anysync/fs/localdb"
)

// Xattr flags of setxattr(2).
const (
	XattrCreate  = 1
	XattrReplace = 2
)

// ReservedXattrPrefix names AnySync's own attributes (state, pin), which
// are computed, not stored, and not listed (so that copying a file out of
// the drive with its attributes does not copy them).
const ReservedXattrPrefix = "user.anysync."

// Reserved answers AnySync's own attributes; the daemon implements it.
type Reserved interface {
	GetReserved(ctx context.Context, ino uint64, name string) ([]byte, error)
	SetReserved(ctx context.Context, ino uint64, name string, value []byte) error
	RemoveReserved(ctx context.Context, ino uint64, name string) error
}

func (f *FS) xattrs(ctx context.Context, ino uint64) ([]localdb.Xattr, error) {
	b, err := f.db.Xattrs(ctx, ino)
	if err != nil {
		return nil, dbErr(err)
	}
	return localdb.DecodeXattrs(b)
}

// GetXattr returns an extended attribute's value.
func (f *FS) GetXattr(ctx context.Context, ino uint64, name string) ([]byte, error) {
	if !strings.HasPrefix(name, "user.") {
		// Only user attributes are stored. ENOTSUP (not ENODATA) says the
		// namespace is unsupported, as setxattr does: ls -l asks for ACLs
		// and security labels on every file, but stops asking on a device
		// after the first ENOTSUP, saving two round trips per file.
		return nil, syscall.ENOTSUP
	}
	if isVirtual(ino) {
		return nil, syscall.ENODATA
	}
	if strings.HasPrefix(name, ReservedXattrPrefix) {
		if f.reserved == nil {
			return nil, syscall.ENODATA
		}
		return f.reserved.GetReserved(ctx, ino, name)
	}
	xs, err := f.xattrs(ctx, ino)
	if err != nil {
		return nil, err
	}
	for _, x := range xs {
		if x.Name == name {
			return x.Value, nil
		}
	}
	return nil, syscall.ENODATA
}

// ListXattr returns the names of a node's extended attributes.
func (f *FS) ListXattr(ctx context.Context, ino uint64) ([]string, error) {
	if isVirtual(ino) {
		return nil, nil
	}
	xs, err := f.xattrs(ctx, ino)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(xs))
	for i, x := range xs {
		names[i] = x.Name
	}
	return names, nil
}

// SetXattr sets a user extended attribute; other namespaces are not stored.
func (f *FS) SetXattr(ctx context.Context, ino uint64, name string, value []byte, flags uint32) error {
	switch {
	case !strings.HasPrefix(name, "user.") || len(name) == len("user."):
		return syscall.ENOTSUP
	case isVirtual(ino):
		return syscall.EROFS
	case strings.HasPrefix(name, ReservedXattrPrefix):
		if f.reserved == nil {
			return syscall.EPERM
		}
		return f.reserved.SetReserved(ctx, ino, name, value)
	case len(name) > localdb.MaxXattrName:
		return syscall.ERANGE
	case len(value) > localdb.MaxXattrValue:
		return syscall.E2BIG
	}
	return f.updateXattrs(ctx, ino, func(xs []localdb.Xattr) ([]localdb.Xattr, error) {
		for i := range xs {
			if xs[i].Name == name {
				if flags&XattrCreate != 0 {
					return nil, syscall.EEXIST
				}
				xs[i].Value = append([]byte(nil), value...)
				return xs, nil
			}
		}
		if flags&XattrReplace != 0 {
			return nil, syscall.ENODATA
		}
		if len(xs) >= localdb.MaxXattrs {
			return nil, syscall.ENOSPC
		}
		return append(xs, localdb.Xattr{Name: name, Value: append([]byte(nil), value...)}), nil
	})
}

// RemoveXattr removes an extended attribute.
func (f *FS) RemoveXattr(ctx context.Context, ino uint64, name string) error {
	if isVirtual(ino) {
		return syscall.EROFS
	}
	if strings.HasPrefix(name, ReservedXattrPrefix) {
		if f.reserved == nil {
			return syscall.ENODATA
		}
		return f.reserved.RemoveReserved(ctx, ino, name)
	}
	return f.updateXattrs(ctx, ino, func(xs []localdb.Xattr) ([]localdb.Xattr, error) {
		for i := range xs {
			if xs[i].Name == name {
				return append(xs[:i], xs[i+1:]...), nil
			}
		}
		return nil, syscall.ENODATA
	})
}

func (f *FS) updateXattrs(ctx context.Context, ino uint64, fn func([]localdb.Xattr) ([]localdb.Xattr, error)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.db.Update(ctx, func(tx *localdb.Tx) error {
		n, err := tx.Get(ino)
		if err != nil {
			return dbErr(err)
		}
		xs, err := localdb.DecodeXattrs(n.Xattrs)
		if err != nil {
			return err
		}
		if xs, err = fn(xs); err != nil {
			return err
		}
		if err := tx.SetXattrs(ino, localdb.EncodeXattrs(xs), now()); err != nil {
			return err
		}
		if !inTree(&n) {
			return nil
		}
		n.Flags |= localdb.FlagChanged
		if err := tx.SetFlags(ino, n.Flags); err != nil {
			return err
		}
		return tx.MarkChanged(n.Parent)
	})
	if err != nil {
		return err
	}
	f.notifyChanged()
	return nil
}
