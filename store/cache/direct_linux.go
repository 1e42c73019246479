package cache

import (
	"os"

	"golang.org/x/sys/unix"
)

// openDirect opens a segment for appends that bypass the page cache, or
// fails where the file system refuses O_DIRECT.
func openDirect(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_WRONLY|unix.O_DIRECT, 0)
}
