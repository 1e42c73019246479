package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/anysync/anysync/fs/localdb"
	"github.com/anysync/anysync/fs/node"
)

// excludedKey holds the cloud paths selective sync excludes on this device
// (JSON list) in the node database.
const excludedKey = "excluded_paths"

func (d *daemon) loadExcluded(ctx context.Context) ([]string, error) {
	b, ok, err := d.db.GetKV(ctx, excludedKey)
	if err != nil || !ok {
		return nil, err
	}
	var ps []string
	if err := json.Unmarshal(b, &ps); err != nil {
		return nil, fmt.Errorf("excluded paths: %w", err)
	}
	return ps, nil
}

func (d *daemon) saveExcluded(ctx context.Context, ps []string) error {
	slices.Sort(ps)
	b, err := json.Marshal(slices.Compact(ps))
	if err != nil {
		return err
	}
	return d.db.Update(ctx, func(tx *localdb.Tx) error { return tx.SetKV(excludedKey, b) })
}

// under reports whether p is base or inside it.
func under(p, base string) bool {
	return p == base || base == "/" || strings.HasPrefix(p, base+"/")
}

// refreshHidden tells the node layer which entries to hide: each excluded
// path's name in its parent folder, found anew (folders may have been
// re-created or moved by other devices).
func (d *daemon) refreshHidden(ctx context.Context) error {
	ps, err := d.loadExcluded(ctx)
	if err != nil {
		return err
	}
	var hidden []node.HiddenEntry
	for _, p := range ps {
		parent, err := d.walk(ctx, path.Dir(p), false)
		if err != nil {
			continue // the parent is gone: nothing to hide there now
		}
		hidden = append(hidden, node.HiddenEntry{Parent: parent.Ino, Name: path.Base(p)})
	}
	d.fs.SetHidden(hidden)
	return nil
}

// exclude hides folders on this device; they stay in the cloud as they are.
func (d *daemon) exclude(ctx context.Context, paths []string) error {
	ps, err := d.loadExcluded(ctx)
	if err != nil {
		return err
	}
	for _, p := range paths {
		if p == "/" {
			return fmt.Errorf("%w: the whole drive cannot be excluded (unmount it instead)", ErrBadRequest)
		}
		n, err := d.walk(ctx, p, false)
		if err != nil {
			return err
		}
		if n.Kind != localdb.KindDir {
			return fmt.Errorf("%s is not a folder: selective sync excludes folders", p)
		}
		ps = append(ps, p)
	}
	if err := d.saveExcluded(ctx, ps); err != nil {
		return err
	}
	// Excluded data is never pinned here: drop pins inside it, and let its
	// cached chunks be evicted.
	pins, err := d.loadPins(ctx)
	if err != nil {
		return err
	}
	pins = slices.DeleteFunc(pins, func(pin string) bool {
		for _, p := range paths {
			if under(pin, p) {
				return true
			}
		}
		return false
	})
	for _, p := range paths {
		c, err := d.chunksUnder(ctx, p, false)
		if err != nil {
			return err
		}
		if err := d.repo.Unpin(c); err != nil {
			return err
		}
	}
	if err := d.savePins(ctx, pins); err != nil {
		return err
	}
	if err := d.refreshHidden(ctx); err != nil {
		return err
	}
	d.invalidatePaths(ctx, paths)
	// Pins of folders above an excluded one still cover their other files.
	return d.repin(ctx)
}

// include shows excluded folders again (read on demand, like any other).
func (d *daemon) include(ctx context.Context, paths []string) error {
	ps, err := d.loadExcluded(ctx)
	if err != nil {
		return err
	}
	var unknown []string
	for _, p := range paths {
		if !slices.Contains(ps, p) {
			unknown = append(unknown, p)
		}
	}
	if len(unknown) > 0 {
		return fmt.Errorf("not excluded: %s (see anysync selective list)", strings.Join(unknown, ", "))
	}
	ps = slices.DeleteFunc(ps, func(p string) bool { return slices.Contains(paths, p) })
	if err := d.saveExcluded(ctx, ps); err != nil {
		return err
	}
	if err := d.refreshHidden(ctx); err != nil {
		return err
	}
	d.invalidatePaths(ctx, paths)
	return d.repin(ctx)
}

// invalidatePaths drops the kernel's cached lookups (positive or
// negative) and listings for the entries at paths.
func (d *daemon) invalidatePaths(ctx context.Context, paths []string) {
	if d.mount == nil {
		return
	}
	for _, p := range paths {
		parent, err := d.walk(ctx, path.Dir(p), false)
		if err != nil {
			continue
		}
		d.mount.InvalidateEntry(parent.Ino, path.Base(p))
		d.mount.InvalidateContent(parent.Ino)
	}
}
