package backup

import "golang.org/x/sys/unix"

// oNoAtime keeps reads from updating access times (Linux only).
const oNoAtime = unix.O_NOATIME
