// Package tree encodes directory trees and versions as blobs. The encoding is
// compact, versioned and canonical: the same tree always gives the same bytes
// and so the same blob ID, which is what lets unchanged subtrees dedup.
//
// The decoders treat input as hostile (a malicious server or storage can
// hand us anything that authenticates under a stolen or replayed key only if
// a device is compromised, but a bug must never turn into a path traversal):
// every name is checked by ValidName, and every count and length is bounded
// by the remaining input before anything is allocated.
package tree

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/anysync/anysync/crypto"
)

// Kind is the type of a tree entry.
type Kind uint8

// Entry kinds.
const (
	KindFile    Kind = 1
	KindDir     Kind = 2
	KindSymlink Kind = 3
)

func (k Kind) String() string {
	switch k {
	case KindFile:
		return "file"
	case KindDir:
		return "dir"
	case KindSymlink:
		return "symlink"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Limits of the format.
const (
	MaxNameLen       = 255      // bytes of an entry or xattr name
	MaxTargetLen     = 4096     // bytes of a symlink target (PATH_MAX)
	MaxXattrValueLen = 64 << 10 // bytes of an xattr value (Linux XATTR_SIZE_MAX)
	MaxXattrs        = 1024     // extended attributes per entry
	MaxDeviceLen     = 255      // bytes of a version's device name
	MaxMessageLen    = 64 << 10 // bytes of a version message
	ModeMask         = 0o7777   // permission, setuid, setgid and sticky bits
)

// Encoding format versions (the first byte of each blob).
const (
	treeFormat    = 1
	versionFormat = 1
)

// ErrInvalid means a tree or version is malformed: on encode, the caller
// built something the format cannot hold; on decode, the blob is corrupt or
// hostile.
var ErrInvalid = errors.New("invalid tree")

// ChunkRef is one chunk of a file, in file order.
type ChunkRef struct {
	ID     crypto.ID
	Length uint32 // plaintext length
}

// Xattr is an extended attribute.
type Xattr struct {
	Name  string
	Value []byte
}

// Entry is one name in a directory.
type Entry struct {
	Name       string
	Kind       Kind
	Mode       uint32 // permission bits plus setuid/setgid/sticky, not the type
	Size       uint64 // file: sum of chunk lengths
	ModTime    int64  // unix ns
	ChangeTime int64  // unix ns
	Xattrs     []Xattr
	Target     string     // symlink only
	Chunks     []ChunkRef // file only
	Subtree    crypto.ID  // dir only
}

// Tree is one directory: entries sorted by Name (bytewise), names unique.
type Tree struct {
	Entries []Entry
}

// ValidName checks an entry name: not empty, ".", or "..", no '/' or NUL,
// at most MaxNameLen bytes. Names need not be valid UTF-8. This is the
// path-traversal defence: a decoded tree never names anything outside its
// directory.
func ValidName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("%w: name %q", ErrInvalid, name)
	case len(name) > MaxNameLen:
		return fmt.Errorf("%w: name of %d bytes exceeds %d", ErrInvalid, len(name), MaxNameLen)
	case strings.IndexByte(name, '/') >= 0 || strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("%w: name %q contains '/' or NUL", ErrInvalid, name)
	}
	return nil
}

// Find returns the entry called name.
func (t *Tree) Find(name string) (*Entry, bool) {
	i, ok := slices.BinarySearchFunc(t.Entries, name, func(e Entry, n string) int {
		return strings.Compare(e.Name, n)
	})
	if !ok {
		return nil, false
	}
	return &t.Entries[i], true
}

// validate checks one entry's fields for its kind.
func (e *Entry) validate() error {
	if err := ValidName(e.Name); err != nil {
		return err
	}
	if e.Mode&^ModeMask != 0 {
		return fmt.Errorf("%w: %q: mode %o has bits outside %o", ErrInvalid, e.Name, e.Mode, ModeMask)
	}
	if len(e.Xattrs) > MaxXattrs {
		return fmt.Errorf("%w: %q: %d xattrs exceed %d", ErrInvalid, e.Name, len(e.Xattrs), MaxXattrs)
	}
	for i, x := range e.Xattrs {
		if x.Name == "" || len(x.Name) > MaxNameLen || strings.IndexByte(x.Name, 0) >= 0 {
			return fmt.Errorf("%w: %q: bad xattr name %q", ErrInvalid, e.Name, x.Name)
		}
		if len(x.Value) > MaxXattrValueLen {
			return fmt.Errorf("%w: %q: xattr %q of %d bytes exceeds %d", ErrInvalid, e.Name, x.Name, len(x.Value), MaxXattrValueLen)
		}
		if i > 0 && e.Xattrs[i-1].Name >= x.Name {
			return fmt.Errorf("%w: %q: xattrs not sorted and unique at %q", ErrInvalid, e.Name, x.Name)
		}
	}
	hasChunks, hasTarget, hasSubtree := len(e.Chunks) > 0, e.Target != "", !e.Subtree.IsZero()
	switch e.Kind {
	case KindFile:
		if hasTarget || hasSubtree {
			return fmt.Errorf("%w: file %q has a target or subtree", ErrInvalid, e.Name)
		}
		var sum uint64
		for _, c := range e.Chunks {
			if c.Length == 0 {
				return fmt.Errorf("%w: file %q has an empty chunk", ErrInvalid, e.Name)
			}
			sum += uint64(c.Length) // cannot wrap: counts are bounded by input
		}
		if sum != e.Size {
			return fmt.Errorf("%w: file %q: chunks hold %d bytes, size is %d", ErrInvalid, e.Name, sum, e.Size)
		}
	case KindDir:
		if hasChunks || hasTarget || !hasSubtree {
			return fmt.Errorf("%w: dir %q needs a subtree and nothing else", ErrInvalid, e.Name)
		}
	case KindSymlink:
		if hasChunks || hasSubtree || !hasTarget {
			return fmt.Errorf("%w: symlink %q needs a target and nothing else", ErrInvalid, e.Name)
		}
		if len(e.Target) > MaxTargetLen || strings.IndexByte(e.Target, 0) >= 0 {
			return fmt.Errorf("%w: symlink %q: bad target of %d bytes", ErrInvalid, e.Name, len(e.Target))
		}
	default:
		return fmt.Errorf("%w: %q: unknown kind %d", ErrInvalid, e.Name, e.Kind)
	}
	return nil
}

// Encode sorts t.Entries (and each entry's xattrs) by name, validates the
// tree, and returns its canonical encoding.
func (t *Tree) Encode() ([]byte, error) {
	slices.SortFunc(t.Entries, func(a, b Entry) int { return strings.Compare(a.Name, b.Name) })
	size := 1 + 10
	for i := range t.Entries {
		e := &t.Entries[i]
		slices.SortFunc(e.Xattrs, func(a, b Xattr) int { return strings.Compare(a.Name, b.Name) })
		if err := e.validate(); err != nil {
			return nil, fmt.Errorf("encode tree: %w", err)
		}
		if i > 0 && t.Entries[i-1].Name == e.Name {
			return nil, fmt.Errorf("encode tree: %w: duplicate name %q", ErrInvalid, e.Name)
		}
		size += 64 + len(e.Name) + len(e.Target) + len(e.Chunks)*(crypto.IDSize+5)
		for _, x := range e.Xattrs {
			size += 6 + len(x.Name) + len(x.Value)
		}
	}
	w := writer{b: make([]byte, 0, size)}
	w.byte(treeFormat)
	w.uvarint(uint64(len(t.Entries)))
	for i := range t.Entries {
		e := &t.Entries[i]
		w.string(e.Name)
		w.byte(byte(e.Kind))
		w.uvarint(uint64(e.Mode))
		w.uvarint(e.Size)
		w.varint(e.ModTime)
		w.varint(e.ChangeTime)
		w.uvarint(uint64(len(e.Xattrs)))
		for _, x := range e.Xattrs {
			w.string(x.Name)
			w.bytes(x.Value)
		}
		switch e.Kind {
		case KindFile:
			w.uvarint(uint64(len(e.Chunks)))
			for _, c := range e.Chunks {
				w.raw(c.ID[:])
				w.uvarint(uint64(c.Length))
			}
		case KindDir:
			w.raw(e.Subtree[:])
		case KindSymlink:
			w.string(e.Target)
		}
	}
	return w.b, nil
}

// Smallest encodings, used to bound counts by the remaining input.
const (
	minEntryLen    = 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 + 1 // name len+byte, kind, mode, size, 2 times, xattr count, kind field
	minXattrLen    = 1 + 1 + 1                         // name len+byte, value len
	minChunkRefLen = crypto.IDSize + 1
)

// DecodeTree parses and validates a tree blob.
func DecodeTree(b []byte) (*Tree, error) {
	r := newReader(b)
	if v := r.byte(); v != treeFormat || r.err != nil {
		return nil, fmt.Errorf("decode tree: %w: format %d", ErrInvalid, v)
	}
	n := r.count(minEntryLen)
	t := &Tree{Entries: make([]Entry, n)}
	var arena []ChunkRef
	for i := range t.Entries {
		e := &t.Entries[i]
		e.Name = r.string(MaxNameLen)
		e.Kind = Kind(r.byte())
		e.Mode = uint32(r.uvarintMax(ModeMask))
		e.Size = r.uvarint()
		e.ModTime = r.varint()
		e.ChangeTime = r.varint()
		if nx := r.count(minXattrLen); nx > 0 {
			e.Xattrs = make([]Xattr, nx)
			for j := range e.Xattrs {
				e.Xattrs[j].Name = r.string(MaxNameLen)
				e.Xattrs[j].Value = r.bytes(MaxXattrValueLen)
			}
		}
		switch e.Kind {
		case KindFile:
			if nc := r.count(minChunkRefLen); nc > 0 {
				e.Chunks, arena = carve(arena, nc)
				for j := range e.Chunks {
					r.read(e.Chunks[j].ID[:])
					e.Chunks[j].Length = uint32(r.uvarintMax(1<<32 - 1))
				}
			}
		case KindDir:
			r.read(e.Subtree[:])
		case KindSymlink:
			e.Target = r.string(MaxTargetLen)
		}
		if r.err != nil {
			return nil, fmt.Errorf("decode tree: entry %d: %w", i, r.err)
		}
		if err := e.validate(); err != nil {
			return nil, fmt.Errorf("decode tree: entry %d: %w", i, err)
		}
		if i > 0 && t.Entries[i-1].Name >= e.Name {
			return nil, fmt.Errorf("decode tree: %w: entries not sorted and unique at %q", ErrInvalid, e.Name)
		}
	}
	if err := r.end(); err != nil {
		return nil, fmt.Errorf("decode tree: %w", err)
	}
	return t, nil
}

// chunkArenaLen is how many chunk refs DecodeTree allocates at once: one
// allocation per many small files instead of one per file.
const chunkArenaLen = 1024

// carve returns n zeroed chunk refs cut from arena (capacity-limited, so an
// append by the caller cannot spill into a neighbour) and the rest of it.
func carve(arena []ChunkRef, n int) ([]ChunkRef, []ChunkRef) {
	if n > len(arena) {
		if n >= chunkArenaLen/4 {
			return make([]ChunkRef, n), arena
		}
		arena = make([]ChunkRef, chunkArenaLen)
	}
	return arena[:n:n], arena[n:]
}

// Version is one commit: a root tree and its place in history.
type Version struct {
	Root    crypto.ID
	Parent  crypto.ID // zero for the first version
	Time    int64     // unix ns
	Device  string
	Message string
}

// Encode validates v and returns its canonical encoding.
func (v *Version) Encode() ([]byte, error) {
	if err := v.validate(); err != nil {
		return nil, fmt.Errorf("encode version: %w", err)
	}
	w := writer{b: make([]byte, 0, 1+2*crypto.IDSize+10+6+len(v.Device)+len(v.Message))}
	w.byte(versionFormat)
	w.raw(v.Root[:])
	w.raw(v.Parent[:])
	w.varint(v.Time)
	w.string(v.Device)
	w.string(v.Message)
	return w.b, nil
}

func (v *Version) validate() error {
	switch {
	case v.Root.IsZero():
		return fmt.Errorf("%w: version without a root tree", ErrInvalid)
	case len(v.Device) > MaxDeviceLen:
		return fmt.Errorf("%w: device name of %d bytes exceeds %d", ErrInvalid, len(v.Device), MaxDeviceLen)
	case len(v.Message) > MaxMessageLen:
		return fmt.Errorf("%w: message of %d bytes exceeds %d", ErrInvalid, len(v.Message), MaxMessageLen)
	}
	return nil
}

// DecodeVersion parses and validates a version blob.
func DecodeVersion(b []byte) (*Version, error) {
	r := newReader(b)
	if f := r.byte(); f != versionFormat || r.err != nil {
		return nil, fmt.Errorf("decode version: %w: format %d", ErrInvalid, f)
	}
	v := &Version{}
	r.read(v.Root[:])
	r.read(v.Parent[:])
	v.Time = r.varint()
	v.Device = r.string(MaxDeviceLen)
	v.Message = r.string(MaxMessageLen)
	if err := r.end(); err != nil {
		return nil, fmt.Errorf("decode version: %w", err)
	}
	if err := v.validate(); err != nil {
		return nil, fmt.Errorf("decode version: %w", err)
	}
	return v, nil
}
