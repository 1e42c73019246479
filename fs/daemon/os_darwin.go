package daemon

import "golang.org/x/sys/unix"

// DetachMount forcibly unmounts dir (MNT_FORCE; macOS has no lazy
// unmount): the dead mount of a killed daemon, or one that stays busy.
func DetachMount(dir string) error { return unix.Unmount(dir, unix.MNT_FORCE) }
