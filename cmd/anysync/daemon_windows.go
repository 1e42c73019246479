package main

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"syscall"

	"golang.org/x/sys/windows"
)

// readyHandleEnv names the inherited handle on which a daemon reports
// readiness (Windows has no descriptor 3 to pass).
const readyHandleEnv = "ANYSYNC_READY_HANDLE"

// detach makes c a daemon detached from the console, reporting readiness
// on an inherited handle named in its environment.
func detach(c *exec.Cmd, ready *os.File) error {
	h := syscall.Handle(ready.Fd())
	if err := syscall.SetHandleInformation(h, syscall.HANDLE_FLAG_INHERIT, syscall.HANDLE_FLAG_INHERIT); err != nil {
		return fmt.Errorf("pass readiness pipe: %w", err)
	}
	c.Env = append(os.Environ(), readyHandleEnv+"="+strconv.FormatUint(uint64(h), 10))
	c.SysProcAttr = &syscall.SysProcAttr{
		CreationFlags:              windows.CREATE_NEW_PROCESS_GROUP | windows.DETACHED_PROCESS,
		AdditionalInheritedHandles: []syscall.Handle{h},
	}
	return nil
}

// readyFile is where a daemon started by detach reports readiness.
func readyFile() *os.File {
	h, err := strconv.ParseUint(os.Getenv(readyHandleEnv), 10, 64)
	if err != nil {
		return nil
	}
	return os.NewFile(uintptr(h), "ready")
}
