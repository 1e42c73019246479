//go:build unix

package node

import "syscall"

// oAccMode masks the access mode of open flags.
const oAccMode = syscall.O_ACCMODE
