package daemon

import (
	"context"
	"fmt"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/fs/localdb"
	"github.com/anysync/anysync/fs/node"
	"github.com/anysync/anysync/fs/syncer"
	"github.com/anysync/anysync/remote"
	"github.com/anysync/anysync/store/repo"
	"github.com/anysync/anysync/store/tree"
)

// history serves .versions from the server's version list and the
// repository's trees (trees are small metadata blobs, cached like chunks).
type history struct {
	client *remote.Client
	repo   *repo.Repo
}

// versionsPage is how many versions one list call asks for.
const versionsPage = 1000

func (h history) Versions(ctx context.Context) ([]node.HistoryVersion, error) {
	var out []node.HistoryVersion
	var after uint64
	for {
		page, err := h.client.ListVersions(ctx, after, versionsPage)
		if err != nil {
			return nil, err
		}
		for _, v := range page {
			out = append(out, node.HistoryVersion{Seq: v.Seq, Version: v.Version, Time: v.Time})
			after = v.Seq
		}
		if len(page) < versionsPage {
			return out, nil
		}
	}
}

func (h history) Root(ctx context.Context, version crypto.ID) (crypto.ID, error) {
	v, err := h.repo.LoadVersion(ctx, version)
	if err != nil {
		return crypto.ID{}, err
	}
	return v.Root, nil
}

func (h history) List(ctx context.Context, id crypto.ID) ([]node.HistoryEntry, error) {
	t, err := h.repo.LoadTree(ctx, id)
	if err != nil {
		return nil, err
	}
	out := make([]node.HistoryEntry, len(t.Entries))
	for i, e := range t.Entries {
		he := node.HistoryEntry{Name: e.Name, Mode: e.Mode, Size: int64(e.Size), Mtime: e.ModTime, Ctime: e.ChangeTime}
		switch e.Kind {
		case tree.KindFile:
			he.Kind, he.Chunks = localdb.KindFile, syncer.EncodeChunks(e.Chunks)
		case tree.KindDir:
			he.Kind, he.Tree = localdb.KindDir, e.Subtree
		case tree.KindSymlink:
			he.Kind, he.Target = localdb.KindSymlink, e.Target
		default:
			return nil, fmt.Errorf("tree %s: entry %q of unknown kind %d", id, e.Name, e.Kind)
		}
		out[i] = he
	}
	return out, nil
}
