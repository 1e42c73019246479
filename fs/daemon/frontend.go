package daemon

import (
	"fmt"
	"log"
	"runtime"

	"github.com/anysync/anysync/fs/node"
)

// Front ends: the FUSE adapters over the node layer that a drive can be
// mounted through (`anysync mount --frontend`).
const (
	// FrontendGoFuse is fs/fusefs, over go-fuse (Linux, macOS).
	FrontendGoFuse = "gofuse"
	// FrontendCgoFuse is fs/cgofs, over cgofuse: WinFsp on Windows,
	// macFUSE on macOS, libfuse 3 on Linux (built with cgo and the fuse3
	// tag).
	FrontendCgoFuse = "cgofuse"
)

// mounted is a mounted front end.
type mounted interface {
	Unmount() error
	// Wait returns when the mount is gone.
	Wait()
	InvalidateContent(ino uint64)
	InvalidateEntry(parent uint64, name string)
}

// DefaultFrontend is the front end used when none is named: go-fuse on
// Linux (and on macOS in a binary built without cgo), cgofuse elsewhere.
func DefaultFrontend() string {
	if runtime.GOOS == "linux" || cgoFuseMissing() != nil {
		return FrontendGoFuse
	}
	return FrontendCgoFuse
}

// checkFrontend says why a front end cannot mount in this binary, if it
// cannot: the daemon checks before it connects.
func checkFrontend(name string) error {
	switch name {
	case FrontendGoFuse:
		return goFuseMissing()
	case FrontendCgoFuse:
		return cgoFuseMissing()
	}
	return fmt.Errorf("unknown front end %q (choose %s or %s)", name, FrontendGoFuse, FrontendCgoFuse)
}

// mountFrontend mounts fsys at dir through the named front end.
func mountFrontend(name, dir string, fsys *node.FS, logger *log.Logger) (mounted, error) {
	if err := checkFrontend(name); err != nil {
		return nil, err
	}
	if name == FrontendCgoFuse {
		return mountCgoFuse(dir, fsys, logger)
	}
	return mountGoFuse(dir, fsys, logger)
}
