//go:build unix

package main

import (
	"os"
	"os/exec"
	"syscall"
)

// detach makes c a daemon in its own session, reporting readiness on
// descriptor readyFD.
func detach(c *exec.Cmd, ready *os.File) error {
	c.ExtraFiles = []*os.File{ready} // becomes descriptor 3
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	return nil
}

// readyFile is where a daemon started by detach reports readiness.
func readyFile() *os.File { return os.NewFile(readyFD, "ready") }
