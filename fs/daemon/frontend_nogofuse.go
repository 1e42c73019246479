//go:build !linux && !darwin

package daemon

import (
	"fmt"
	"log"
	"runtime"

	"github.com/anysync/anysync/fs/node"
)

// goFuseMissing: go-fuse does not run on this system.
func goFuseMissing() error {
	return fmt.Errorf("the %s front end does not run on %s: use --frontend %s", FrontendGoFuse, runtime.GOOS, FrontendCgoFuse)
}

func mountGoFuse(string, *node.FS, *log.Logger) (mounted, error) { return nil, goFuseMissing() }
