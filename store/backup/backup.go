//go:build unix

package backup

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/store/repo"
	"github.com/anysync/anysync/store/tree"
)

// maxCommitAttempts bounds commits lost to other devices moving the head.
const maxCommitAttempts = 10

// DefaultProgressInterval is how often Options.Progress is called.
const DefaultProgressInterval = 200 * time.Millisecond

// Options configure a backup.
type Options struct {
	Account *Account
	// Dir is the folder to back up.
	Dir string
	// CloudPath is where the folder appears in the drive; default
	// DefaultCloudPath(Dir).
	CloudPath string
	// Excludes are globs of entries to leave out (see docs/backup.md).
	Excludes []string
	// CacheDir holds the file caches that let unchanged files go unread
	// (the account home's backup folder). Empty: every file is read.
	CacheDir string
	// Device names this device in the version; default the host name.
	Device string
	// Workers is how many files are read at once; default 2×GOMAXPROCS
	// (at least 4).
	Workers int
	// Progress, if set, is called every ProgressInterval during the run
	// and once at the end.
	Progress         func(Progress)
	ProgressInterval time.Duration
	// Logf reports conditions that do not fail the backup (a corrupt
	// cache). Default: discard.
	Logf func(format string, args ...any)

	// Test hooks: wrap every file's reader; lower the commit size limit.
	wrapReader func(rel string, r io.Reader) io.Reader
	maxEntries int
}

// Progress is a snapshot of a running backup. Files are found by a
// scanner running ahead of the readers, so the totals grow until the scan
// ends (ScanDone).
type Progress struct {
	FilesFound, BytesFound int64 // regular files found so far, and their sizes
	FilesDone, BytesDone   int64 // of those, read or recognised unchanged
	BytesRead              int64
	Errors                 int64
	ScanDone               bool
	Elapsed                time.Duration
}

// Summary describes a finished backup.
type Summary struct {
	Dir       string `json:"dir"`
	CloudPath string `json:"cloud_path"`

	FilesNew       int64 `json:"files_new"`
	FilesChanged   int64 `json:"files_changed"`
	FilesUnchanged int64 `json:"files_unchanged"`
	Dirs           int64 `json:"dirs"`
	Symlinks       int64 `json:"symlinks"`
	Excluded       int64 `json:"excluded"`

	BytesTotal    int64 `json:"bytes_total"`    // size of the files in the backup
	BytesRead     int64 `json:"bytes_read"`     // read from disk (changed files)
	BytesUploaded int64 `json:"bytes_uploaded"` // sealed blob bytes in new packs
	BlobsUploaded int64 `json:"blobs_uploaded"`

	Errors []FileError `json:"-"`

	// Committed is false when the folder was already stored as it is: the
	// head stays where it was.
	Committed bool      `json:"committed"`
	Seq       uint64    `json:"seq"`
	Version   crypto.ID `json:"-"`
	Root      crypto.ID `json:"-"` // the folder's tree

	Duration time.Duration `json:"-"`
}

// DefaultCloudPath returns /Backups/<hostname>/<base name of dir>.
func DefaultCloudPath(dir string) string {
	host, err := os.Hostname()
	if err != nil || tree.ValidName(host) != nil {
		host = "localhost"
	}
	base := filepath.Base(filepath.Clean(dir))
	if tree.ValidName(base) != nil {
		base = "root"
	}
	return "/Backups/" + host + "/" + base
}

// CacheFile returns the cache file of folder dir in cacheDir: one file per
// absolute folder path, so the same folder backed up to two cloud paths
// shares it (cached entries are valid account-wide).
func CacheFile(cacheDir, dir string) string {
	sum := sha256.Sum256([]byte(dir))
	return filepath.Join(cacheDir, hex.EncodeToString(sum[:16])+".cache")
}

// run is one backup.
type run struct {
	o     Options
	acct  *Account
	repo  *repo.Repo
	comps []string
	dev   string
	sum   *Summary

	// fresh are this run's index entries not yet committed (used without
	// a Ledger); maxEntries is the commit size limit.
	fresh      []repo.IndexEntry
	maxEntries int
	// message is the committed version's message; default "backup of DIR".
	message string
}

// Run backs o.Dir up and commits one version in which o.CloudPath mirrors
// it. Files that cannot be read are reported in Summary.Errors and left
// out (or kept at their previous version); the backup then still commits
// and the error wraps ErrIncomplete.
func Run(ctx context.Context, o Options) (*Summary, error) {
	started := time.Now()
	if err := o.Account.validate(); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(o.Dir)
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", o.Dir, err)
	}
	if fi, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("backup: %w", err)
	} else if !fi.IsDir() {
		return nil, fmt.Errorf("backup %s: not a folder", abs)
	}
	if o.CloudPath == "" {
		o.CloudPath = DefaultCloudPath(abs)
	}
	comps, err := SplitCloudPath(o.CloudPath)
	if err != nil {
		return nil, err
	}
	excl, err := newExcluder(o.Excludes)
	if err != nil {
		return nil, err
	}
	if o.Workers <= 0 {
		o.Workers = max(4, 2*runtime.GOMAXPROCS(0))
	}
	if o.ProgressInterval <= 0 {
		o.ProgressInterval = DefaultProgressInterval
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	dev := o.Device
	if dev == "" {
		dev, _ = os.Hostname()
	}
	rp, err := o.Account.openRepo()
	if err != nil {
		return nil, err
	}

	cachePath := ""
	if o.CacheDir != "" {
		cachePath = CacheFile(o.CacheDir, abs)
		unlock, err := lockFile(cachePath + ".lock")
		if err != nil {
			return nil, err
		}
		defer unlock()
	}
	cache, err := openCache(cachePath, rp.ID)
	if err != nil {
		o.Logf("%v; reading every file", err)
	}

	// The index must know what the server holds: for dedup, and to read
	// the head's trees when splicing.
	if err := o.Account.Remote.SyncIndex(ctx); err != nil {
		return nil, fmt.Errorf("sync index: %w", err)
	}

	if o.maxEntries <= 0 {
		o.maxEntries = MaxCommitEntries
	}
	b := &run{o: o, acct: o.Account, repo: rp, comps: comps, dev: dev, maxEntries: o.maxEntries,
		sum: &Summary{Dir: abs, CloudPath: o.CloudPath}}
	st := &counters{}
	w := &walker{
		ctx: ctx, repo: rp, cache: cache, excl: excl, start: started, stats: st,
		smallMax:   int64(o.Account.chunkerParams().Min),
		dirSlots:   make(chan struct{}, 8),
		fileSlots:  make(chan struct{}, o.Workers),
		bigSlots:   make(chan struct{}, max(1, runtime.GOMAXPROCS(0)/4)),
		wrapReader: o.wrapReader,
	}
	w.smallBufs.New = func() any { b := make([]byte, w.smallMax); return &b }
	return b.execute(ctx, w, abs, cache, started)
}

// execute is Run after setup; split out so tests can drive a walker with
// injected faults.
func (b *run) execute(ctx context.Context, w *walker, abs string, cache *fileCache, started time.Time) (*Summary, error) {
	st := w.stats
	scanDone := make(chan struct{})
	var progressWG sync.WaitGroup
	snapshot := func(done bool) Progress {
		return Progress{
			FilesFound: st.filesScanned.Load(), BytesFound: st.bytesScanned.Load(),
			FilesDone: st.filesDone.Load(), BytesDone: st.bytesDone.Load(),
			BytesRead: st.bytesRead.Load(), Errors: st.errors.Load(),
			ScanDone: done, Elapsed: time.Since(started),
		}
	}
	if b.o.Progress != nil {
		progressWG.Add(1)
		go func() {
			defer progressWG.Done()
			t := time.NewTicker(b.o.ProgressInterval)
			defer t.Stop()
			for {
				select {
				case <-scanDone:
					return
				case <-t.C:
					b.o.Progress(snapshot(false))
				}
			}
		}()
	}

	rootSlot, err := w.dir(abs, "", nil, entryMeta{})
	close(scanDone)
	progressWG.Wait()
	if err != nil {
		return nil, fmt.Errorf("backup %s: %w", abs, err)
	}
	if b.o.Progress != nil {
		b.o.Progress(snapshot(true))
	}
	// No flush here: the packs still open go up together with the trees
	// on the cloud path and the version, in commit's one flush.
	done, err := b.commit(ctx, rootSlot.entry)
	if err != nil {
		return nil, err
	}
	// Both only record what is committed already: do them side by side.
	saved := make(chan error, 1)
	go func() { saved <- cache.save() }()
	err = b.markCommitted(ctx, done)
	if serr := <-saved; serr != nil {
		b.o.Logf("%v", serr) // the backup is committed; the next run just reads more
	}
	if err != nil {
		return nil, err
	}

	s := b.sum
	s.FilesNew, s.FilesChanged, s.FilesUnchanged = st.filesNew.Load(), st.filesChanged.Load(), st.filesUnchanged.Load()
	s.Dirs, s.Symlinks, s.Excluded = st.dirs.Load(), st.symlinks.Load(), st.excluded.Load()
	s.BytesTotal, s.BytesRead = st.bytesScanned.Load(), st.bytesRead.Load()
	s.Root = rootSlot.entry.Subtree
	s.Errors = w.errs
	s.Duration = time.Since(started)
	if len(s.Errors) > 0 {
		return s, fmt.Errorf("backup of %s: %d files or folders not stored: %w", abs, len(s.Errors), ErrIncomplete)
	}
	return s, nil
}

// commit splices the folder's entry into the head's tree and commits a
// version, retrying on top of the new head when another device commits
// first. Nothing is committed when the head already holds the folder as
// it is. It returns the index entries the commit carried, for the caller
// to mark committed.
func (b *run) commit(ctx context.Context, folder tree.Entry) ([]repo.IndexEntry, error) {
	for attempt := 1; ; attempt++ {
		head, err := b.acct.Remote.Head(ctx)
		if err != nil {
			return nil, fmt.Errorf("read head: %w", err)
		}
		var root crypto.ID
		if head.Seq > 0 {
			v, err := b.repo.LoadVersion(ctx, head.Version)
			if err != nil {
				return nil, fmt.Errorf("load head version %d: %w", head.Seq, err)
			}
			root = v.Root
		}
		if head, err = b.checkpoints(ctx, head, root); err != nil {
			if errors.Is(err, ErrHeadMoved) && attempt < maxCommitAttempts {
				if err := b.acct.Remote.SyncIndex(ctx); err != nil {
					return nil, fmt.Errorf("sync index: %w", err)
				}
				continue
			}
			return nil, err
		}
		newRoot, err := splice(ctx, b.repo, root, b.comps, folder)
		if err != nil {
			return nil, fmt.Errorf("place backup at %s: %w", b.o.CloudPath, err)
		}
		if newRoot == root && head.Seq > 0 {
			b.sum.Seq, b.sum.Version = head.Seq, head.Version
			return nil, nil
		}
		v := &tree.Version{Root: newRoot, Parent: head.Version, Time: time.Now().UnixNano(), Device: b.dev,
			Message: b.versionMessage()}
		vid, err := b.repo.SaveVersion(ctx, v)
		if err != nil {
			return nil, fmt.Errorf("save version: %w", err)
		}
		entries, err := b.flushAndList(ctx)
		if err != nil {
			return nil, err
		}
		nh, err := b.acct.Remote.Commit(ctx, head.Seq, vid, head.Version, entries)
		if errors.Is(err, ErrHeadMoved) && attempt < maxCommitAttempts {
			if err := b.acct.Remote.SyncIndex(ctx); err != nil {
				return nil, fmt.Errorf("sync index: %w", err)
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("commit version %s on %d: %w", vid.Short(), head.Seq, err)
		}
		b.sum.Committed, b.sum.Seq, b.sum.Version = true, nh.Seq, vid
		return entries, nil
	}
}

// checkpoints commits index entries beyond what one commit may carry, in
// versions that keep the head's tree as it is, until the rest fits beside
// the final version and the trees on the cloud path.
func (b *run) checkpoints(ctx context.Context, head Head, root crypto.ID) (Head, error) {
	room := b.maxEntries - len(b.comps) - 2
	for {
		entries, err := b.uncommitted(ctx)
		if err != nil {
			return head, err
		}
		pending := b.repo.PendingBlobs()
		if len(entries)+pending <= room {
			return head, nil
		}
		if pending > 0 {
			// Count what is still in open packs too.
			if err := b.repo.Flush(ctx); err != nil {
				return head, fmt.Errorf("upload packs: %w", err)
			}
			continue
		}
		if root.IsZero() {
			// No tree to keep yet: start from an empty root.
			if root, err = b.repo.SaveTree(ctx, &tree.Tree{}); err != nil {
				return head, fmt.Errorf("save empty root: %w", err)
			}
		}
		v := &tree.Version{Root: root, Parent: head.Version, Time: time.Now().UnixNano(), Device: b.dev,
			Message: "backup checkpoint of " + b.sum.Dir}
		vid, err := b.repo.SaveVersion(ctx, v)
		if err != nil {
			return head, fmt.Errorf("save checkpoint version: %w", err)
		}
		if err := b.repo.Flush(ctx); err != nil {
			return head, fmt.Errorf("upload packs: %w", err)
		}
		if entries, err = b.uncommitted(ctx); err != nil {
			return head, err
		}
		// The batch must carry the checkpoint's own blobs (the version,
		// and an empty root if one was made).
		batch := make([]repo.IndexEntry, 0, b.maxEntries)
		var rest []repo.IndexEntry
		for _, e := range entries {
			if e.ID == vid || e.ID == root {
				batch = append(batch, e)
			} else {
				rest = append(rest, e)
			}
		}
		batch = append(batch, rest[:min(len(rest), b.maxEntries-len(batch))]...)
		nh, err := b.acct.Remote.Commit(ctx, head.Seq, vid, head.Version, batch)
		if err != nil {
			return head, fmt.Errorf("commit checkpoint on %d: %w", head.Seq, err)
		}
		if err := b.markCommitted(ctx, batch); err != nil {
			return head, err
		}
		head = nh
	}
}

// flushAndList uploads the open packs and returns the index entries the
// commit must carry. The ledger is listed while the packs go up (both
// are the tail of every backup): what the listing can miss are the
// entries of the packs this Flush uploads, and those are this run's own,
// which b.fresh holds. Entries of other writers that the trees may name
// were in the index before the scan found them there, so before the
// listing starts.
func (b *run) flushAndList(ctx context.Context) ([]repo.IndexEntry, error) {
	type listing struct {
		entries []repo.IndexEntry
		err     error
	}
	var listed chan listing
	if b.acct.Ledger != nil {
		listed = make(chan listing, 1)
		go func() {
			es, err := b.acct.Ledger.Uncommitted(ctx)
			listed <- listing{es, err}
		}()
	}
	err := b.repo.Flush(ctx)
	var l listing
	if listed != nil {
		l = <-listed
	}
	if err != nil {
		return nil, fmt.Errorf("upload packs: %w", err)
	}
	for _, e := range b.repo.TakeNewEntries() {
		b.sum.BytesUploaded += int64(e.Length)
		b.sum.BlobsUploaded++
		b.fresh = append(b.fresh, e)
	}
	if listed == nil {
		return b.fresh, nil
	}
	if l.err != nil {
		return nil, fmt.Errorf("list uncommitted index entries: %w", l.err)
	}
	seen := make(map[crypto.ID]struct{}, len(l.entries))
	out := l.entries
	for _, e := range l.entries {
		seen[e.ID] = struct{}{}
	}
	for _, e := range b.fresh {
		if _, ok := seen[e.ID]; !ok {
			out = append(out, e)
		}
	}
	return out, nil
}

// uncommitted returns the index entries the next commit must carry, and
// accounts for this run's uploads.
func (b *run) uncommitted(ctx context.Context) ([]repo.IndexEntry, error) {
	for _, e := range b.repo.TakeNewEntries() {
		b.sum.BytesUploaded += int64(e.Length)
		b.sum.BlobsUploaded++
		b.fresh = append(b.fresh, e)
	}
	if b.acct.Ledger != nil {
		es, err := b.acct.Ledger.Uncommitted(ctx)
		if err != nil {
			return nil, fmt.Errorf("list uncommitted index entries: %w", err)
		}
		return es, nil
	}
	return b.fresh, nil
}

func (b *run) markCommitted(ctx context.Context, entries []repo.IndexEntry) error {
	if b.acct.Ledger != nil {
		if err := b.acct.Ledger.MarkCommitted(ctx, entries); err != nil {
			return fmt.Errorf("record committed index entries: %w", err)
		}
	}
	done := make(map[crypto.ID]struct{}, len(entries))
	for _, e := range entries {
		done[e.ID] = struct{}{}
	}
	kept := b.fresh[:0]
	for _, e := range b.fresh {
		if _, ok := done[e.ID]; !ok {
			kept = append(kept, e)
		}
	}
	b.fresh = kept
	return nil
}

func (b *run) versionMessage() string {
	if b.message != "" {
		return b.message
	}
	return "backup of " + b.sum.Dir
}

// lockFile takes an exclusive lock on path, so two backups of one folder
// never write its cache at once.
func lockFile(path string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create backup cache folder: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open backup lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrLocked
		}
		return nil, fmt.Errorf("lock backup cache: %w", err)
	}
	return func() { _ = f.Close() }, nil
}
