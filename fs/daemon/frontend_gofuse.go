//go:build linux || darwin

package daemon

import (
	"log"

	"github.com/anysync/anysync/fs/fusefs"
	"github.com/anysync/anysync/fs/node"
)

// goFuseMissing: go-fuse runs here.
func goFuseMissing() error { return nil }

func mountGoFuse(dir string, fsys *node.FS, logger *log.Logger) (mounted, error) {
	opts := fusefs.DefaultOptions()
	opts.Logger = logger
	m, err := fusefs.New(dir, fsys, opts)
	if err != nil {
		return nil, err
	}
	return m, nil
}
