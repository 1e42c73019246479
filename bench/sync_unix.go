//go:build unix

package main

import "syscall"

// flushDisk writes dirty pages back (sync(2)), so that one workload's
// write-back does not run during the next one.
func flushDisk() { syscall.Sync() }
