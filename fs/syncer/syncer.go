// Package syncer connects the node table to the repository and the server:
// the debounced committer (upload staged files, rebuild the changed trees,
// commit a version) and the application of remote versions to the node
// table (three-way merge, conflict copies, kernel invalidation).
package syncer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/fs/localdb"
	"github.com/anysync/anysync/fs/node"
	"github.com/anysync/anysync/store/repo"
	"github.com/anysync/anysync/store/tree"
)

// Errors callers can test with errors.Is.
var (
	// ErrRollback means the server shows a head older than one this device
	// has seen: it lost data or is replaying old state.
	ErrRollback = errors.New("server head is older than a head already seen (rollback)")
	// ErrHeadMoved is what Remote.Commit returns when its expected head is
	// stale; the adapter of the real client maps the client's sentinel to it.
	ErrHeadMoved = errors.New("head moved")
)

// Head is the server's current version: its sequence number and ID.
type Head struct {
	Seq     uint64
	Version crypto.ID
}

// Remote is the server as the syncer uses it.
type Remote interface {
	Head(ctx context.Context) (Head, error)
	// Commit moves the head from expectedSeq to version, registering the
	// index entries of the packs it needs. ErrHeadMoved if stale.
	Commit(ctx context.Context, expectedSeq uint64, version, parent crypto.ID, entries []repo.IndexEntry) (Head, error)
	// IndexSince returns index entries committed after the cursor, and the
	// next cursor; an empty page means done.
	IndexSince(ctx context.Context, cursor uint64) ([]repo.IndexEntry, uint64, error)
}

// Invalidator drops kernel caches (the FUSE front end).
type Invalidator interface {
	InvalidateContent(ino uint64)
	InvalidateEntry(parent uint64, name string)
}

// Config configures a Syncer.
type Config struct {
	FS     *node.FS
	DB     *localdb.DB
	Repo   *repo.Repo
	Remote Remote
	// Device names this device in versions and conflict copies.
	Device string
	// Quiet is how long changes must stop before a commit (default 1s);
	// MaxDelay bounds the wait under constant change (default 10s).
	Quiet, MaxDelay time.Duration
	// Logf reports background failures.
	Logf func(format string, args ...any)
}

// Status is what `anysync status` shows.
type Status struct {
	HeadSeq     uint64
	HeadVersion crypto.ID
	Pending     int64 // files with content not yet committed
	LastError   string
	LastCommit  time.Time
	Commits     int64
}

// Syncer commits local changes and applies remote versions.
type Syncer struct {
	cfg  Config
	kick chan struct{}

	round sync.Mutex // one sync round at a time

	recordEvery time.Duration // see the constant

	grown    growing // prefixes of files being written, stored ahead
	growStep int64   // see the constant

	inv Invalidator

	// bufs holds smallFile+1 byte buffers: one more than a small file, so
	// a full read tells a large file apart.
	bufs sync.Pool

	smu     sync.Mutex
	lastErr error
	lastAt  time.Time
	commits int64
}

// Keys of the key-value state.
const (
	kvHeadSeq     = "head_seq"
	kvHeadVersion = "head_version"
	kvHeadRoot    = "head_root"
	kvMaxSeq      = "max_seen_seq"
	kvIndexCursor = "index_cursor"
)

// New returns a syncer.
func New(cfg Config) *Syncer {
	if cfg.Quiet == 0 {
		cfg.Quiet = time.Second
	}
	if cfg.MaxDelay == 0 {
		cfg.MaxDelay = 10 * time.Second
	}
	if cfg.Logf == nil {
		cfg.Logf = func(string, ...any) {}
	}
	st := &Syncer{cfg: cfg, kick: make(chan struct{}, 1), recordEvery: recordEvery, growStep: growStep}
	st.bufs.New = func() any {
		b := make([]byte, smallFile+1)
		return &b
	}
	return st
}

// SetInvalidator sets the front end to invalidate after remote changes.
func (s *Syncer) SetInvalidator(inv Invalidator) { s.inv = inv }

// Kick tells the committer that something changed.
func (s *Syncer) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Run commits after each burst of changes until ctx ends.
func (s *Syncer) Run(ctx context.Context) {
	// Files being written are stored ahead of their close while they
	// grow, beside this loop (a pass takes a while at low priority) and
	// one pass at a time.
	grow := time.NewTicker(aheadPause)
	defer grow.Stop()
	var passes sync.WaitGroup
	defer passes.Wait()
	growAhead := func() {
		passes.Go(func() {
			if err := s.growAhead(ctx); err != nil && ctx.Err() == nil {
				s.cfg.Logf("store ahead: %v", err)
			}
		})
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-grow.C:
			growAhead()
			continue
		case <-s.kick:
		}
		deadline := time.Now().Add(s.cfg.MaxDelay)
		quiet := time.NewTimer(s.cfg.Quiet)
		// While changes go on, files already closed upload ahead of the
		// commit, one at a time, on what CPU the writers leave.
		ahead := time.NewTimer(s.cfg.Quiet)
	wait:
		for {
			select {
			case <-ctx.Done():
				quiet.Stop()
				ahead.Stop()
				return
			case <-s.kick:
				if time.Until(deadline) > s.cfg.Quiet {
					quiet.Reset(s.cfg.Quiet)
				}
			case <-grow.C:
				growAhead()
			case <-ahead.C:
				if err := s.uploadAhead(ctx); err != nil && ctx.Err() == nil {
					s.cfg.Logf("upload ahead: %v", err)
				}
				ahead.Reset(aheadPause)
			case <-quiet.C:
				ahead.Stop()
				break wait
			}
		}
		if _, err := s.SyncOnce(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Logf("sync: %v", err)
			// Try again later; the changes stay in the journal.
			time.AfterFunc(5*time.Second, s.Kick)
		}
	}
}

// Position returns the head the node table is at and the number of
// commits so far: what loops that react to changes poll. Unlike Status it
// does not count pending nodes (a scan of the node table).
func (s *Syncer) Position(ctx context.Context) (headSeq uint64, commits int64, err error) {
	h, err := s.localHead(ctx)
	if err != nil {
		return 0, 0, err
	}
	s.smu.Lock()
	defer s.smu.Unlock()
	return h.Seq, s.commits, nil
}

// Status returns the current state.
func (s *Syncer) Status(ctx context.Context) (Status, error) {
	h, err := s.localHead(ctx)
	if err != nil {
		return Status{}, err
	}
	_, pending, err := s.cfg.DB.Stats(ctx)
	if err != nil {
		return Status{}, err
	}
	s.smu.Lock()
	defer s.smu.Unlock()
	st := Status{HeadSeq: h.Seq, HeadVersion: h.Version, Pending: pending, LastCommit: s.lastAt, Commits: s.commits}
	if s.lastErr != nil {
		st.LastError = s.lastErr.Error()
	}
	return st, nil
}

func (s *Syncer) record(err error, committed bool) {
	s.smu.Lock()
	defer s.smu.Unlock()
	s.lastErr = err
	if committed {
		s.lastAt = time.Now()
		s.commits++
	}
}

// localHead is the head the node table is based on.
type localHead struct {
	Head
	Root crypto.ID
}

func (s *Syncer) localHead(ctx context.Context) (localHead, error) {
	var h localHead
	if v, ok, err := s.cfg.DB.GetKV(ctx, kvHeadSeq); err != nil {
		return h, err
	} else if ok {
		h.Seq = decodeUint(v)
	}
	for key, dst := range map[string]*crypto.ID{kvHeadVersion: &h.Version, kvHeadRoot: &h.Root} {
		v, ok, err := s.cfg.DB.GetKV(ctx, key)
		if err != nil {
			return h, err
		}
		if ok {
			copy(dst[:], v)
		}
	}
	return h, nil
}

func setLocalHead(tx *localdb.Tx, h localHead) error {
	if err := tx.SetKV(kvHeadSeq, encodeUint(h.Seq)); err != nil {
		return err
	}
	if err := tx.SetKV(kvHeadVersion, h.Version[:]); err != nil {
		return err
	}
	if err := tx.SetKV(kvHeadRoot, h.Root[:]); err != nil {
		return err
	}
	v, _, err := tx.GetKV(kvMaxSeq)
	if err != nil {
		return err
	}
	if h.Seq > decodeUint(v) {
		return tx.SetKV(kvMaxSeq, encodeUint(h.Seq))
	}
	return nil
}

func encodeUint(x uint64) []byte { return []byte(fmt.Sprint(x)) }

func decodeUint(b []byte) uint64 {
	var x uint64
	_, _ = fmt.Sscan(string(b), &x)
	return x
}

// ContentSource reads placeholders through the repository.
type ContentSource struct {
	Ctx  context.Context
	Repo *repo.Repo
}

// NewReader implements node.ContentSource.
func (c ContentSource) NewReader(chunks []byte, size int64) (io.ReaderAt, error) {
	cs, err := localdb.DecodeChunks(chunks)
	if err != nil {
		return nil, err
	}
	refs := toTreeChunks(cs)
	r := c.Repo.NewReader(c.Ctx, refs)
	if r.Size() != size {
		return nil, fmt.Errorf("chunk list of %d bytes for a file of %d: %w", r.Size(), size, localdb.ErrCorrupt)
	}
	return r, nil
}

func toTreeChunks(cs []localdb.ChunkRef) []tree.ChunkRef {
	out := make([]tree.ChunkRef, len(cs))
	for i, c := range cs {
		out[i] = tree.ChunkRef{ID: c.ID, Length: c.Length}
	}
	return out
}

func fromTreeChunks(cs []tree.ChunkRef) []localdb.ChunkRef {
	out := make([]localdb.ChunkRef, len(cs))
	for i, c := range cs {
		out[i] = localdb.ChunkRef{ID: c.ID, Length: c.Length}
	}
	return out
}

// Index is the repository's blob index kept in the node database.
type Index struct{ DB *localdb.DB }

// Lookup implements repo.Index.
func (x Index) Lookup(id crypto.ID) (repo.Location, bool, error) {
	loc, ok, err := x.DB.LookupBlob(context.Background(), id)
	return repo.Location{Pack: loc.Pack, Offset: loc.Offset, Length: loc.Length}, ok, err
}

// Known implements repo.DedupIndex: it reads the committed index without
// waiting for the node database's open batch (the uploader, on a niced
// thread, held that lock against the FUSE handlers for every chunk).
func (x Index) Known(id crypto.ID) (bool, error) {
	return x.DB.HasCommittedBlob(context.Background(), id)
}

// Add implements repo.Index: entries of packs this device uploaded, which
// the next commit carries.
func (x Index) Add(entries []repo.IndexEntry) error {
	return x.DB.AddBlobs(context.Background(), toBlobEntries(entries), false)
}

func toBlobEntries(es []repo.IndexEntry) []localdb.BlobEntry {
	out := make([]localdb.BlobEntry, len(es))
	for i, e := range es {
		out[i] = localdb.BlobEntry{ID: e.ID, BlobLocation: localdb.BlobLocation{Pack: e.Pack, Offset: e.Offset, Length: e.Length}}
	}
	return out
}

func fromBlobEntries(es []localdb.BlobEntry) []repo.IndexEntry {
	out := make([]repo.IndexEntry, len(es))
	for i, e := range es {
		out[i] = repo.IndexEntry{ID: e.ID, Location: repo.Location{Pack: e.Pack, Offset: e.Offset, Length: e.Length}}
	}
	return out
}
