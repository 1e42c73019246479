//go:build !linux

package node

import "os"

// startWriteback: only Linux has sync_file_range; elsewhere fsync does all
// the writing.
func startWriteback(*os.File) {}
