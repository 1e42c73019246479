package localdb

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gofrs/flock"
)

// Write-behind (OpenBatched): an Update runs in a transaction that stays
// open across Updates and is committed in batches; what makes each Update
// durable against a crash of the process is its record in the redo log,
// written (one write(2), no fsync) before Update returns. A mount that
// extracts thousands of files thus commits SQLite a few times a second
// instead of twice per file. While a batch is open, reads go through it, so
// every read sees every acknowledged write.
//
// Invariant: the committed database holds exactly the records up to the
// sequence number stored under redoSeqKey; the log holds the records after
// it (and possibly older ones, skipped on replay).

const (
	// batchDelay is how long a batch stays open after its first Update.
	batchDelay = 50 * time.Millisecond
	// batchBytes commits early once the batch's records hold this much.
	batchBytes = 8 << 20
	// redoSeqKey holds the last redo record the database includes.
	redoSeqKey = "redo_seq"
)

type batcher struct {
	mu   sync.Mutex
	log  *os.File
	lock *flock.Flock
	base int64 // where the log's records not yet committed start
	size int64 // bytes of valid records in the log
	// The batch runs on a connection of its own, with BEGIN and COMMIT
	// of its own: database/sql starts a goroutine for every row set read
	// in a *sql.Tx (to close it if the transaction's context ends), and
	// the mount reads through the batch on most FUSE requests.
	conn    *sql.Conn
	stmts   *stmtCache // prepared on conn
	open    bool       // a batch is open (BEGIN IMMEDIATE ran on conn)
	pending int        // records in the open batch (or in one whose commit failed)
	rec     recorder
	seq     uint64
	timer   *time.Timer
	delay   time.Duration // batchDelay; tests lengthen it
	closed  bool
	// acked is set while the batch holds acknowledged writes, which only a
	// read through the batch sees; until then reads use the pool and do
	// not wait for an Update in progress.
	acked atomic.Bool
}

// OpenBatched opens the database for the mount's daemon: Updates are
// written behind, through the redo log at path+"-redo" (see batcher). It
// replays what an earlier process acknowledged but did not commit. Only
// one process may hold the log; others open the database with Open.
func OpenBatched(path string) (*DB, error) {
	db, err := Open(path)
	if err != nil {
		return nil, err
	}
	b, err := db.openRedo(path + "-redo")
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	db.b = b
	return db, nil
}

func (db *DB) openRedo(path string) (*batcher, error) {
	// A lock file beside the log, not a lock on it: Windows locks are
	// mandatory and would refuse the log's own writes.
	lk := flock.New(path+".lock", flock.SetPermissions(0o600))
	if ok, err := lk.TryLock(); err != nil || !ok {
		return nil, fmt.Errorf("redo log %s is in use by another process (is a mount of this home running?): %v", path, err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		_ = lk.Unlock()
		return nil, fmt.Errorf("open redo log: %w", err)
	}
	b := &batcher{log: f, lock: lk, delay: batchDelay}
	if err := db.replay(b, path); err != nil {
		_ = f.Close()
		_ = lk.Unlock()
		return nil, err
	}
	if b.conn, err = db.w.Conn(context.Background()); err != nil {
		_ = f.Close()
		_ = lk.Unlock()
		return nil, fmt.Errorf("open node db connection: %w", err)
	}
	b.stmts = newStmtCache(b.conn)
	return b, nil
}

// replay applies the log's records after the committed sequence number in
// one transaction, then empties the log.
func (db *DB) replay(b *batcher, path string) error {
	data, err := io.ReadAll(b.log)
	if err != nil {
		return fmt.Errorf("read redo log: %w", err)
	}
	v, _, err := db.GetKV(context.Background(), redoSeqKey)
	if err != nil {
		return err
	}
	committed, _ := strconv.ParseUint(string(v), 10, 64)
	b.seq = committed
	var todo [][]stmtRec
	for len(data) > 0 {
		seq, stmts, n, err := decodeRecord(data)
		if errors.Is(err, errTorn) || (errors.Is(err, errChecksum) && lastRecord(data)) || allZero(data) {
			break // the last write did not finish: its Update never returned
		}
		if err != nil {
			return fmt.Errorf("redo log %s: %w (move it aside to mount without the changes it holds)", path, err)
		}
		data = data[n:]
		b.seq = max(b.seq, seq)
		if seq > committed {
			todo = append(todo, stmts)
		}
	}
	if len(todo) > 0 {
		err := db.updateDirect(context.Background(), func(tx *Tx) error {
			for _, stmts := range todo {
				if err := applyStmts(tx, stmts); err != nil {
					return err
				}
			}
			return setSeq(tx, b.seq)
		})
		if err != nil {
			return fmt.Errorf("replay redo log %s: %w (move it aside to mount without the changes it holds)", path, err)
		}
	}
	if err := b.log.Truncate(0); err != nil {
		return fmt.Errorf("empty redo log: %w", err)
	}
	return nil
}

// lastRecord reports whether the record at the start of data is the log's
// last: its checksum failing is then a write cut short, not damage.
func lastRecord(data []byte) bool {
	return len(data) >= 8 && uint64(len(data)) == 8+uint64(binary.LittleEndian.Uint32(data))
}

// allZero reports a tail of zeros, what a file extended by a write that
// never reached the disk reads as after a power loss.
func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func applyStmts(tx *Tx, stmts []stmtRec) error {
	for _, s := range stmts {
		if _, err := tx.tx.ExecContext(tx.ctx, s.query, s.args...); err != nil {
			return fmt.Errorf("re-apply %.60q: %w", s.query, err)
		}
	}
	return nil
}

func setSeq(tx *Tx, seq uint64) error {
	_, err := tx.tx.ExecContext(tx.ctx, `INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v`,
		redoSeqKey, []byte(strconv.FormatUint(seq, 10)))
	if err != nil {
		return fmt.Errorf("set redo sequence: %w", err)
	}
	return nil
}

// updateBatched runs fn in the open batch (opening one if needed) and logs
// what it wrote.
func (db *DB) updateBatched(ctx context.Context, fn func(*Tx) error) error {
	b := db.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return errors.New("node db is closed")
	}
	if err := db.beginLocked(); err != nil {
		return err
	}
	rec := &b.rec
	rec.reset()
	tx := &Tx{ctx: uncancelable(ctx), tx: b.conn, q: cq{c: b.stmts, rec: rec}, rec: rec}
	if err := fn(tx); err != nil {
		if rec.n > 0 || rec.failed {
			// fn wrote, then failed: take its writes back by rebuilding the
			// batch from the records before it.
			if rerr := db.rebuildLocked(); rerr != nil {
				return errors.Join(err, rerr)
			}
		}
		return err
	}
	if rec.n == 0 {
		if b.pending == 0 {
			// Nothing written in this batch yet: give the write lock back.
			db.rollbackLocked()
		}
		return nil
	}
	data := encodeRecord(b.seq+1, rec)
	if _, err := b.log.WriteAt(data, b.size); err != nil {
		// A full disk, say: drop what was written of the record, take the
		// Update's writes back, and report it.
		_ = b.log.Truncate(b.size)
		return errors.Join(fmt.Errorf("write redo log: %w", err), db.rebuildLocked())
	}
	b.seq++
	b.size += int64(len(data))
	b.pending++
	b.acked.Store(true)
	if b.size-b.base >= batchBytes {
		// The record is durable in the log: a failed commit is retried by
		// the next one, not the caller's failure.
		_ = db.commitLocked()
	}
	return nil
}

// beginLocked opens a batch, re-applying the records of one whose commit
// failed.
func (db *DB) beginLocked() error {
	b := db.b
	if b.open {
		return nil
	}
	if _, err := b.conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	b.open = true
	if err := db.reapplyLocked(); err != nil {
		db.rollbackLocked()
		return err
	}
	if b.timer == nil {
		b.timer = time.AfterFunc(b.delay, db.commitBatch)
	} else {
		b.timer.Reset(b.delay)
	}
	return nil
}

// reapplyLocked re-applies the batch's records, read back from the log.
func (db *DB) reapplyLocked() error {
	b := db.b
	if b.pending == 0 {
		return nil
	}
	data := make([]byte, b.size-b.base)
	if _, err := b.log.ReadAt(data, b.base); err != nil {
		return fmt.Errorf("re-apply batch: read redo log: %w", err)
	}
	tx := &Tx{ctx: context.Background(), tx: b.conn}
	for len(data) > 0 {
		_, stmts, n, err := decodeRecord(data)
		if err != nil {
			return fmt.Errorf("re-apply batch: %w", err)
		}
		if err := applyStmts(tx, stmts); err != nil {
			return fmt.Errorf("re-apply batch: %w", err)
		}
		data = data[n:]
	}
	return nil
}

// rebuildLocked rolls the open batch back and re-applies its logged
// records, dropping the writes of an Update that failed.
func (db *DB) rebuildLocked() error {
	db.rollbackLocked()
	return db.beginLocked()
}

// rollbackLocked ends the open batch, if any, dropping its writes.
func (db *DB) rollbackLocked() {
	b := db.b
	if b.open {
		// An error leaves nothing to undo: SQLite rolled back already.
		_, _ = b.conn.ExecContext(context.Background(), "ROLLBACK")
		b.open = false
	}
}

// commitBatch commits the open batch (the timer's callback).
func (db *DB) commitBatch() {
	b := db.b
	b.mu.Lock()
	defer b.mu.Unlock()
	_ = db.commitLocked() // on failure the records stay pending and in the log
}

func (db *DB) commitLocked() error {
	b := db.b
	if !b.open {
		return nil
	}
	if b.pending == 0 {
		db.rollbackLocked() // read-only batch
		return nil
	}
	if err := setSeq(&Tx{ctx: context.Background(), tx: b.conn}, b.seq); err != nil {
		db.rollbackLocked()
		return err
	}
	if _, err := b.conn.ExecContext(context.Background(), "COMMIT"); err != nil {
		db.rollbackLocked()
		return fmt.Errorf("commit batch: %w", err)
	}
	b.open = false
	b.pending = 0
	b.acked.Store(false)
	// Records up to b.seq are in the database now; a crash before this
	// truncate leaves them in the log, where replay skips them.
	if err := b.log.Truncate(0); err == nil {
		b.size = 0
	}
	b.base = b.size
	return nil
}

// Flush commits the open batch, if any. Called before an Update that
// takes long (a merge that loads trees): reads wait for the batch while it
// holds acknowledged writes, and not otherwise.
func (db *DB) Flush() error {
	if db.b == nil {
		return nil
	}
	db.b.mu.Lock()
	defer db.b.mu.Unlock()
	return db.commitLocked()
}

// closeBatch commits the open batch and releases the log.
func (db *DB) closeBatch() error {
	b := db.b
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil
	}
	b.closed = true
	if b.timer != nil {
		b.timer.Stop()
	}
	err := db.commitLocked() // on failure the log keeps the records for the next open
	db.rollbackLocked()
	b.stmts.close()
	return errors.Join(err, b.conn.Close(), b.log.Close(), b.lock.Unlock())
}

// reader returns where a read must run to see every acknowledged write:
// the open batch (held until done is called) or the read pool.
func (db *DB) reader() (cq, func()) {
	if b := db.b; b != nil && b.acked.Load() {
		b.mu.Lock()
		if !b.open && b.acked.Load() && !b.closed {
			_ = db.beginLocked() // a commit failed: re-apply what it held
		}
		if b.open && b.acked.Load() {
			return cq{c: b.stmts}, b.mu.Unlock
		}
		b.mu.Unlock()
	}
	return db.rq, func() {}
}

// syncRedo makes the log's records durable (fsync).
func (db *DB) syncRedo() error {
	if db.b == nil {
		return nil
	}
	db.b.mu.Lock()
	defer db.b.mu.Unlock()
	if db.b.closed {
		return nil
	}
	if err := db.b.log.Sync(); err != nil {
		return fmt.Errorf("sync redo log: %w", err)
	}
	return nil
}
