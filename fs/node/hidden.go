package node

import (
	"syscall"

	"github.com/anysync/anysync/fs/localdb"
)

// HiddenEntry is a directory entry that selective sync hides on this
// device: the folder stays in the node table (so commits keep it as the
// cloud has it) but lookups and listings do not show it, so nothing in it
// is ever read, downloaded or pinned here. It is named by parent and name,
// not by inode, so a folder re-created at an excluded path by another
// device is hidden too.
type HiddenEntry struct {
	Parent uint64
	Name   string
}

// SetHidden replaces the set of hidden entries.
func (f *FS) SetHidden(entries []HiddenEntry) {
	m := make(map[HiddenEntry]bool, len(entries))
	for _, e := range entries {
		m[e] = true
	}
	f.hmu.Lock()
	f.hidden = m
	f.hmu.Unlock()
}

func (f *FS) isHidden(parent uint64, name string) bool {
	f.hmu.RLock()
	defer f.hmu.RUnlock()
	return len(f.hidden) > 0 && f.hidden[HiddenEntry{parent, name}]
}

// hiddenIn returns the names hidden in a directory: one lock for a whole
// listing page rather than one per entry.
func (f *FS) hiddenIn(parent uint64) map[string]bool {
	f.hmu.RLock()
	defer f.hmu.RUnlock()
	var names map[string]bool
	for e := range f.hidden {
		if e.Parent == parent {
			if names == nil {
				names = map[string]bool{}
			}
			names[e.Name] = true
		}
	}
	return names
}

// IsHidden reports whether an entry is hidden by selective sync.
func (f *FS) IsHidden(parent uint64, name string) bool { return f.isHidden(parent, name) }

// guardCreate refuses a new entry where the drive does not allow one: in
// .versions, over the root's .versions, or over a hidden folder (which
// exists in the cloud: the user includes it again first).
func (f *FS) guardCreate(parent uint64, name string) error {
	switch {
	case isVirtual(parent):
		return syscall.EROFS
	case parent == localdb.RootIno && name == VersionsDir && f.versions != nil:
		return syscall.EEXIST
	case f.isHidden(parent, name):
		return syscall.EEXIST
	}
	return nil
}

// guardRemove refuses to remove or move what the drive does not allow:
// anything in .versions, .versions itself, and hidden folders (which this
// device does not see).
func (f *FS) guardRemove(parent uint64, name string) error {
	switch {
	case isVirtual(parent):
		return syscall.EROFS
	case parent == localdb.RootIno && name == VersionsDir && f.versions != nil:
		return syscall.EROFS
	case f.isHidden(parent, name):
		return syscall.ENOENT
	}
	return nil
}

// Uploading reports whether a node's content is being uploaded now.
func (f *FS) Uploading(ino uint64) bool {
	f.omu.Lock()
	defer f.omu.Unlock()
	return f.busy[ino] != 0
}
