package syncer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/fs/localdb"
	"github.com/anysync/anysync/store/tree"
)

// invalidation is a kernel cache entry to drop once the FS is unlocked
// (the kernel may hold a directory lock while it waits for the FS).
type invalidation struct {
	parent  uint64
	name    string
	ino     uint64 // content of ino, when parent is 0
	content bool
}

func (s *Syncer) invalidate(invs []invalidation) {
	if s.inv == nil {
		return
	}
	seen := make(map[invalidation]bool, len(invs))
	for _, v := range invs {
		if seen[v] {
			continue
		}
		seen[v] = true
		if v.content {
			s.inv.InvalidateContent(v.ino)
		} else {
			s.inv.InvalidateEntry(v.parent, v.name)
		}
	}
}

// Pull applies the server's head to the node table if it moved. It is
// used at start and when the server announces a new head. A head older
// than one this device has seen is a rollback (ErrRollback).
func (s *Syncer) Pull(ctx context.Context) error {
	head, err := s.cfg.Remote.Head(ctx)
	if err != nil {
		return fmt.Errorf("read head: %w", err)
	}
	return s.pull(ctx, head, false)
}

// PullHead applies a head the server announced. An announced head no
// newer than the local one is stale, not a rollback: this device
// committed or applied a later head between the announcement and now.
func (s *Syncer) PullHead(ctx context.Context, head Head) error {
	return s.pull(ctx, head, true)
}

func (s *Syncer) pull(ctx context.Context, head Head, announced bool) error {
	s.round.Lock()
	defer s.round.Unlock()
	var invs []invalidation
	err := s.cfg.FS.Locked(func() error {
		if announced {
			lh, err := s.localHead(ctx)
			if err != nil {
				return err
			}
			if head.Seq <= lh.Seq {
				return nil
			}
		}
		var err error
		invs, err = s.applyLocked(ctx, head)
		return err
	})
	s.invalidate(invs)
	return err
}

// syncIndex adds the index entries committed since the last call.
func (s *Syncer) syncIndex(ctx context.Context) error {
	v, _, err := s.cfg.DB.GetKV(ctx, kvIndexCursor)
	if err != nil {
		return err
	}
	cursor := decodeUint(v)
	for {
		entries, next, err := s.cfg.Remote.IndexSince(ctx, cursor)
		if err != nil {
			return fmt.Errorf("sync index after %d: %w", cursor, err)
		}
		if len(entries) == 0 && next == cursor {
			return nil
		}
		if err := s.cfg.DB.AddBlobs(ctx, toBlobEntries(entries), true); err != nil {
			return err
		}
		cursor = next
		if err := s.cfg.DB.Update(ctx, func(tx *localdb.Tx) error { return tx.SetKV(kvIndexCursor, encodeUint(cursor)) }); err != nil {
			return err
		}
		if len(entries) == 0 {
			return nil
		}
	}
}

// applyLocked merges the version at head into the node table: remote
// changes are applied where this device changed nothing; where both sides
// changed a file, the remote file takes the name and the local one is
// kept as a conflict copy. Called with the FS locked.
func (s *Syncer) applyLocked(ctx context.Context, head Head) ([]invalidation, error) {
	maxSeen, _, err := s.cfg.DB.GetKV(ctx, kvMaxSeq)
	if err != nil {
		return nil, err
	}
	if head.Seq < decodeUint(maxSeen) {
		return nil, fmt.Errorf("server head %d, seen %d: %w", head.Seq, decodeUint(maxSeen), ErrRollback)
	}
	lh, err := s.localHead(ctx)
	if err != nil {
		return nil, err
	}
	if head.Version == lh.Version {
		return nil, nil
	}
	if err := s.syncIndex(ctx); err != nil {
		return nil, err
	}
	v, err := s.cfg.Repo.LoadVersion(ctx, head.Version)
	if err != nil {
		return nil, err
	}
	m := &merger{s: s, ctx: ctx, now: time.Now()}
	var base *tree.Tree
	if !lh.Root.IsZero() {
		if base, err = s.cfg.Repo.LoadTree(ctx, lh.Root); err != nil {
			return nil, err
		}
	}
	remoteRoot, err := s.cfg.Repo.LoadTree(ctx, v.Root)
	if err != nil {
		return nil, err
	}
	// The merge loads trees, maybe over the network, inside its Update:
	// commit what is pending first, so lookups meanwhile need not wait.
	if err := s.cfg.DB.Flush(); err != nil {
		return nil, err
	}
	err = s.cfg.DB.Update(ctx, func(tx *localdb.Tx) error {
		root, err := tx.Get(localdb.RootIno)
		if err != nil {
			return err
		}
		if err := m.mergeDir(tx, root, base, remoteRoot, v.Root); err != nil {
			return err
		}
		return setLocalHead(tx, localHead{Head: head, Root: v.Root})
	})
	if err != nil {
		return nil, err
	}
	for _, name := range m.drop {
		s.cfg.FS.RemoveStaging(name)
	}
	for _, ino := range m.replaced {
		s.cfg.FS.ContentReplaced(ino)
	}
	return m.invs, nil
}

type merger struct {
	s        *Syncer
	ctx      context.Context
	now      time.Time
	invs     []invalidation
	drop     []string // staging files of removed nodes
	replaced []uint64 // files whose committed content changed
}

func (m *merger) loadTree(id crypto.ID) (*tree.Tree, error) {
	if id.IsZero() {
		return &tree.Tree{}, nil
	}
	return m.s.cfg.Repo.LoadTree(m.ctx, id)
}

func allChildren(tx *localdb.Tx, dir uint64) ([]localdb.Node, error) {
	var out []localdb.Node
	after := ""
	for {
		kids, err := tx.Children(dir, after, listBatch)
		if err != nil {
			return nil, err
		}
		out = append(out, kids...)
		if len(kids) < listBatch {
			return out, nil
		}
		after = kids[len(kids)-1].Name
	}
}

func find(t *tree.Tree, name string) *tree.Entry {
	if t == nil {
		return nil
	}
	e, ok := t.Find(name)
	if !ok {
		return nil
	}
	return e
}

// mergeDir reconciles the local directory dir with the remote tree r (ID
// rid), given base, the tree at the same path in the version local changes
// are based on (nil if none).
func (m *merger) mergeDir(tx *localdb.Tx, dir localdb.Node, base, r *tree.Tree, rid crypto.ID) error {
	kids, err := allChildren(tx, dir.Ino)
	if err != nil {
		return err
	}
	local := make(map[string]*localdb.Node, len(kids))
	names := make(map[string]bool, len(kids))
	for i := range kids {
		local[kids[i].Name] = &kids[i]
		names[kids[i].Name] = true
	}
	if base != nil {
		for _, e := range base.Entries {
			names[e.Name] = true
		}
	}
	for _, e := range r.Entries {
		names[e.Name] = true
	}
	for name := range names {
		b, re, l := find(base, name), find(r, name), local[name]
		if entriesEqual(b, re) {
			continue // remote did not change it: keep whatever is local
		}
		if localMatches(l, b) {
			if err := m.take(tx, dir.Ino, l, re); err != nil {
				return err
			}
			continue
		}
		// Both sides changed this name.
		switch {
		case re == nil:
			// Deleted remotely, changed locally: the local change stays.
		case l == nil:
			// Deleted locally, changed remotely: the edit wins.
			if err := m.take(tx, dir.Ino, nil, re); err != nil {
				return err
			}
		case l.Kind == localdb.KindDir && re.Kind == tree.KindDir:
			var bsub *tree.Tree
			if b != nil && b.Kind == tree.KindDir {
				if bsub, err = m.loadTree(b.Subtree); err != nil {
					return err
				}
			}
			rsub, err := m.loadTree(re.Subtree)
			if err != nil {
				return err
			}
			if err := m.mergeDir(tx, *l, bsub, rsub, re.Subtree); err != nil {
				return err
			}
		case l.Kind == localdb.KindFile && re.Kind == tree.KindFile && l.Flags&localdb.FlagContent == 0 &&
			bytes.Equal(l.Chunks, EncodeChunks(re.Chunks)):
			// Same content on both sides: take the remote attributes.
			if err := m.take(tx, dir.Ino, l, re); err != nil {
				return err
			}
		default:
			if err := m.conflictCopy(tx, dir.Ino, l); err != nil {
				return err
			}
			if err := m.take(tx, dir.Ino, nil, re); err != nil {
				return err
			}
		}
	}
	return tx.SetTree(dir.Ino, rid, dir.Flags)
}

// EncodeChunks encodes a tree's chunk list as the node table stores it.
func EncodeChunks(cs []tree.ChunkRef) []byte { return localdb.EncodeChunks(fromTreeChunks(cs)) }

func xattrsOf(e *tree.Entry) []byte {
	xs := make([]localdb.Xattr, len(e.Xattrs))
	for i, x := range e.Xattrs {
		xs[i] = localdb.Xattr{Name: x.Name, Value: x.Value}
	}
	return localdb.EncodeXattrs(xs)
}

// entriesEqual compares two tree entries (nil is absent).
func entriesEqual(a, b *tree.Entry) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.Kind != b.Kind || a.Mode != b.Mode || a.Target != b.Target || a.Subtree != b.Subtree ||
		len(a.Chunks) != len(b.Chunks) || !bytes.Equal(xattrsOf(a), xattrsOf(b)) {
		return false
	}
	if a.Kind != tree.KindDir && a.ModTime != b.ModTime {
		return false
	}
	for i := range a.Chunks {
		if a.Chunks[i] != b.Chunks[i] {
			return false
		}
	}
	return true
}

// localMatches reports whether a local node is unchanged from the base
// entry (nil is absent).
func localMatches(l *localdb.Node, b *tree.Entry) bool {
	if l == nil || b == nil {
		return l == nil && b == nil
	}
	if l.Kind != localdb.Kind(b.Kind) || l.Mode != b.Mode || !bytes.Equal(l.Xattrs, xattrsOf(b)) {
		return false
	}
	switch l.Kind {
	case localdb.KindFile:
		return l.Flags&localdb.FlagContent == 0 && l.Mtime == b.ModTime && bytes.Equal(l.Chunks, EncodeChunks(b.Chunks))
	case localdb.KindDir:
		return l.Flags&localdb.FlagChanged == 0 && l.Tree == b.Subtree
	default:
		return l.Target == b.Target && l.Mtime == b.ModTime
	}
}

// take makes the local name match the remote entry re (nil: delete).
func (m *merger) take(tx *localdb.Tx, parent uint64, l *localdb.Node, re *tree.Entry) error {
	m.invs = append(m.invs, invalidation{ino: parent, content: true}) // the listing
	if l != nil && (re == nil || localdb.Kind(re.Kind) != l.Kind) {
		if err := m.remove(tx, l); err != nil {
			return err
		}
		m.invs = append(m.invs, invalidation{parent: parent, name: l.Name})
		l = nil
	}
	if re == nil {
		return nil
	}
	if l == nil {
		m.invs = append(m.invs, invalidation{parent: parent, name: re.Name})
		return m.insert(tx, parent, re)
	}
	n := *l
	n.Mode, n.Mtime, n.Ctime, n.Xattrs = re.Mode, re.ModTime, re.ChangeTime, xattrsOf(re)
	n.Flags &^= localdb.FlagChanged
	switch n.Kind {
	case localdb.KindFile:
		chunks := EncodeChunks(re.Chunks)
		if !bytes.Equal(chunks, n.Chunks) {
			n.Chunks, n.Size = chunks, int64(re.Size)
			n.Flags |= localdb.FlagSynced
			// A staging file of an unchanged file is an open file's
			// local copy of the old content: no longer the row's.
			n.Staging = ""
			m.replaced = append(m.replaced, n.Ino)
		}
	case localdb.KindSymlink:
		n.Target, n.Size = re.Target, int64(len(re.Target))
	case localdb.KindDir:
		if n.Tree != re.Subtree {
			// Local is unchanged from base: bring the whole subtree over.
			cur, err := m.loadTree(n.Tree)
			if err != nil {
				return err
			}
			sub, err := m.loadTree(re.Subtree)
			if err != nil {
				return err
			}
			if err := m.mergeDir(tx, n, cur, sub, re.Subtree); err != nil {
				return err
			}
		}
		n.Tree = re.Subtree
	}
	if err := tx.Put(&n); err != nil {
		return err
	}
	m.invs = append(m.invs, invalidation{ino: n.Ino, content: true})
	return nil
}

// insert adds a remote entry, with its whole subtree for a directory.
func (m *merger) insert(tx *localdb.Tx, parent uint64, e *tree.Entry) error {
	n := localdb.Node{Parent: parent, Name: e.Name, Kind: localdb.Kind(e.Kind), Mode: e.Mode, Mtime: e.ModTime, Ctime: e.ChangeTime, Xattrs: xattrsOf(e)}
	switch e.Kind {
	case tree.KindFile:
		n.Size, n.Chunks, n.Flags = int64(e.Size), EncodeChunks(e.Chunks), localdb.FlagSynced
	case tree.KindSymlink:
		n.Target, n.Size = e.Target, int64(len(e.Target))
	case tree.KindDir:
		n.Tree = e.Subtree
	}
	if _, err := tx.Insert(&n); err != nil {
		return err
	}
	if e.Kind != tree.KindDir {
		return nil
	}
	sub, err := m.loadTree(e.Subtree)
	if err != nil {
		return err
	}
	for i := range sub.Entries {
		if err := m.insert(tx, n.Ino, &sub.Entries[i]); err != nil {
			return err
		}
	}
	return nil
}

// remove deletes a local node and everything below it. Open files stay
// readable as orphans until closed.
func (m *merger) remove(tx *localdb.Tx, n *localdb.Node) error {
	if n.Kind == localdb.KindDir {
		kids, err := allChildren(tx, n.Ino)
		if err != nil {
			return err
		}
		for i := range kids {
			if err := m.remove(tx, &kids[i]); err != nil {
				return err
			}
		}
	}
	staging, err := m.s.cfg.FS.RemoveLocked(tx, n)
	if staging != "" {
		m.drop = append(m.drop, staging)
	}
	return err
}

// conflictCopy renames the local side of a conflict to
// "name (conflict DEVICE YYYY-MM-DD HHMMSS).ext".
func (m *merger) conflictCopy(tx *localdb.Tx, parent uint64, l *localdb.Node) error {
	ext := filepath.Ext(l.Name)
	if ext == l.Name || l.Kind == localdb.KindDir {
		ext = ""
	}
	stem := strings.TrimSuffix(l.Name, ext)
	label := fmt.Sprintf("conflict %s %s", m.s.cfg.Device, m.now.Format("2006-01-02 150405"))
	for i := 1; ; i++ {
		name := fmt.Sprintf("%s (%s)%s", stem, label, ext)
		if i > 1 {
			name = fmt.Sprintf("%s (%s %d)%s", stem, label, i, ext)
		}
		if len(name) > tree.MaxNameLen {
			return fmt.Errorf("conflict copy of %q: name too long: %w", l.Name, localdb.ErrCorrupt)
		}
		if _, err := tx.Lookup(parent, name); errors.Is(err, localdb.ErrNotFound) {
			n := *l
			n.Name = name
			n.Flags |= localdb.FlagChanged
			if err := tx.SetAttrs(&n); err != nil {
				return err
			}
			m.invs = append(m.invs, invalidation{parent: parent, name: l.Name}, invalidation{parent: parent, name: name},
				invalidation{ino: parent, content: true})
			return tx.MarkChanged(parent)
		} else if err != nil {
			return err
		}
	}
}
