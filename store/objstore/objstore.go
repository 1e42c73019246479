// Package objstore is the interface to wherever packs are stored, with an
// rclone-backed implementation (any rclone remote) and an in-memory one for
// tests.
package objstore

import (
	"context"
	"errors"
	"io"
)

// ErrNotFound is returned (wrapped) when an object does not exist.
var ErrNotFound = errors.New("object not found")

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Name string
	Size int64
}

// ObjectStore stores immutable named objects (packs). Names are flat, made of
// [0-9a-z] characters; an implementation may shard them into folders.
type ObjectStore interface {
	// Put stores an object of the given size from r. The object becomes
	// visible only once all size bytes were written; a short or failed
	// write leaves nothing behind.
	Put(ctx context.Context, name string, r io.Reader, size int64) error
	// GetRange returns length bytes starting at off. length < 0 means to
	// the end. Reading past the end is an error.
	GetRange(ctx context.Context, name string, off, length int64) (io.ReadCloser, error)
	// Stat returns the object's size, or ErrNotFound.
	Stat(ctx context.Context, name string) (ObjectInfo, error)
	// List calls fn for every object.
	List(ctx context.Context, fn func(ObjectInfo) error) error
	// Delete removes an object; deleting a missing object is ErrNotFound.
	Delete(ctx context.Context, name string) error
}
