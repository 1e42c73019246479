// Package fs is the AnySync drive: the local client state and the
// filesystem that is mounted.
//
// Subpackages each have one job:
//
//	localdb  the per-account SQLite database: node table, key-value state, blob index
//	node     filesystem semantics over localdb and staging files (no FUSE types)
//	fusefs   the go-fuse v2 front end, a thin adapter over node
//	cgofs    the cgofuse front end (WinFsp, macFUSE, libfuse 3), a thin adapter over node
//	fstest   the filesystem suite every front end passes
//
// See docs/drive.md for the architecture.
package fs
