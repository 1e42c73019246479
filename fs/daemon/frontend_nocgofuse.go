//go:build !(windows || (darwin && cgo) || (linux && cgo && fuse3))

package daemon

import (
	"errors"
	"log"

	"github.com/anysync/anysync/fs/node"
)

// cgoFuseMissing: this binary was built without the cgofuse front end.
func cgoFuseMissing() error {
	return errors.New("this anysync was built without the cgofuse front end " +
		"(Linux: CGO_ENABLED=1 go build -tags fuse3, with libfuse3-dev; macOS: CGO_ENABLED=1, with macFUSE)")
}

func mountCgoFuse(string, *node.FS, *log.Logger) (mounted, error) { return nil, cgoFuseMissing() }
