package cgofs

import (
	"log"
	"runtime"
	"time"
)

// Options tune a mount.
type Options struct {
	// Logger receives internal errors (reported to callers as EIO).
	Logger *log.Logger
	// Debug logs every FUSE request (the FUSE library's own log).
	Debug bool
	// WindowsNames shows names Windows cannot hold in their escaped form
	// (EscapeName) and reads names the other way (UnescapeName).
	WindowsNames bool
	// CaseInsensitive lets a lookup that misses exactly find a name that
	// differs only in case, refuses a new name that differs from an
	// existing one only in case, and tells the host so.
	CaseInsensitive bool
	// VolumeName is the volume's label (Windows, macOS).
	VolumeName string
	// AttrTimeout bounds how long Windows and macOS trust cached
	// attributes (libfuse 3 under cgofuse caches nothing).
	AttrTimeout time.Duration
}

// VolumeName is the label of the drive on Windows and macOS.
const VolumeName = "AnySync"

// DefaultOptions returns the options for the platform: Windows names and
// case-insensitive lookups on Windows, case-insensitive lookups on macOS
// (as its default file system), POSIX behaviour elsewhere.
func DefaultOptions() Options {
	o := Options{AttrTimeout: time.Second}
	switch runtime.GOOS {
	case "windows":
		o.WindowsNames, o.CaseInsensitive, o.VolumeName = true, true, VolumeName
	case "darwin":
		o.CaseInsensitive, o.VolumeName = true, VolumeName
	}
	return o
}
