package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/anysync/anysync/fs/localdb"
	"github.com/anysync/anysync/fs/node"
	"github.com/anysync/anysync/store/tree"
)

// pinsKey holds the pinned cloud paths (JSON list) in the node database,
// so files added to a pinned folder later are pinned too, across restarts.
const pinsKey = "pinned_paths"

// PathState is what `anysync status PATH` reports.
type PathState struct {
	Path        string `json:"path"`
	State       string `json:"state"` // placeholder, partial, cached, pinned, dirty, uploading
	Files       int64  `json:"files"`
	Bytes       int64  `json:"bytes"`
	CachedBytes int64  `json:"cached_bytes"`
	Pinned      bool   `json:"pinned"`
	Dirty       int64  `json:"dirty"`     // files with changes not yet committed
	Uploading   int64  `json:"uploading"` // of those, files being uploaded now
}

// Progress reports a long operation (pin) to the CLI.
type Progress struct {
	Done  int64 `json:"done"`
	Total int64 `json:"total"`
}

func (d *daemon) loadPins(ctx context.Context) ([]string, error) {
	b, ok, err := d.db.GetKV(ctx, pinsKey)
	if err != nil || !ok {
		return nil, err
	}
	var pins []string
	if err := json.Unmarshal(b, &pins); err != nil {
		return nil, fmt.Errorf("pinned paths: %w", err)
	}
	return pins, nil
}

func (d *daemon) savePins(ctx context.Context, pins []string) error {
	slices.Sort(pins)
	b, err := json.Marshal(slices.Compact(pins))
	if err != nil {
		return err
	}
	return d.db.Update(ctx, func(tx *localdb.Tx) error { return tx.SetKV(pinsKey, b) })
}

// cleanCloudPath checks a cloud path from the CLI: absolute, each name
// valid (no "..": the path cannot leave the drive).
func cleanCloudPath(p string) (string, error) {
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("%w: %q is not a cloud path (/Docs/a.txt) or a path in the mount", ErrBadRequest, p)
	}
	var comps []string
	for _, c := range strings.Split(p, "/") {
		if c == "" {
			continue
		}
		if err := tree.ValidName(c); err != nil {
			return "", fmt.Errorf("%w: %q: %v", ErrBadRequest, p, err)
		}
		comps = append(comps, c)
	}
	return "/" + strings.Join(comps, "/"), nil
}

// resolve walks a cloud path in the node table, as this device sees it
// (folders excluded by selective sync are not there).
func (d *daemon) resolve(ctx context.Context, p string) (localdb.Node, error) {
	return d.walk(ctx, p, true)
}

// walk walks a cloud path in the node table; visible refuses paths in
// folders excluded by selective sync.
func (d *daemon) walk(ctx context.Context, p string, visible bool) (localdb.Node, error) {
	n, err := d.db.Get(ctx, localdb.RootIno)
	if err != nil {
		return localdb.Node{}, err
	}
	for _, c := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		if c == "" {
			continue
		}
		if visible && d.fs.IsHidden(n.Ino, c) {
			return localdb.Node{}, fmt.Errorf("%s: excluded from this device (anysync selective include brings it back)", p)
		}
		if n, err = d.db.Lookup(ctx, n.Ino, c); err != nil {
			if errors.Is(err, localdb.ErrNotFound) {
				return localdb.Node{}, fmt.Errorf("%s: not in the drive", p)
			}
			return localdb.Node{}, err
		}
	}
	return d.db.Get(ctx, n.Ino)
}

// eachFile calls fn for every file at or below n, with its chunk list.
func (d *daemon) eachFile(ctx context.Context, n localdb.Node, fn func(localdb.Node, []tree.ChunkRef) error) error {
	switch n.Kind {
	case localdb.KindFile:
		refs, err := localdb.DecodeChunks(n.Chunks)
		if err != nil {
			return err
		}
		chunks := make([]tree.ChunkRef, len(refs))
		for i, r := range refs {
			chunks[i] = tree.ChunkRef{ID: r.ID, Length: r.Length}
		}
		return fn(n, chunks)
	case localdb.KindDir:
		after := ""
		for {
			kids, err := d.db.FullChildren(ctx, n.Ino, after, 1024)
			if err != nil {
				return err
			}
			for _, k := range kids {
				if d.fs.IsHidden(n.Ino, k.Name) {
					continue // excluded by selective sync
				}
				if err := d.eachFile(ctx, k, fn); err != nil {
					return err
				}
			}
			if len(kids) < 1024 {
				return nil
			}
			after = kids[len(kids)-1].Name
		}
	}
	return nil
}

// chunksUnder collects the chunk lists of every file at or below p.
func (d *daemon) chunksUnder(ctx context.Context, p string, visible bool) ([]tree.ChunkRef, error) {
	n, err := d.walk(ctx, p, visible)
	if err != nil {
		return nil, err
	}
	var all []tree.ChunkRef
	err = d.eachFile(ctx, n, func(_ localdb.Node, c []tree.ChunkRef) error {
		all = append(all, c...)
		return nil
	})
	return all, err
}

// pin downloads every file at or below the paths and keeps them on disk;
// the paths are remembered so later files are pinned too.
func (d *daemon) pin(ctx context.Context, paths []string, progress func(Progress)) error {
	var all []tree.ChunkRef
	for _, p := range paths {
		c, err := d.chunksUnder(ctx, p, true)
		if err != nil {
			return err
		}
		all = append(all, c...)
	}
	pins, err := d.loadPins(ctx)
	if err != nil {
		return err
	}
	if err := d.savePins(ctx, append(pins, paths...)); err != nil {
		return err
	}
	return d.repo.Pin(ctx, all, func(done, total int64) {
		if progress != nil {
			progress(Progress{Done: done, Total: total})
		}
	})
}

// unpin makes the paths evictable again (unless another pin covers them).
func (d *daemon) unpin(ctx context.Context, paths []string) error {
	if err := d.forgetPins(ctx, paths); err != nil {
		return err
	}
	return d.releasePins(ctx, paths)
}

// forgetPins removes the pins at or below paths from the pinned list.
func (d *daemon) forgetPins(ctx context.Context, paths []string) error {
	pins, err := d.loadPins(ctx)
	if err != nil {
		return err
	}
	pins = slices.DeleteFunc(pins, func(p string) bool {
		for _, u := range paths {
			if under(p, u) {
				return true
			}
		}
		return false
	})
	return d.savePins(ctx, pins)
}

// releasePins lets the chunks under paths be evicted, except those that
// pins still in the list cover.
func (d *daemon) releasePins(ctx context.Context, paths []string) error {
	for _, p := range paths {
		c, err := d.chunksUnder(ctx, p, true)
		if err != nil {
			return err
		}
		if err := d.repo.Unpin(c); err != nil {
			return err
		}
	}
	return d.repin(ctx)
}

// repin pins whatever is new under the pinned paths (files added or
// changed since), quietly; called after commits and pulls.
func (d *daemon) repin(ctx context.Context) error {
	pins, err := d.loadPins(ctx)
	if err != nil || len(pins) == 0 {
		return err
	}
	var all []tree.ChunkRef
	for _, p := range pins {
		c, err := d.chunksUnder(ctx, p, true)
		if err != nil {
			continue // a pinned folder deleted elsewhere: nothing to keep
		}
		all = append(all, c...)
	}
	return d.repo.Pin(ctx, all, nil)
}

// repinLoop keeps pinned folders complete as versions come and go.
func (d *daemon) repinLoop(ctx context.Context) {
	t := time.NewTicker(2 * time.Second)
	defer t.Stop()
	var lastSeq uint64
	var lastCommits int64 = -1
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		seq, commits, err := d.sync.Position(ctx)
		if err != nil || (seq == lastSeq && commits == lastCommits) {
			continue
		}
		// Folders may have moved or been re-created: hide excluded ones
		// where they are now; .versions has a new entry.
		if err := d.refreshHidden(ctx); err != nil {
			d.log.Printf("selective sync: %v", err)
		}
		if seq != lastSeq {
			d.mount.InvalidateContent(node.VersionsIno)
		}
		if err := d.repin(ctx); err != nil {
			d.log.Printf("keep pinned files: %v", err)
			continue
		}
		lastSeq, lastCommits = seq, commits
	}
}

// states reports each path's local state.
func (d *daemon) states(ctx context.Context, paths []string) ([]PathState, error) {
	pins, err := d.loadPins(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]PathState, 0, len(paths))
	for _, p := range paths {
		n, err := d.resolve(ctx, p)
		if err != nil {
			return nil, err
		}
		s := PathState{Path: p}
		s.Pinned = slices.ContainsFunc(pins, func(pin string) bool { return under(p, pin) })
		var cachedFiles, pinnedFiles int64
		err = d.eachFile(ctx, n, func(f localdb.Node, c []tree.ChunkRef) error {
			s.Files++
			s.Bytes += f.Size
			if f.Flags&(localdb.FlagChanged|localdb.FlagContent) != 0 {
				s.Dirty++
				if d.fs.Uploading(f.Ino) {
					s.Uploading++
				}
			}
			cs, err := d.repo.CacheState(c)
			if err != nil {
				return err
			}
			s.CachedBytes += cs.CachedBytes
			if cs.Cached == len(c) {
				cachedFiles++
			}
			// Pinned means kept and here: a pin whose download is still
			// running is not pinned yet.
			if cs.Pinned == len(c) && cs.Cached == len(c) {
				pinnedFiles++
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
		switch {
		case s.Uploading > 0:
			s.State = "uploading"
		case s.Dirty > 0:
			s.State = "dirty"
		case s.Pinned && pinnedFiles == s.Files:
			s.State = "pinned"
		case cachedFiles == s.Files:
			s.State = "cached"
		case s.CachedBytes > 0:
			s.State = "partial"
		default:
			s.State = "placeholder"
		}
		out = append(out, s)
	}
	return out, nil
}
