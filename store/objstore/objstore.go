// Package objstore is the interface to wherever packs are stored, with an
// in-memory implementation for tests; package rclonestore implements it over
// any rclone remote. rclone lives in its own package so that only the server
// links it: clients reach packs through the server, never through storage. Package objstoretest holds the conformance suite every
// implementation must pass.
package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
)

// Sentinel errors. Implementations wrap them with context; test with errors.Is.
var (
	// ErrNotFound is returned (wrapped) when an object does not exist.
	ErrNotFound = errors.New("object not found")
	// ErrInvalidName is returned (wrapped) for a name that is empty, too
	// long, or has characters outside [0-9a-z].
	ErrInvalidName = errors.New("invalid object name")
	// ErrOutOfRange is returned (wrapped) by GetRange for a negative offset
	// or a range that ends past the end of the object.
	ErrOutOfRange = errors.New("range outside object")
	// ErrSizeMismatch is returned (wrapped) by Put when the reader yields
	// fewer or more bytes than the declared size. Nothing is stored.
	ErrSizeMismatch = errors.New("object size mismatch")
)

// MaxNameLen is the longest accepted object name.
const MaxNameLen = 128

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Name string
	Size int64
}

// ObjectStore stores immutable named objects (packs). Names are flat, made of
// [0-9a-z] characters (see ValidateName); an implementation may shard them
// into folders. All methods are safe for concurrent use.
type ObjectStore interface {
	// Put stores an object of the given size from r. The object becomes
	// visible only once all size bytes were written; a short or failed
	// write leaves nothing behind (and a reader with more than size bytes
	// is an ErrSizeMismatch too). Putting an existing name replaces it.
	// Put keeps no reference to r, nor to the bytes behind it, once it
	// returns: the caller may reuse them (store/repo lays its next pack
	// out in them).
	Put(ctx context.Context, name string, r io.Reader, size int64) error
	// GetRange returns length bytes starting at off. length < 0 means to
	// the end. Reading past the end is an error (ErrOutOfRange), and so is
	// a reader that ends early (io.ErrUnexpectedEOF from Read).
	GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error)
	// Stat returns the object's size, or ErrNotFound.
	Stat(ctx context.Context, name string) (ObjectInfo, error)
	// List calls fn for every object, in no particular order. An error
	// from fn stops the listing and is returned as is.
	List(ctx context.Context, fn func(ObjectInfo) error) error
	// Delete removes an object; deleting a missing object is ErrNotFound.
	Delete(ctx context.Context, name string) error
}

// ValidateName reports whether name is a valid object name: 1 to MaxNameLen
// characters from [0-9a-z]. The error wraps ErrInvalidName.
func ValidateName(name string) error {
	if name == "" || len(name) > MaxNameLen {
		return fmt.Errorf("%w: length %d not in 1..%d", ErrInvalidName, len(name), MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'z') {
			return fmt.Errorf("%w %q", ErrInvalidName, name)
		}
	}
	return nil
}
