//go:build unix

// Package backup backs ordinary folders up into the account's encrypted,
// deduplicated store, restores them, and checks the store's integrity.
//
// A backup scans a folder in parallel, recognises unchanged files from a
// local cache (size, mtime, ctime, inode) without reading them, chunks the
// rest through the repository (which uploads only chunks it does not hold),
// builds the folder's trees bottom-up and splices the result into the
// account's current tree at a cloud path, committing one version by
// compare-and-swap. docs/backup.md describes the design and the cache file.
package backup

import (
	"context"
	"errors"
	"fmt"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/store/chunker"
	"github.com/anysync/anysync/store/objstore"
	"github.com/anysync/anysync/store/pack"
	"github.com/anysync/anysync/store/repo"
)

// Errors callers can test with errors.Is.
var (
	// ErrHeadMoved is what Remote.Commit returns (wrapped) when its
	// expected head is stale.
	ErrHeadMoved = errors.New("head moved")
	// ErrInvalidPath means a cloud path is not absolute, names the root, or
	// has an invalid component.
	ErrInvalidPath = errors.New("invalid cloud path")
	// ErrPathConflict means a component of the cloud path exists but is not
	// a folder.
	ErrPathConflict = errors.New("cloud path is not a folder")
	// ErrNotFound means a cloud path or version does not exist.
	ErrNotFound = errors.New("not found")
	// ErrIncomplete means a backup committed, but some files could not be
	// read and are missing from it (see Summary.Errors), or a restore
	// finished with files that could not be written.
	ErrIncomplete = errors.New("completed with errors")
	// ErrFileChanged means a file kept changing while it was read, so no
	// consistent copy could be taken.
	ErrFileChanged = errors.New("file changed while being read")
	// ErrUnsupportedType means a directory entry is neither a regular file,
	// a folder nor a symlink (a socket, FIFO or device): it is skipped.
	ErrUnsupportedType = errors.New("unsupported file type")
	// ErrLocked means another backup of the same folder is running.
	ErrLocked = errors.New("another backup of this folder is running")
	// ErrCheckFailed means check found missing or corrupt data.
	ErrCheckFailed = errors.New("repository check found problems")
	// ErrUnsafePath means a restore would write outside its target, or
	// through a symlink it did not create.
	ErrUnsafePath = errors.New("refusing to restore outside the target folder")
)

// Head names a version: its sequence number on the server and its ID.
// Seq 0 with a zero Version is an account with no versions.
type Head struct {
	Seq     uint64
	Version crypto.ID
}

// Remote is the server as backup, restore and check use it. The CLI adapts
// remote.Client to it; tests use an in-memory head.
type Remote interface {
	// Head returns the current head.
	Head(ctx context.Context) (Head, error)
	// Versions returns up to limit versions after afterSeq, oldest first.
	Versions(ctx context.Context, afterSeq uint64, limit int) ([]Head, error)
	// Commit moves the head from expectedSeq to version (whose parent is
	// the head's version), registering the index entries of the packs it
	// needs. A stale expectedSeq is an error wrapping ErrHeadMoved.
	Commit(ctx context.Context, expectedSeq uint64, version, parent crypto.ID, entries []repo.IndexEntry) (Head, error)
	// SyncIndex makes the account's Index hold the entries of every
	// committed version, so the head's trees can be read.
	SyncIndex(ctx context.Context) error
}

// Ledger remembers index entries of uploaded packs that no commit has
// carried yet, across crashes; the client keeps it in its local database.
type Ledger interface {
	Uncommitted(ctx context.Context) ([]repo.IndexEntry, error)
	MarkCommitted(ctx context.Context, entries []repo.IndexEntry) error
}

// MaxCommitEntries is the most index entries one commit may carry (the
// server's limit); more are committed in checkpoint versions first.
const MaxCommitEntries = 100_000

// Account is what backup, restore and check work on: the account's keys,
// its pack store, the local blob index and the server.
type Account struct {
	Keys    *crypto.AccountKeys
	Objects objstore.ObjectStore
	Index   repo.Index
	Remote  Remote
	// Ledger is optional: without it only this run's uploads are carried
	// by its commit, which is enough when the index is not persistent.
	Ledger Ledger
	// Cache is the optional chunk cache for reads.
	Cache repo.Cache
	// Chunker overrides the chunker parameters (tests use small chunks);
	// it must match what every other writer of the account uses, or
	// identical files stop deduplicating.
	Chunker *chunker.Params
	// PackSize overrides the pack size (tests).
	PackSize int
}

// lookupBatch is how many small files' blobs one index lookup carries.
const lookupBatch = 128

func (a *Account) validate() error {
	if a == nil || a.Keys == nil || a.Objects == nil || a.Index == nil || a.Remote == nil {
		return errors.New("backup: account needs keys, object store, index and remote")
	}
	return nil
}

// openRepo returns a repository over the account.
func (a *Account) openRepo() (*repo.Repo, error) {
	if err := a.validate(); err != nil {
		return nil, err
	}
	return a.openRepoOver(a.Objects)
}

// openRepoOver returns a repository over the account that reads and
// writes packs through objs (a wrapper of a.Objects).
func (a *Account) openRepoOver(objs objstore.ObjectStore) (*repo.Repo, error) {
	// Backups compress at zstd's default level (docs/backup.md: stored
	// size against restic); the drive's interactive writes stay at the
	// fastest.
	cfg := repo.Config{Keys: a.Keys, Objects: objs, Index: a.Index, Cache: a.Cache, Chunker: a.Chunker,
		PackSize: a.PackSize, Compression: pack.LevelDefault}
	if _, ok := a.Index.(repo.BatchIndex); ok {
		// Small files' blobs are looked up in batches (repo.SaveBlob).
		cfg.LookupBatch = lookupBatch
	}
	r, err := repo.Open(cfg)
	if err != nil {
		return nil, fmt.Errorf("open repository: %w", err)
	}
	return r, nil
}

// chunkerParams returns the chunker parameters the repository uses.
func (a *Account) chunkerParams() chunker.Params {
	if a.Chunker != nil {
		return *a.Chunker
	}
	return chunker.DefaultParams()
}

// resolveVersion returns the version at seq, or the head for seq 0.
func resolveVersion(ctx context.Context, r Remote, seq uint64) (Head, error) {
	if seq == 0 {
		h, err := r.Head(ctx)
		if err != nil {
			return Head{}, fmt.Errorf("read head: %w", err)
		}
		if h.Seq == 0 {
			return Head{}, fmt.Errorf("account has no versions yet: %w", ErrNotFound)
		}
		return h, nil
	}
	vs, err := r.Versions(ctx, seq-1, 1)
	if err != nil {
		return Head{}, fmt.Errorf("look up version %d: %w", seq, err)
	}
	if len(vs) == 0 || vs[0].Seq != seq {
		return Head{}, fmt.Errorf("version %d: %w", seq, ErrNotFound)
	}
	return vs[0], nil
}
