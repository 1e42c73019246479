package fusefs

import "github.com/hanwen/go-fuse/v2/fuse"

// extraCapabilities: clearing set-ID bits is the node layer's
// (HANDLE_KILLPRIV_V2, Linux 5.12 and later), and files opened for direct
// writes may still be mapped (DIRECT_IO_ALLOW_MMAP, Linux 6.6 and later).
const extraCapabilities = fuse.CAP_HANDLE_KILLPRIV_V2 | directIOAllowMmap

// directIOAllowMmap is what direct writes need from the kernel (openFlags):
// mmap of such files, and a direct write dropping the range's cached pages.
const directIOAllowMmap = fuse.CAP_DIRECT_IO_ALLOW_MMAP
