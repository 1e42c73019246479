//go:build unix

package backup

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/store/repo"
	"github.com/anysync/anysync/store/tree"
)

// SplitCloudPath returns the components of an absolute cloud path such as
// "/Backups/host/src". Empty components and "." are dropped; ".." and the
// root itself are refused.
func SplitCloudPath(p string) ([]string, error) {
	if !strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("%w: %q is not absolute", ErrInvalidPath, p)
	}
	var comps []string
	for c := range strings.SplitSeq(p, "/") {
		if c == "" || c == "." {
			continue
		}
		if err := tree.ValidName(c); err != nil {
			return nil, fmt.Errorf("%w: %q: %w", ErrInvalidPath, p, err)
		}
		comps = append(comps, c)
	}
	if len(comps) == 0 {
		return nil, fmt.Errorf("%w: %q names the root", ErrInvalidPath, p)
	}
	return comps, nil
}

// loadTreeOrEmpty loads tree id, or returns an empty tree for a zero ID.
func loadTreeOrEmpty(ctx context.Context, r *repo.Repo, id crypto.ID) (*tree.Tree, error) {
	if id.IsZero() {
		return &tree.Tree{}, nil
	}
	return r.LoadTree(ctx, id)
}

// splice returns the ID of a copy of tree root in which the entry at path
// comps is replaced by e (e.Name is set to the last component). Missing
// parents are created as folders; a parent that exists but is not a folder
// is ErrPathConflict, and so is a last component that names a non-folder,
// so a backup never silently replaces a file. Only the trees on the path
// are rewritten.
func splice(ctx context.Context, r *repo.Repo, root crypto.ID, comps []string, e tree.Entry) (crypto.ID, error) {
	return spliceAt(ctx, r, root, comps, 0, e)
}

func spliceAt(ctx context.Context, r *repo.Repo, root crypto.ID, comps []string, depth int, e tree.Entry) (crypto.ID, error) {
	t, err := loadTreeOrEmpty(ctx, r, root)
	if err != nil {
		return crypto.ID{}, fmt.Errorf("load /%s: %w", strings.Join(comps[:depth], "/"), err)
	}
	name := comps[depth]
	old, exists := t.Find(name)
	if exists && old.Kind != tree.KindDir {
		return crypto.ID{}, fmt.Errorf("%w: /%s is a %s", ErrPathConflict, strings.Join(comps[:depth+1], "/"), old.Kind)
	}
	var ne tree.Entry
	if depth == len(comps)-1 {
		ne = e
		ne.Name = name
	} else {
		var child crypto.ID
		if exists {
			ne = *old
			child = old.Subtree
		} else {
			now := time.Now().UnixNano()
			ne = tree.Entry{Name: name, Kind: tree.KindDir, Mode: 0o755, ModTime: now, ChangeTime: now}
		}
		sub, err := spliceAt(ctx, r, child, comps, depth+1, e)
		if err != nil {
			return crypto.ID{}, err
		}
		ne.Subtree = sub
	}
	if exists {
		*old = ne
	} else {
		t.Entries = append(t.Entries, ne) // Encode sorts
	}
	id, err := r.SaveTree(ctx, t)
	if err != nil {
		return crypto.ID{}, fmt.Errorf("save /%s: %w", strings.Join(comps[:depth], "/"), err)
	}
	return id, nil
}

// lookupPath walks comps from root and returns the entry they name.
func lookupPath(ctx context.Context, r *repo.Repo, root crypto.ID, comps []string) (tree.Entry, error) {
	cur := tree.Entry{Kind: tree.KindDir, Mode: 0o755, Subtree: root}
	for i, c := range comps {
		if cur.Kind != tree.KindDir {
			return tree.Entry{}, fmt.Errorf("/%s: %w", strings.Join(comps[:i], "/"), ErrPathConflict)
		}
		t, err := r.LoadTree(ctx, cur.Subtree)
		if err != nil {
			return tree.Entry{}, fmt.Errorf("load /%s: %w", strings.Join(comps[:i], "/"), err)
		}
		e, ok := t.Find(c)
		if !ok {
			return tree.Entry{}, fmt.Errorf("/%s: %w", strings.Join(comps[:i+1], "/"), ErrNotFound)
		}
		cur = *e
	}
	return cur, nil
}
