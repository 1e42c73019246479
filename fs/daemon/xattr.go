package daemon

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"

	"github.com/anysync/anysync/fs/localdb"
	"github.com/anysync/anysync/fs/node"
)

// AnySync's own extended attributes: computed, not stored.
const (
	// XattrState reads as placeholder, partial, cached, pinned, dirty,
	// uploading (or, for folders, the state of what is in them).
	XattrState = node.ReservedXattrPrefix + "state"
	// XattrPin reads as 1 or 0; setting it to 1 pins (the download runs in
	// the background), to 0 or removing it unpins.
	XattrPin = node.ReservedXattrPrefix + "pin"
)

// reserved answers the user.anysync.* attributes for the node layer.
type reserved struct{ d *daemon }

// pathOf returns the cloud path of a node by walking up its parents.
func (d *daemon) pathOf(ctx context.Context, ino uint64) (string, error) {
	var names []string
	for ino != localdb.RootIno {
		n, err := d.db.Get(ctx, ino)
		if err != nil {
			return "", err
		}
		if n.Parent == localdb.OrphanParent {
			return "", syscall.ENOENT
		}
		names = append(names, n.Name)
		ino = n.Parent
		if len(names) > 4096 {
			return "", fmt.Errorf("path of %d: too deep: %w", ino, localdb.ErrCorrupt)
		}
	}
	var b strings.Builder
	for i := len(names) - 1; i >= 0; i-- {
		b.WriteString("/")
		b.WriteString(names[i])
	}
	if b.Len() == 0 {
		return "/", nil
	}
	return b.String(), nil
}

func (r reserved) GetReserved(ctx context.Context, ino uint64, name string) ([]byte, error) {
	if name != XattrState && name != XattrPin {
		return nil, syscall.ENODATA
	}
	p, err := r.d.pathOf(ctx, ino)
	if err != nil {
		return nil, err
	}
	if name == XattrPin {
		pinned, err := r.d.pinned(ctx, p)
		if err != nil {
			return nil, err
		}
		if pinned {
			return []byte("1"), nil
		}
		return []byte("0"), nil
	}
	st, err := r.d.states(ctx, []string{p})
	if err != nil {
		return nil, err
	}
	return []byte(st[0].State), nil
}

func (r reserved) SetReserved(ctx context.Context, ino uint64, name string, value []byte) error {
	if name != XattrPin {
		return syscall.EPERM
	}
	var pin bool
	switch strings.ToLower(strings.TrimSpace(string(value))) {
	case "1", "true", "yes", "on":
		pin = true
	case "0", "false", "no", "off":
	default:
		return syscall.EINVAL
	}
	return r.setPin(ctx, ino, pin)
}

func (r reserved) RemoveReserved(ctx context.Context, ino uint64, name string) error {
	if name != XattrPin {
		return syscall.ENODATA
	}
	return r.setPin(ctx, ino, false)
}

// setPin records the pin at once (so it reads back) and leaves the
// download or the unpinning to the background: a file system call must
// not wait for a download.
func (r reserved) setPin(ctx context.Context, ino uint64, pin bool) error {
	d := r.d
	p, err := d.pathOf(ctx, ino)
	if err != nil {
		return err
	}
	pins, err := d.loadPins(ctx)
	if err != nil {
		return err
	}
	if pin {
		if err := d.savePins(ctx, append(pins, p)); err != nil {
			return err
		}
		go func() {
			if err := d.repin(d.ctx); err != nil && !errors.Is(err, context.Canceled) {
				d.log.Printf("pin %s: %v", p, err)
			}
		}()
		return nil
	}
	if err := d.forgetPins(ctx, []string{p}); err != nil {
		return err
	}
	go func() {
		if err := d.releasePins(d.ctx, []string{p}); err != nil && !errors.Is(err, context.Canceled) {
			d.log.Printf("unpin %s: %v", p, err)
		}
	}()
	return nil
}

// pinned reports whether a pinned path covers p.
func (d *daemon) pinned(ctx context.Context, p string) (bool, error) {
	pins, err := d.loadPins(ctx)
	if err != nil {
		return false, err
	}
	for _, pin := range pins {
		if under(p, pin) {
			return true, nil
		}
	}
	return false, nil
}
