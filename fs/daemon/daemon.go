// Package daemon runs a mounted drive: it opens the account's home folder,
// connects to the server, mounts the node layer through FUSE, runs the
// committer and the server's push stream, and serves the control socket
// that `anysync status`, `sync` and `unmount` talk to.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/fs/localdb"
	"github.com/anysync/anysync/fs/node"
	"github.com/anysync/anysync/fs/syncer"
	"github.com/anysync/anysync/remote"
	"github.com/anysync/anysync/store/cache"
	"github.com/anysync/anysync/store/repo"
)

// Errors callers can test with errors.Is.
var (
	// ErrLocked means another daemon runs on this home folder.
	ErrLocked = errors.New("another anysync daemon is using this home folder")
	// ErrNotSignedIn means the home folder has no access.keys.
	ErrNotSignedIn = errors.New("not signed in: run `anysync signup` or `anysync login` first")
)

// Files of a home folder.
const (
	AccessKeysFile = "access.keys"
	DBFile         = "node.db"
	StagingDir     = "staging"
	TrashDir       = "trash"
	SocketFile     = "control.sock"
	LockFile       = "lock"
	LogFile        = "daemon.log"
)

// Default chunk cache sizes: sealed chunks on disk (pinned ones may exceed
// it), and decrypted chunks in memory. The memory tier is small: the
// kernel's page cache keeps what was read (files open with keep-cache), so
// the tier only carries chunks from their download to the FUSE reads that
// want them (a sequential read keeps about 8 MiB in flight) and recent
// trees; a disk hit costs one decryption (several GB/s).
const (
	DefaultCacheBytes  = 10 << 30
	DefaultMemoryBytes = 32 << 20
	// segmentBytes: unpinned blobs (up to 4 MiB, every chunk) go into
	// segment files of this size rather than a file each.
	segmentBytes = 32 << 20
)

// gcPercent is the daemon's GOGC unless the environment sets one: Go's
// default. The heap limit (cache + memoryHeadroom) bounds memory; a tighter
// goal (50) kept a cold read's resident set at 160 MB instead of 210, but
// cost metadata-heavy work a tenth of the daemon's CPU (extracting the Go
// tree: 5.1 s instead of 4.5 s, most of it collections).
const gcPercent = 100

// CacheDir is the chunk cache's folder inside the home.
const CacheDir = "cache"

// memoryHeadroom is what the daemon needs beside the chunk cache (FUSE
// buffers, packs being written and uploaded, SQLite): the Go heap is
// limited to cache + headroom, so memory stays bounded by configuration.
const memoryHeadroom = 160 << 20

// Options configure a daemon.
type Options struct {
	Home       string
	Mountpoint string
	// CacheBytes bounds the chunk cache on disk (default DefaultCacheBytes);
	// MemoryBytes its memory tier (default DefaultMemoryBytes).
	CacheBytes, MemoryBytes int64
	// Quiet is the committer's debounce (default 1s); MaxDelay bounds it
	// under constant change (default 10s).
	Quiet, MaxDelay time.Duration
	Logger          *log.Logger
	// Frontend is the FUSE front end (FrontendGoFuse, FrontendCgoFuse;
	// "" for DefaultFrontend).
	Frontend string
	// Ready, if set, is called once the drive is mounted and the control
	// socket answers.
	Ready func()
}

// daemon is one running mount.
type daemon struct {
	opts   Options
	keys   *crypto.AccessKeys
	client *remote.Client
	db     *localdb.DB
	fs     *node.FS
	sync   *syncer.Syncer
	mount  mounted
	cache  *cache.Cache
	repo   *repo.Repo
	log    *log.Logger
	ctx    context.Context // the daemon's life, for background work

	stopOnce sync.Once
	stop     chan struct{} // closed to unmount and exit
}

// Run mounts the drive and serves it until it is unmounted (by
// `anysync unmount`, a signal handled by the caller cancelling ctx, or
// umount(8)).
func Run(ctx context.Context, o Options) (err error) {
	if o.CacheBytes == 0 {
		o.CacheBytes = DefaultCacheBytes
	}
	if o.MemoryBytes == 0 {
		o.MemoryBytes = DefaultMemoryBytes
	}
	if o.Logger == nil {
		o.Logger = log.New(os.Stderr, "anysync: ", log.LstdFlags)
	}
	if o.Frontend == "" {
		o.Frontend = DefaultFrontend()
	}
	if err := checkFrontend(o.Frontend); err != nil {
		return err
	}
	debug.SetMemoryLimit(o.MemoryBytes + memoryHeadroom)
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	lock, err := lockHome(o.Home)
	if err != nil {
		return err
	}
	defer lock.Close()

	keys, err := crypto.ReadAccessKeys(filepath.Join(o.Home, AccessKeysFile))
	if errors.Is(err, os.ErrNotExist) {
		return ErrNotSignedIn
	} else if err != nil {
		return fmt.Errorf("read access keys: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	client, err := remote.Dial(ctx, keys.Server, keys.Fingerprint)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", keys.Server, err)
	}
	defer client.Close()
	client = client.WithToken(keys.Token)

	db, err := localdb.OpenBatched(filepath.Join(o.Home, DBFile))
	if err != nil {
		return err
	}
	defer db.Close()

	// The chunk cache: decrypted chunks in memory, sealed chunks on disk
	// (surviving restarts), one process per cache folder.
	chunks, err := cache.Open(filepath.Join(o.Home, CacheDir), cache.Options{MemBytes: o.MemoryBytes, DiskBytes: o.CacheBytes, SegmentBytes: segmentBytes})
	if err != nil {
		return fmt.Errorf("open chunk cache: %w", err)
	}
	defer chunks.Close()
	rp, err := repo.Open(repo.Config{Keys: &keys.Keys, Objects: newBoundedReads(remote.NewPackStore(client), fetchTimeout, maxFetches), Index: syncer.Index{DB: db}, Cache: chunks})
	if err != nil {
		return err
	}
	d := &daemon{opts: o, keys: keys, client: client, db: db, cache: chunks, repo: rp, log: o.Logger, ctx: ctx, stop: make(chan struct{})}
	d.fs, err = node.New(ctx, node.Config{
		DB:         db,
		StagingDir: filepath.Join(o.Home, StagingDir),
		TrashDir:   filepath.Join(o.Home, TrashDir),
		Content:    syncer.ContentSource{Ctx: ctx, Repo: rp},
		Changed:    func() { d.sync.Kick() },
		Quota: func(ctx context.Context) (int64, int64, error) {
			used, quota, err := client.Usage(ctx)
			return quota, used, err
		},
		Reserved: reserved{d},
		History:  history{client: client, repo: rp},
	})
	if err != nil {
		return err
	}
	device, _ := os.Hostname()
	if device == "" {
		device = keys.DeviceID
	}
	d.sync = syncer.New(syncer.Config{FS: d.fs, DB: db, Repo: rp, Remote: remoteAdapter{client}, Device: device, Quiet: o.Quiet, MaxDelay: o.MaxDelay,
		Logf: o.Logger.Printf})

	// The server's head first, so the mount shows the cloud tree. Offline,
	// the mount serves the local state and catches up later.
	if err := d.sync.Pull(ctx); err != nil {
		if errors.Is(err, syncer.ErrRollback) || errors.Is(err, remote.ErrUnauthenticated) {
			return err
		}
		d.log.Printf("could not fetch the server's head, starting from local state: %v", err)
	}
	if err := d.refreshHidden(ctx); err != nil {
		return err
	}

	if err := prepareMountpoint(o.Mountpoint); err != nil {
		return err
	}
	d.mount, err = mountFrontend(o.Frontend, o.Mountpoint, d.fs, o.Logger)
	if err != nil {
		return fmt.Errorf("mount %s: %w", o.Mountpoint, err)
	}
	d.sync.SetInvalidator(d.mount)
	unmounted := make(chan struct{})
	go func() {
		d.mount.Wait()
		close(unmounted)
	}()

	ln, err := listenControl(filepath.Join(o.Home, SocketFile))
	if err != nil {
		_ = d.mount.Unmount()
		return err
	}
	defer ln.Close()
	go d.serveControl(ctx, ln)
	go d.sync.Run(ctx)
	go d.watch(ctx)
	go d.repinLoop(ctx)
	d.sync.Kick() // uploads left over from a previous run resume
	d.log.Printf("mounted %s at %s (front end %s)", keys.Email, o.Mountpoint, o.Frontend)
	if o.Ready != nil {
		o.Ready()
	}

	select {
	case <-unmounted:
		d.log.Printf("unmounted by someone else")
	case <-ctx.Done():
		d.unmount()
	case <-d.stop:
		d.unmount()
	}
	<-unmounted
	// Commit what is left (a crash here is harmless: the journal keeps it).
	flushCtx, cancelFlush := context.WithTimeout(context.Background(), time.Minute)
	defer cancelFlush()
	if _, err := d.sync.SyncOnce(flushCtx); err != nil {
		d.log.Printf("final sync: %v (changes stay queued for the next mount)", err)
	}
	return nil
}

// unmount commits pending changes, then unmounts, retrying while the
// mount is busy.
func (d *daemon) unmount() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := d.sync.SyncOnce(ctx); err != nil {
		d.log.Printf("sync before unmount: %v", err)
	}
	for i := 0; ; i++ {
		err := d.mount.Unmount()
		if err == nil {
			return
		}
		if i == 20 {
			d.log.Printf("unmount: %v; detaching", err)
			_ = DetachMount(d.opts.Mountpoint)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// watch applies heads the server announces.
func (d *daemon) watch(ctx context.Context) {
	for ctx.Err() == nil {
		ch, err := d.client.Watch(ctx)
		if err != nil {
			d.log.Printf("watch: %v", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(5 * time.Second):
			}
			continue
		}
		for h := range ch {
			// A cheap early skip of stale announcements; PullHead checks
			// again under the round lock, which a commit may hold a while.
			seq, _, err := d.sync.Position(ctx)
			if err != nil || h.Seq <= seq {
				continue
			}
			if err := d.sync.PullHead(ctx, syncer.Head{Seq: h.Seq, Version: h.Version}); err != nil {
				d.log.Printf("apply head %d: %v", h.Seq, err)
			}
		}
		// The stream ended (token refused, or ctx done): do not spin.
		select {
		case <-ctx.Done():
			return
		case <-time.After(5 * time.Second):
		}
	}
}

// lockHome takes the home folder's lock, so two daemons never share one
// node table.
// WaitStopped waits until no daemon holds home's lock: after its control
// socket is gone, a daemon still closes its database and cache, and a
// mount started meanwhile would find the home in use.
func WaitStopped(ctx context.Context, home string) error {
	for {
		f, err := lockHome(home)
		if err == nil {
			return f.Close()
		}
		if !errors.Is(err, ErrLocked) {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for the daemon to exit: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func lockHome(home string) (*os.File, error) {
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, fmt.Errorf("create home %s: %w", home, err)
	}
	f, err := os.OpenFile(filepath.Join(home, LockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	if err := lockFile(f); err != nil {
		_ = f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, ErrLocked
		}
		return nil, fmt.Errorf("lock home: %w", err)
	}
	return f, nil
}

// remoteAdapter is the server client as the syncer sees it.
type remoteAdapter struct{ c *remote.Client }

func (r remoteAdapter) Head(ctx context.Context) (syncer.Head, error) {
	h, err := r.c.Head(ctx)
	return syncer.Head{Seq: h.Seq, Version: h.Version}, err
}

func (r remoteAdapter) Commit(ctx context.Context, expected uint64, version, parent crypto.ID, entries []repo.IndexEntry) (syncer.Head, error) {
	req := remote.CommitRequest{ExpectedSeq: expected, Version: version, Parent: parent, Entries: make([]remote.IndexEntry, len(entries))}
	for i, e := range entries {
		req.Entries[i] = remote.IndexEntry{ID: e.ID, Pack: e.Pack, Offset: e.Offset, Length: e.Length}
	}
	h, err := r.c.Commit(ctx, req)
	if errors.Is(err, remote.ErrHeadMoved) {
		return syncer.Head{}, fmt.Errorf("%w: %w", syncer.ErrHeadMoved, err)
	}
	return syncer.Head{Seq: h.Seq, Version: h.Version}, err
}

func (r remoteAdapter) IndexSince(ctx context.Context, cursor uint64) ([]repo.IndexEntry, uint64, error) {
	es, next, err := r.c.IndexSince(ctx, cursor, 100000)
	if err != nil {
		return nil, cursor, err
	}
	out := make([]repo.IndexEntry, len(es))
	for i, e := range es {
		out[i] = repo.IndexEntry{ID: e.ID, Location: repo.Location{Pack: e.Pack, Offset: e.Offset, Length: e.Length}}
	}
	return out, next, nil
}
