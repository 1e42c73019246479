//go:build !linux && !darwin

package daemon

import (
	"fmt"
	"log"
	"runtime"

	"github.com/anysync/anysync/fs/node"
)

func mountGoFuse(string, *node.FS, *log.Logger) (mounted, error) {
	return nil, fmt.Errorf("the %s front end does not run on %s: use --frontend %s", FrontendGoFuse, runtime.GOOS, FrontendCgoFuse)
}
