package daemon

import "syscall"

// DetachMount lazily unmounts dir (MNT_DETACH): the dead mount of a killed
// daemon, or one that stays busy.
func DetachMount(dir string) error { return syscall.Unmount(dir, syscall.MNT_DETACH) }
