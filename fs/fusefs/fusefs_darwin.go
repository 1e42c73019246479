package fusefs

// extraCapabilities: macFUSE has no HANDLE_KILLPRIV_V2; the kernel clears
// set-ID bits itself (and the node layer does too, harmlessly).
const extraCapabilities = 0

// directIOAllowMmap: macFUSE has none, so writes always go through the
// page cache there.
const directIOAllowMmap = 0
