//go:build linux

package fusefs

import (
	"log"
	"os"
	"testing"

	"github.com/anysync/anysync/fs/fstest"
	"github.com/anysync/anysync/fs/node"
)

// TestFS runs the front ends' shared suite through go-fuse.
func TestFS(t *testing.T) {
	fstest.Run(t, func(dir string, fsys *node.FS) (func() error, error) {
		opts := DefaultOptions()
		opts.Logger = log.New(os.Stderr, "", 0)
		m, err := New(dir, fsys, opts)
		if err != nil {
			return nil, err
		}
		return m.Unmount, nil
	})
}
