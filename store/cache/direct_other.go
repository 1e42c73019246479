//go:build !linux

package cache

import (
	"errors"
	"os"
)

// openDirect is Linux-only: elsewhere appends take the page cache.
func openDirect(string) (*os.File, error) { return nil, errors.ErrUnsupported }
