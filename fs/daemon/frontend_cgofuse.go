//go:build windows || (darwin && cgo) || (linux && cgo && fuse3)

package daemon

import (
	"log"

	"github.com/anysync/anysync/fs/cgofs"
	"github.com/anysync/anysync/fs/node"
)

// cgoFuseMissing: this binary has the cgofuse front end.
func cgoFuseMissing() error { return nil }

func mountCgoFuse(dir string, fsys *node.FS, logger *log.Logger) (mounted, error) {
	opts := cgofs.DefaultOptions()
	opts.Logger = logger
	m, err := cgofs.New(dir, fsys, opts)
	if err != nil {
		return nil, err
	}
	return m, nil
}
