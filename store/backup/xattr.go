//go:build unix

package backup

import (
	"bytes"
	"errors"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/anysync/anysync/store/tree"
)

// Only user.* attributes are recorded: security.* and trusted.* need
// privileges to restore and system.* are ACLs the tree does not model.
// The drive's own user.anysync.* attributes describe local cache state,
// not the file, and are skipped too.
const (
	xattrPrefix      = "user."
	xattrDrivePrefix = "user.anysync."
)

func keepXattr(name string) bool {
	return strings.HasPrefix(name, xattrPrefix) && !strings.HasPrefix(name, xattrDrivePrefix)
}

// xattrOps reads one file's extended attributes: list fills dst with the
// NUL-separated names, get fills dst with one value. Both follow the
// syscall convention of returning the size needed for a nil or short dst.
type xattrOps struct {
	list func(dst []byte) (int, error)
	get  func(name string, dst []byte) (int, error)
}

func fdXattrs(fd int) xattrOps {
	return xattrOps{
		list: func(dst []byte) (int, error) { return unix.Flistxattr(fd, dst) },
		get:  func(name string, dst []byte) (int, error) { return unix.Fgetxattr(fd, name, dst) },
	}
}

// unsupported reports errors meaning "this file system has no xattrs".
func unsupported(err error) bool {
	return errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EOPNOTSUPP)
}

// readXattrs returns the kept attributes, sorted by name. An attribute
// removed between list and get is skipped; one that grows is re-read.
func readXattrs(ops xattrOps) ([]tree.Xattr, error) {
	var names []byte
	for {
		n, err := ops.list(nil)
		if unsupported(err) || n == 0 && err == nil {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		names = make([]byte, n)
		n, err = ops.list(names)
		if errors.Is(err, unix.ERANGE) {
			continue // the list grew in between
		}
		if err != nil {
			return nil, err
		}
		names = names[:n]
		break
	}
	var out []tree.Xattr
	for raw := range bytes.SplitSeq(names, []byte{0}) {
		name := string(raw)
		if !keepXattr(name) {
			continue
		}
		v, err := getXattr(ops, name)
		if errors.Is(err, unix.ENODATA) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if len(name) > tree.MaxNameLen || len(v) > tree.MaxXattrValueLen || len(out) == tree.MaxXattrs {
			continue // the format cannot hold it (Linux limits match, so this is theoretical)
		}
		out = append(out, tree.Xattr{Name: name, Value: v})
	}
	slices.SortFunc(out, func(a, b tree.Xattr) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func getXattr(ops xattrOps, name string) ([]byte, error) {
	for {
		n, err := ops.get(name, nil)
		if err != nil {
			return nil, err
		}
		v := make([]byte, n)
		m, err := ops.get(name, v)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, err
		}
		return v[:m], nil
	}
}
