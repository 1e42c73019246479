//go:build unix

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/fs/daemon"
	"github.com/anysync/anysync/fs/localdb"
	"github.com/anysync/anysync/fs/syncer"
	"github.com/anysync/anysync/remote"
	"github.com/anysync/anysync/store/backup"
	"github.com/anysync/anysync/store/repo"
)

// backupGCPercent is the backup command's GOGC unless the environment
// sets one.
const backupGCPercent = 25

// backupCacheDir is where the home folder keeps backup file caches.
const backupCacheDir = "backup"

// Keys of the node database's key-value state shared with the drive's
// syncer (fs/syncer): the index cursor and the highest head seen, so a
// backup and a mount share one index and one rollback guard.
const (
	kvIndexCursor = "index_cursor"
	kvMaxSeq      = "max_seen_seq"
)

// account is an open account home for backup, restore and check: the
// access keys, the server connection and the local database whose blob
// index the drive uses too.
type account struct {
	home   string
	keys   *crypto.AccessKeys
	client *remote.Client
	db     *localdb.DB
	acct   *backup.Account
}

func openAccount(ctx context.Context, home string) (*account, error) {
	keys, client, err := signedIn(ctx, home)
	if err != nil {
		return nil, err
	}
	db, err := localdb.Open(filepath.Join(home, daemon.DBFile))
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	a := &account{home: home, keys: keys, client: client, db: db}
	a.acct = &backup.Account{
		Keys:    &keys.Keys,
		Objects: remote.NewPackStore(client),
		Index:   batchIndex{syncer.Index{DB: db}},
		Remote:  &serverRemote{c: client, db: db},
		Ledger:  dbLedger{db: db},
	}
	return a, nil
}

// batchIndex is the drive's blob index with batched lookups, which a
// backup uses for small files (repo.BatchIndex).
type batchIndex struct{ syncer.Index }

func (x batchIndex) Contains(ids []crypto.ID) ([]bool, error) {
	return x.DB.HasBlobs(context.Background(), ids)
}

func (a *account) Close() error {
	return errors.Join(a.db.Close(), a.client.Close())
}

// serverRemote is the server as the backup package uses it, with the
// rollback guard and index cursor kept in the node database.
type serverRemote struct {
	c  *remote.Client
	db *localdb.DB
}

func (r *serverRemote) Head(ctx context.Context) (backup.Head, error) {
	h, err := r.c.Head(ctx)
	if err != nil {
		return backup.Head{}, err
	}
	v, _, err := r.db.GetKV(ctx, kvMaxSeq)
	if err != nil {
		return backup.Head{}, err
	}
	if seen := parseUint(v); h.Seq < seen {
		return backup.Head{}, fmt.Errorf("server head %d, this device saw %d: %w", h.Seq, seen, syncer.ErrRollback)
	}
	return backup.Head{Seq: h.Seq, Version: h.Version}, nil
}

func (r *serverRemote) Versions(ctx context.Context, after uint64, limit int) ([]backup.Head, error) {
	vs, err := r.c.ListVersions(ctx, after, limit)
	if err != nil {
		return nil, err
	}
	out := make([]backup.Head, len(vs))
	for i, v := range vs {
		out[i] = backup.Head{Seq: v.Seq, Version: v.Version}
	}
	return out, nil
}

func (r *serverRemote) Commit(ctx context.Context, expected uint64, version, parent crypto.ID, entries []repo.IndexEntry) (backup.Head, error) {
	req := remote.CommitRequest{ExpectedSeq: expected, Version: version, Parent: parent, Entries: make([]remote.IndexEntry, len(entries))}
	for i, e := range entries {
		req.Entries[i] = remote.IndexEntry{ID: e.ID, Pack: e.Pack, Offset: e.Offset, Length: e.Length}
	}
	h, err := r.c.Commit(ctx, req)
	if errors.Is(err, remote.ErrHeadMoved) {
		return backup.Head{}, fmt.Errorf("%w: %w", backup.ErrHeadMoved, err)
	}
	if err != nil {
		return backup.Head{}, err
	}
	err = r.db.Update(ctx, func(tx *localdb.Tx) error {
		v, _, err := tx.GetKV(kvMaxSeq)
		if err != nil || h.Seq <= parseUint(v) {
			return err
		}
		return tx.SetKV(kvMaxSeq, []byte(strconv.FormatUint(h.Seq, 10)))
	})
	return backup.Head{Seq: h.Seq, Version: h.Version}, err
}

// SyncIndex adds the index entries committed since the shared cursor.
func (r *serverRemote) SyncIndex(ctx context.Context) error {
	v, _, err := r.db.GetKV(ctx, kvIndexCursor)
	if err != nil {
		return err
	}
	cursor := parseUint(v)
	for {
		es, next, err := r.c.IndexSince(ctx, cursor, remote.MaxCommitEntries)
		if err != nil {
			return fmt.Errorf("index after version %d: %w", cursor, err)
		}
		if len(es) == 0 && next == cursor {
			return nil
		}
		entries := make([]localdb.BlobEntry, len(es))
		for i, e := range es {
			entries[i] = localdb.BlobEntry{ID: e.ID, BlobLocation: localdb.BlobLocation{Pack: e.Pack, Offset: e.Offset, Length: e.Length}}
		}
		if err := r.db.AddBlobs(ctx, entries, true); err != nil {
			return err
		}
		cursor = next
		if err := r.db.Update(ctx, func(tx *localdb.Tx) error {
			return tx.SetKV(kvIndexCursor, []byte(strconv.FormatUint(cursor, 10)))
		}); err != nil {
			return err
		}
		if len(es) == 0 {
			return nil
		}
	}
}

func parseUint(b []byte) uint64 {
	n, _ := strconv.ParseUint(string(b), 10, 64)
	return n
}

// dbLedger keeps uncommitted index entries in the node database, where
// the drive's committer finds them too after a crash.
type dbLedger struct{ db *localdb.DB }

func (l dbLedger) Uncommitted(ctx context.Context) ([]repo.IndexEntry, error) {
	es, err := l.db.UncommittedBlobs(ctx, 1<<31-1)
	if err != nil {
		return nil, err
	}
	out := make([]repo.IndexEntry, len(es))
	for i, e := range es {
		out[i] = repo.IndexEntry{ID: e.ID, Location: repo.Location{Pack: e.Pack, Offset: e.Offset, Length: e.Length}}
	}
	return out, nil
}

func (l dbLedger) MarkCommitted(ctx context.Context, entries []repo.IndexEntry) error {
	es := make([]localdb.BlobEntry, len(entries))
	for i, e := range entries {
		es[i] = localdb.BlobEntry{ID: e.ID}
	}
	return l.db.Update(ctx, func(tx *localdb.Tx) error { return tx.MarkBlobsCommitted(es) })
}

func backupCmd(g *globals) *cobra.Command {
	var (
		to       string
		excludes []string
		asJSON   bool
		workers  int
	)
	cmd := &cobra.Command{
		Use:   "backup DIR",
		Short: "Back a folder up into the drive (incremental, deduplicated, one version per run)",
		Long: `Back DIR up into the drive at --to (default /Backups/<host>/<name of DIR>).
Unchanged files are recognised by size, times and inode without being read;
only chunks the account does not hold yet are uploaded. Files that cannot be
read are reported and left out; the rest is committed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := interruptible(cmd.Context())
			defer stop()
			if path := os.Getenv("ANYSYNC_CPUPROFILE"); path != "" {
				// Development: a CPU profile of the whole command (go tool pprof).
				stopProfile, err := startCPUProfile(path)
				if err != nil {
					return err
				}
				defer stopProfile()
			}
			if os.Getenv("GOGC") == "" {
				// The heap is mostly large byte buffers (packs, chunks),
				// cheap to mark; a tighter goal keeps the process from
				// touching fresh memory for garbage, and page faults are
				// what costs on the VMs we measure on (docs/backup.md).
				debug.SetGCPercent(backupGCPercent)
			}
			dir, err := filepath.Abs(args[0])
			if err != nil {
				return err
			}
			a, err := openAccount(ctx, g.home)
			if err != nil {
				return err
			}
			defer a.Close()
			home, err := filepath.Abs(g.home)
			if err != nil {
				return err
			}
			// Never back up the account home itself: its database changes
			// while it is read.
			if rel, err := filepath.Rel(dir, home); err == nil && rel != "." && !strings.HasPrefix(rel, "..") {
				excludes = append(excludes, "/"+filepath.ToSlash(rel))
			}
			o := backup.Options{
				Account: a.acct, Dir: dir, CloudPath: to, Excludes: excludes,
				CacheDir: filepath.Join(g.home, backupCacheDir), Workers: workers,
				Logf: func(f string, args ...any) { fmt.Fprintf(os.Stderr, "anysync: "+f+"\n", args...) },
			}
			var bar *progressbar.ProgressBar
			if !asJSON && isTerminal(os.Stderr) {
				bar = newBar(os.Stderr, "scanning")
				o.Progress = func(p backup.Progress) {
					updateBar(bar, p.BytesFound, p.BytesDone, p.FilesDone, p.FilesFound, p.ScanDone)
				}
			}
			s, err := backup.Run(ctx, o)
			finishBar(bar)
			if s == nil {
				return err
			}
			reportFileErrors("not backed up", s.Errors)
			if asJSON {
				if jerr := printJSON(os.Stdout, backupJSON(s)); jerr != nil {
					return jerr
				}
			} else {
				printBackupSummary(os.Stdout, s)
			}
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&to, "to", "", "cloud path of the backup (default /Backups/<host>/<name of DIR>)")
	f.StringArrayVar(&excludes, "exclude", nil, "leave out entries matching this glob (repeatable): NAME patterns match any entry, PATH/patterns match from DIR")
	f.BoolVar(&asJSON, "json", false, "print a JSON summary on stdout, no progress")
	f.IntVar(&workers, "workers", 0, "files read at once (default 2×CPUs, at least 4)")
	return cmd
}

// startCPUProfile writes a CPU profile to path until the returned
// function is called.
func startCPUProfile(path string) (func(), error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() { pprof.StopCPUProfile(); _ = f.Close() }, nil
}

// reportFileErrors lists the files an operation left out.
func reportFileErrors(what string, errs []backup.FileError) {
	for _, fe := range errs {
		fmt.Fprintf(os.Stderr, "anysync: %s: %v\n", what, &fe)
	}
}

// newBar returns a byte progress bar with rate and ETA.
func newBar(w io.Writer, desc string) *progressbar.ProgressBar {
	return progressbar.NewOptions64(-1,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetPredictTime(true),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionSetWidth(30),
		progressbar.OptionShowDescriptionAtLineEnd(),
		progressbar.OptionUseANSICodes(true),
		progressbar.OptionFullWidth(),
	)
}

func updateBar(bar *progressbar.ProgressBar, bytesFound, bytesDone, filesDone, filesFound int64, scanDone bool) {
	if bytesFound > 0 && bar.GetMax64() != bytesFound {
		bar.ChangeMax64(bytesFound)
	}
	more := "+"
	if scanDone {
		more = ""
	}
	bar.Describe(fmt.Sprintf("%d/%d%s files", filesDone, filesFound, more))
	_ = bar.Set64(bytesDone)
}

type backupResult struct {
	Dir            string      `json:"dir"`
	CloudPath      string      `json:"cloud_path"`
	FilesNew       int64       `json:"files_new"`
	FilesChanged   int64       `json:"files_changed"`
	FilesUnchanged int64       `json:"files_unchanged"`
	Dirs           int64       `json:"dirs"`
	Symlinks       int64       `json:"symlinks"`
	Excluded       int64       `json:"excluded"`
	BytesTotal     int64       `json:"bytes_total"`
	BytesRead      int64       `json:"bytes_read"`
	BytesUploaded  int64       `json:"bytes_uploaded"`
	Committed      bool        `json:"committed"`
	Version        uint64      `json:"version"`
	VersionID      string      `json:"version_id"`
	DurationSec    float64     `json:"duration_s"`
	Errors         []fileError `json:"errors"`
}

type fileError struct {
	Path  string `json:"path"`
	Error string `json:"error"`
}

func backupJSON(s *backup.Summary) backupResult {
	r := backupResult{Dir: s.Dir, CloudPath: s.CloudPath, FilesNew: s.FilesNew, FilesChanged: s.FilesChanged,
		FilesUnchanged: s.FilesUnchanged, Dirs: s.Dirs, Symlinks: s.Symlinks, Excluded: s.Excluded,
		BytesTotal: s.BytesTotal, BytesRead: s.BytesRead, BytesUploaded: s.BytesUploaded, Committed: s.Committed,
		Version: s.Seq, VersionID: s.Version.String(), DurationSec: s.Duration.Seconds(), Errors: fileErrors(s.Errors)}
	return r
}

func fileErrors(errs []backup.FileError) []fileError {
	out := make([]fileError, len(errs))
	for i, e := range errs {
		out[i] = fileError{Path: e.Path, Error: e.Err.Error()}
	}
	return out
}

func printBackupSummary(w io.Writer, s *backup.Summary) {
	state := fmt.Sprintf("version #%d", s.Seq)
	if !s.Committed {
		state = fmt.Sprintf("no change since version #%d", s.Seq)
	}
	fmt.Fprintf(w, "Backed up %s to %s: %d new, %d changed, %d unchanged files; read %s, uploaded %s in %s (%s).\n",
		s.Dir, s.CloudPath, s.FilesNew, s.FilesChanged, s.FilesUnchanged,
		humanBytes(s.BytesRead), humanBytes(s.BytesUploaded), s.Duration.Round(time.Millisecond), state)
}
