package syncer

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// lowerPriority makes the calling goroutine's thread nice 10, so the
// kernel runs it only on CPU that normal threads (the FUSE server, the
// applications writing) leave idle. The goroutine keeps the thread and
// never unlocks it: when the goroutine ends, the runtime ends the thread
// instead of reusing a niced one for other work.
func lowerPriority() {
	runtime.LockOSThread()
	_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), 10) // best effort
}
