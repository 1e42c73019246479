//go:build !linux

package directio

import "os"

// Open is Linux-only: elsewhere callers take the page cache.
func Open(string, int, os.FileMode) (*os.File, error) { return nil, ErrUnsupported }

// Datasync is f.Sync where there is no fdatasync.
func Datasync(f *os.File) error { return f.Sync() }
