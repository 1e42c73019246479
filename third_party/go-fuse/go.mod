module github.com/hanwen/go-fuse/v2

// AnySync's copy of go-fuse v2.12.1, trimmed to the packages the drive
// uses and patched (see ANYSYNC.md). Its x/sys is AnySync's own.
require golang.org/x/sys v0.50.0

go 1.26.0
