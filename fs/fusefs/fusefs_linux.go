package fusefs

import "github.com/hanwen/go-fuse/v2/fuse"

// extraCapabilities: clearing set-ID bits is the node layer's
// (HANDLE_KILLPRIV_V2, Linux 5.12 and later).
const extraCapabilities = fuse.CAP_HANDLE_KILLPRIV_V2
