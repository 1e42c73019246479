package main

import "syscall"

// detach lazily unmounts a mount the benchmark left behind.
func detach(mnt string) error { return syscall.Unmount(mnt, syscall.MNT_DETACH) }
