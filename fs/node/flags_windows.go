package node

import "syscall"

// oAccMode masks the access mode of open flags. Go's syscall package on
// Windows has the POSIX values of O_RDONLY, O_WRONLY and O_RDWR, but no
// O_ACCMODE; front ends translate their host's flags to these.
const oAccMode = syscall.O_RDONLY | syscall.O_WRONLY | syscall.O_RDWR
