//go:build unix

package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/anysync/anysync/store/tree"
)

// PathVersion is a version in which the entry at a cloud path changed.
type PathVersion struct {
	Seq     uint64    `json:"seq"`
	Version string    `json:"version"`
	Time    time.Time `json:"time"`
	Device  string    `json:"device"`
	Kind    string    `json:"kind"` // file, dir, symlink; "" when deleted
	Size    uint64    `json:"size"`
	Deleted bool      `json:"deleted"`
}

// versionPage is how many versions History asks the server for at once.
const versionPage = 500

// History lists the versions in which the entry at cloudPath was created,
// changed or deleted, oldest first. A folder changes whenever anything
// below it does.
func History(ctx context.Context, a *Account, cloudPath string) ([]PathVersion, error) {
	comps, err := SplitCloudPath(cloudPath)
	if err != nil {
		return nil, err
	}
	if err := a.validate(); err != nil {
		return nil, err
	}
	rp, err := a.openRepo()
	if err != nil {
		return nil, err
	}
	if err := a.Remote.SyncIndex(ctx); err != nil {
		return nil, fmt.Errorf("sync index: %w", err)
	}
	var (
		out     []PathVersion
		prev    []byte // canonical encoding of the entry in the previous version; nil: absent
		after   uint64
		existed bool
	)
	for {
		page, err := a.Remote.Versions(ctx, after, versionPage)
		if err != nil {
			return nil, fmt.Errorf("list versions after %d: %w", after, err)
		}
		for _, h := range page {
			after = h.Seq
			v, err := rp.LoadVersion(ctx, h.Version)
			if err != nil {
				return nil, fmt.Errorf("load version %d: %w", h.Seq, err)
			}
			e, err := lookupPath(ctx, rp, v.Root, comps)
			var cur []byte
			switch {
			case err == nil:
				if cur, err = entryKey(e); err != nil {
					return nil, err
				}
			case errors.Is(err, ErrNotFound) || errors.Is(err, ErrPathConflict):
				// absent in this version
			default:
				return nil, fmt.Errorf("version %d: %w", h.Seq, err)
			}
			exists := cur != nil
			if exists == existed && bytes.Equal(cur, prev) {
				continue
			}
			pv := PathVersion{Seq: h.Seq, Version: h.Version.String(), Time: time.Unix(0, v.Time), Device: v.Device, Deleted: !exists}
			if exists {
				pv.Kind, pv.Size = e.Kind.String(), e.Size
			}
			out = append(out, pv)
			prev, existed = cur, exists
		}
		if len(page) < versionPage {
			return out, nil
		}
	}
}

// entryKey is an entry's canonical encoding, to tell whether it changed.
func entryKey(e tree.Entry) ([]byte, error) {
	b, err := (&tree.Tree{Entries: []tree.Entry{e}}).Encode()
	if err != nil {
		return nil, fmt.Errorf("encode entry %q: %w", e.Name, err)
	}
	return b, nil
}

// RestoreInPlace puts the entry that cloudPath had in version seq back at
// cloudPath, as a new version on top of the head, so the restore itself can
// be undone. Deleted files and folders come back this way too.
func RestoreInPlace(ctx context.Context, a *Account, cloudPath string, seq uint64, device string) (Head, error) {
	comps, err := SplitCloudPath(cloudPath)
	if err != nil {
		return Head{}, err
	}
	if err := a.validate(); err != nil {
		return Head{}, err
	}
	rp, err := a.openRepo()
	if err != nil {
		return Head{}, err
	}
	if err := a.Remote.SyncIndex(ctx); err != nil {
		return Head{}, fmt.Errorf("sync index: %w", err)
	}
	from, err := resolveVersion(ctx, a.Remote, seq)
	if err != nil {
		return Head{}, err
	}
	v, err := rp.LoadVersion(ctx, from.Version)
	if err != nil {
		return Head{}, fmt.Errorf("load version %d: %w", from.Seq, err)
	}
	e, err := lookupPath(ctx, rp, v.Root, comps)
	if err != nil {
		return Head{}, fmt.Errorf("%s in version %d: %w", cloudPath, from.Seq, err)
	}
	if device == "" {
		device, _ = os.Hostname()
	}
	b := &run{acct: a, repo: rp, comps: comps, dev: device, maxEntries: MaxCommitEntries,
		o:       Options{CloudPath: cloudPath, Logf: func(string, ...any) {}},
		sum:     &Summary{CloudPath: cloudPath},
		message: fmt.Sprintf("restore %s from version %d", cloudPath, from.Seq)}
	done, err := b.commit(ctx, e)
	if err != nil {
		return Head{}, err
	}
	if err := b.markCommitted(ctx, done); err != nil {
		return Head{}, err
	}
	return Head{Seq: b.sum.Seq, Version: b.sum.Version}, nil
}
