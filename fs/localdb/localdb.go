// Package localdb is the client's per-account SQLite database: the node table
// (the current tree, with local changes not yet committed), key-value sync
// state and the blob index. The mount answers lookups, getattr and readdir
// from it, never from the network.
//
// Writes go through one connection (SQLite has one writer anyway); reads use a
// separate pool so they run concurrently with writes under WAL. The mount's
// daemon opens it with OpenBatched, which commits in batches behind a redo
// log (batch.go, redo.go; docs/drive.md).
package localdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/anysync/anysync/crypto"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// ErrNotFound means no node matched.
var ErrNotFound = errors.New("node not found")

// ErrNotDir means a node that must be a directory is not one.
var ErrNotDir = errors.New("not a directory")

// ErrExists means a directory already has an entry of that name.
var ErrExists = errors.New("name exists")

// sqliteConstraintUnique is SQLITE_CONSTRAINT_UNIQUE.
const sqliteConstraintUnique = 2067

func isUniqueViolation(err error) bool {
	var e interface{ Code() int }
	return errors.As(err, &e) && e.Code() == sqliteConstraintUnique
}

// Kind is a node's type. The values match the tree format's kinds.
type Kind uint8

// Node kinds.
const (
	KindFile    Kind = 1
	KindDir     Kind = 2
	KindSymlink Kind = 3
)

// Flags record a node's local changes not yet committed. Together they are
// the journal: a change is durable once the transaction setting them commits.
type Flags uint8

// Node flags.
const (
	// FlagChanged: the entry may differ from the entry of the same name in
	// the parent's base tree; for a directory, something below it changed.
	// A changed node's parent is always changed too.
	FlagChanged Flags = 1
	// FlagContent: the staging file holds content newer than Chunks.
	FlagContent Flags = 2
	// FlagSynced: Chunks holds content that is in a version (loaded from
	// one, or uploaded for one). A pending file without it is new and
	// stays out of versions until its content is uploaded.
	FlagSynced Flags = 4
)

// RootIno is the root directory's inode number (FUSE_ROOT_ID).
const RootIno uint64 = 1

// OrphanParent is the parent of nodes unlinked while still open: they stay
// until their last handle closes, outside the tree.
const OrphanParent uint64 = 0

// Node is one row of the node table.
type Node struct {
	Ino, Parent uint64
	Name        string
	Kind        Kind
	Mode        uint32 // permission bits (07777)
	Size        int64
	Mtime       int64 // ns since the epoch
	Ctime       int64
	Target      string // symlink target
	Xattrs      []byte // EncodeXattrs; loaded only by the Full* reads
	Chunks      []byte // EncodeChunks, the last synced content; Full* reads only
	Tree        crypto.ID
	Flags       Flags
	Staging     string // staging file name, "" if none
	// Inline is pending content kept in the row instead of a staging file
	// (small files: FlagContent with no Staging); Full* reads only.
	Inline []byte
}

const schema = `
CREATE TABLE IF NOT EXISTS nodes (
	ino     INTEGER PRIMARY KEY AUTOINCREMENT,
	parent  INTEGER NOT NULL,
	name    TEXT NOT NULL,
	kind    INTEGER NOT NULL,
	mode    INTEGER NOT NULL,
	size    INTEGER NOT NULL,
	mtime   INTEGER NOT NULL,
	ctime   INTEGER NOT NULL,
	target  TEXT NOT NULL DEFAULT '',
	xattrs  BLOB,
	chunks  BLOB,
	tree    BLOB,
	flags   INTEGER NOT NULL DEFAULT 0,
	staging TEXT NOT NULL DEFAULT '',
	inline  BLOB
);
CREATE UNIQUE INDEX IF NOT EXISTS nodes_by_name ON nodes(parent, name);
CREATE INDEX IF NOT EXISTS nodes_dirty ON nodes(flags) WHERE flags != 0;
CREATE TABLE IF NOT EXISTS kv (k TEXT PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blobs (
	id     BLOB PRIMARY KEY,
	pack   TEXT NOT NULL,
	off    INTEGER NOT NULL,
	len    INTEGER NOT NULL,
	committed INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS blobs_uncommitted ON blobs(committed) WHERE committed = 0;
`

// attrCols are the columns every read loads; fullCols add the large ones.
const (
	attrCols = `ino, parent, name, kind, mode, size, mtime, ctime, target, tree, flags, staging`
	fullCols = attrCols + `, xattrs, chunks, inline`
)

// The nodes with pending content. "flags != 0" is what lets SQLite use the
// partial index nodes_dirty: with the bit test alone it scanned every row,
// small files' content included, each time the committer looked for work
// (every 200 ms while files are written), and that made extracting the Go
// tree read 190,000 pages instead of 87,000.
const (
	pendingQuery      = `SELECT ` + attrCols + ` FROM nodes WHERE flags != 0 AND flags & ? != 0`
	pendingCountQuery = `SELECT count(*) FROM nodes WHERE flags != 0 AND flags & ? != 0`
)

// DB is an open node database.
type DB struct {
	w, r   *sql.DB
	wc, rc *stmtCache
	rq     cq // reads on the pool, through cached statements
	wal    string
	b      *batcher // write-behind state (OpenBatched), nil for Open
}

// Open opens (creating if needed) the database at path.
func Open(path string) (*DB, error) {
	// The database holds names and small files' content in plaintext:
	// create it 0600 (SQLite gives its -wal and -shm files the same mode),
	// and tighten one made by an older version.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open node db %s: %w", path, err)
	}
	_ = f.Close()
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, 0o600); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("protect node db %s: %w", p, err)
		}
	}
	q := url.Values{}
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "foreign_keys(0)")
	q.Set("_txlock", "immediate")
	dsn := "file:" + path + "?" + q.Encode()
	w, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open node db %s: %w", path, err)
	}
	// Writes are serialized by SQLite (BEGIN IMMEDIATE); the second
	// connection lets statements be prepared while a transaction is open.
	w.SetMaxOpenConns(2)
	w.SetMaxIdleConns(2)
	if _, err := w.Exec(schema); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("create node db schema in %s: %w", path, err)
	}
	r, err := sql.Open("sqlite", dsn)
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("open node db %s: %w", path, err)
	}
	r.SetMaxOpenConns(4)
	r.SetMaxIdleConns(4)
	db := &DB{w: w, r: r, wc: newStmtCache(w), rc: newStmtCache(r), wal: path + "-wal"}
	db.rq = cq{c: db.rc}
	if err := db.ensureRoot(); err != nil {
		_ = db.Close()
		return nil, err
	}
	return db, nil
}

func (db *DB) ensureRoot() error {
	return db.Update(context.Background(), func(tx *Tx) error {
		if _, err := tx.Get(RootIno); err == nil {
			return nil
		} else if !errors.Is(err, ErrNotFound) {
			return err
		}
		_, err := tx.tx.ExecContext(tx.ctx, `INSERT INTO nodes (ino, parent, name, kind, mode, size, mtime, ctime) VALUES (?, ?, '', ?, ?, 0, 0, 0)`,
			RootIno, OrphanParent, KindDir, 0o755)
		if err != nil {
			return fmt.Errorf("insert root: %w", err)
		}
		return nil
	})
}

// Close closes the database.
func (db *DB) Close() error {
	var berr error
	if db.b != nil {
		berr = db.closeBatch()
	}
	db.rc.close()
	db.wc.close()
	return errors.Join(berr, db.r.Close(), db.w.Close())
}

// SyncWAL makes every committed transaction durable. Transactions commit to
// the write-ahead log without fsync (synchronous=NORMAL, which already
// survives a process crash); fsync(2) on the log file flushes them to disk
// when a caller needs durability against power loss (the fsync syscall).
func (db *DB) SyncWAL() error {
	if err := db.syncRedo(); err != nil {
		return err
	}
	f, err := os.Open(db.wal)
	if errors.Is(err, os.ErrNotExist) {
		return nil // checkpointed and removed: already in the main file
	}
	if err != nil {
		return fmt.Errorf("open wal: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync wal: %w", err)
	}
	return nil
}

type scanner interface{ Scan(dest ...any) error }

func scanNode(s scanner, full bool) (Node, error) {
	var n Node
	var tree []byte
	dest := []any{&n.Ino, &n.Parent, &n.Name, &n.Kind, &n.Mode, &n.Size, &n.Mtime, &n.Ctime, &n.Target, &tree, &n.Flags, &n.Staging}
	if full {
		dest = append(dest, &n.Xattrs, &n.Chunks, &n.Inline)
	}
	if err := s.Scan(dest...); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return Node{}, ErrNotFound
		}
		return Node{}, err
	}
	copy(n.Tree[:], tree)
	return n, nil
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func getNode(ctx context.Context, q querier, ino uint64, full bool) (Node, error) {
	cols := attrCols
	if full {
		cols = fullCols
	}
	n, err := scanNode(q.QueryRowContext(ctx, `SELECT `+cols+` FROM nodes WHERE ino = ?`, ino), full)
	if err != nil {
		return Node{}, fmt.Errorf("get node %d: %w", ino, err)
	}
	return n, nil
}

func lookupNode(ctx context.Context, q querier, parent uint64, name string, full bool) (Node, error) {
	cols := attrCols
	if full {
		cols = fullCols
	}
	n, err := scanNode(q.QueryRowContext(ctx, `SELECT `+cols+` FROM nodes WHERE parent = ? AND name = ?`, parent, name), full)
	if err != nil {
		return Node{}, fmt.Errorf("lookup %q in %d: %w", name, parent, err)
	}
	return n, nil
}

func children(ctx context.Context, q querier, parent uint64, after string, limit int, full bool) ([]Node, error) {
	cols := attrCols
	if full {
		cols = fullCols
	}
	rows, err := q.QueryContext(ctx, `SELECT `+cols+` FROM nodes WHERE parent = ? AND name > ? ORDER BY name LIMIT ?`, parent, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list %d: %w", parent, err)
	}
	defer rows.Close()
	var out []Node
	for rows.Next() {
		n, err := scanNode(rows, full)
		if err != nil {
			return nil, fmt.Errorf("list %d: %w", parent, err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list %d: %w", parent, err)
	}
	return out, nil
}

// getManyArity is how many nodes one GetMany statement reads; unused
// slots hold 0, which is no node's number, so one prepared statement
// serves every call.
const getManyArity = 32

// GetMany reads whole nodes; missing ones are absent from the result.
func (db *DB) GetMany(ctx context.Context, inos []uint64) (map[uint64]Node, error) {
	query := `SELECT ` + fullCols + ` FROM nodes WHERE ino IN (?` + strings.Repeat(`, ?`, getManyArity-1) + `)`
	out := make(map[uint64]Node, len(inos))
	args := make([]any, getManyArity)
	for len(inos) > 0 {
		part := inos[:min(len(inos), getManyArity)]
		inos = inos[len(part):]
		for i := range args {
			args[i] = uint64(0)
			if i < len(part) {
				args[i] = part[i]
			}
		}
		if err := db.scanMany(ctx, query, args, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (db *DB) scanMany(ctx context.Context, query string, args []any, out map[uint64]Node) error {
	q, done := db.reader()
	defer done()
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("get nodes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		n, err := scanNode(rows, true)
		if err != nil {
			return fmt.Errorf("get nodes: %w", err)
		}
		out[n.Ino] = n
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("get nodes: %w", err)
	}
	return nil
}

// Attr reads a node without its xattrs and chunks.
func (db *DB) Attr(ctx context.Context, ino uint64) (Node, error) {
	q, done := db.reader()
	defer done()
	return getNode(ctx, q, ino, false)
}

// Get reads a whole node.
func (db *DB) Get(ctx context.Context, ino uint64) (Node, error) {
	q, done := db.reader()
	defer done()
	return getNode(ctx, q, ino, true)
}

// Lookup finds a child by name, without its xattrs and chunks.
func (db *DB) Lookup(ctx context.Context, parent uint64, name string) (Node, error) {
	q, done := db.reader()
	defer done()
	return lookupNode(ctx, q, parent, name, false)
}

// Children lists up to limit children of parent with names after `after`,
// in name order, without xattrs and chunks. Pass the last name to continue.
func (db *DB) Children(ctx context.Context, parent uint64, after string, limit int) ([]Node, error) {
	q, done := db.reader()
	defer done()
	return children(ctx, q, parent, after, limit, false)
}

// Listing lists up to limit children of parent with names after `after`,
// in name order, reading only what a directory listing shows: Ino, Name,
// Kind, Mode, Size (a symlink's: its target's length), Mtime and Ctime.
// Pass the last name to continue.
func (db *DB) Listing(ctx context.Context, parent uint64, after string, limit int) ([]Node, error) {
	q, done := db.reader()
	defer done()
	rows, err := q.QueryContext(ctx, `SELECT ino, name, kind, mode,
		CASE kind WHEN ? THEN length(CAST(target AS BLOB)) ELSE size END, mtime, ctime
		FROM nodes WHERE parent = ? AND name > ? ORDER BY name LIMIT ?`, KindSymlink, parent, after, limit)
	if err != nil {
		return nil, fmt.Errorf("list %d: %w", parent, err)
	}
	defer rows.Close()
	var out []Node
	for rows.Next() {
		var n Node
		if err := rows.Scan(&n.Ino, &n.Name, &n.Kind, &n.Mode, &n.Size, &n.Mtime, &n.Ctime); err != nil {
			return nil, fmt.Errorf("list %d: %w", parent, err)
		}
		n.Parent = parent
		if out == nil {
			// Most directories are small; limit is what a page may hold.
			out = make([]Node, 0, min(limit, 64))
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list %d: %w", parent, err)
	}
	return out, nil
}

// Stats counts nodes for statfs and status.
func (db *DB) Stats(ctx context.Context) (nodes, dirty int64, err error) {
	q, done := db.reader()
	defer done()
	if err := q.QueryRowContext(ctx, `SELECT count(*) FROM nodes`).Scan(&nodes); err != nil {
		return 0, 0, fmt.Errorf("count nodes: %w", err)
	}
	if err := q.QueryRowContext(ctx, pendingCountQuery, FlagContent).Scan(&dirty); err != nil {
		return 0, 0, fmt.Errorf("count dirty nodes: %w", err)
	}
	return nodes, dirty, nil
}

// GetKV reads a key-value state entry.
func (db *DB) GetKV(ctx context.Context, key string) ([]byte, bool, error) {
	var v []byte
	q, done := db.reader()
	defer done()
	err := q.QueryRowContext(ctx, `SELECT v FROM kv WHERE k = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("get state %s: %w", key, err)
	}
	return v, true, nil
}

// Update runs fn in one write transaction, committed if fn returns nil.
//
// On a database opened with OpenBatched, the transaction is a batch that
// other Updates share: Update returns once fn's writes are in the redo
// log, and a failing fn's writes are taken back. fn reads through tx only:
// a DB method called from fn waits for the batch fn holds (a merge that
// reads the blob index calls Flush first, so its reads use the pool).
func (db *DB) Update(ctx context.Context, fn func(*Tx) error) error {
	if db.b != nil {
		return db.updateBatched(ctx, fn)
	}
	return db.updateDirect(ctx, fn)
}

func (db *DB) updateDirect(ctx context.Context, fn func(*Tx) error) error {
	t, err := db.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	tx := &Tx{ctx: ctx, tx: t, q: cq{c: db.wc, tx: t}}
	if err := fn(tx); err != nil {
		_ = t.Rollback()
		return err
	}
	if err := t.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// Tx is a write transaction.
type Tx struct {
	ctx context.Context
	tx  runner // the transaction, or the batch's connection inside BEGIN
	q   cq
	rec *recorder // the statements that wrote, for the redo log; nil if not logged
}

// record logs a write statement run other than through ExecContext.
func (tx *Tx) record(query string, args []any) error {
	if tx.rec == nil {
		return nil
	}
	return tx.rec.add(query, args)
}

// Get reads a whole node.
func (tx *Tx) Get(ino uint64) (Node, error) { return getNode(tx.ctx, tx.q, ino, true) }

// Lookup finds a whole child node by name.
func (tx *Tx) Lookup(parent uint64, name string) (Node, error) {
	return lookupNode(tx.ctx, tx.q, parent, name, true)
}

// Children lists whole children, as DB.Children.
func (tx *Tx) Children(parent uint64, after string, limit int) ([]Node, error) {
	return children(tx.ctx, tx.q, parent, after, limit, true)
}

// HasChildren reports whether a directory has any child.
func (tx *Tx) HasChildren(ino uint64) (bool, error) {
	var one int
	err := tx.q.QueryRowContext(tx.ctx, `SELECT 1 FROM nodes WHERE parent = ? LIMIT 1`, ino).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("check children of %d: %w", ino, err)
	}
	return true, nil
}

// Insert adds a node and returns its new inode number. n.Ino is ignored.
func (tx *Tx) Insert(n *Node) (uint64, error) {
	res, err := tx.q.ExecContext(tx.ctx, `INSERT INTO nodes (parent, name, kind, mode, size, mtime, ctime, target, xattrs, chunks, tree, flags, staging, inline)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		n.Parent, n.Name, n.Kind, n.Mode, n.Size, n.Mtime, n.Ctime, n.Target, n.Xattrs, n.Chunks, treeCol(n.Tree), n.Flags, n.Staging, n.Inline)
	if isUniqueViolation(err) {
		return 0, fmt.Errorf("insert %q in %d: %w", n.Name, n.Parent, ErrExists)
	}
	if err != nil {
		return 0, fmt.Errorf("insert %q in %d: %w", n.Name, n.Parent, err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("insert %q in %d: %w", n.Name, n.Parent, err)
	}
	n.Ino = uint64(id)
	return n.Ino, nil
}

func treeCol(id crypto.ID) any {
	if id.IsZero() {
		return nil
	}
	return id[:]
}

// Put rewrites every column of an existing node.
func (tx *Tx) Put(n *Node) error {
	_, err := tx.q.ExecContext(tx.ctx, `UPDATE nodes SET parent = ?, name = ?, kind = ?, mode = ?, size = ?, mtime = ?, ctime = ?,
		target = ?, xattrs = ?, chunks = ?, tree = ?, flags = ?, staging = ?, inline = ? WHERE ino = ?`,
		n.Parent, n.Name, n.Kind, n.Mode, n.Size, n.Mtime, n.Ctime, n.Target, n.Xattrs, n.Chunks, treeCol(n.Tree), n.Flags, n.Staging, n.Inline, n.Ino)
	if err != nil {
		return fmt.Errorf("update node %d: %w", n.Ino, err)
	}
	return nil
}

// SetAttrs updates the small attributes of a node (not xattrs, chunks, tree).
func (tx *Tx) SetAttrs(n *Node) error {
	_, err := tx.q.ExecContext(tx.ctx, `UPDATE nodes SET parent = ?, name = ?, mode = ?, size = ?, mtime = ?, ctime = ?, flags = ?, staging = ? WHERE ino = ?`,
		n.Parent, n.Name, n.Mode, n.Size, n.Mtime, n.Ctime, n.Flags, n.Staging, n.Ino)
	if err != nil {
		return fmt.Errorf("update node %d: %w", n.Ino, err)
	}
	return nil
}

// SetTime sets a node's modification and change times.
func (tx *Tx) SetTime(ino uint64, mtime, ctime int64) error {
	if _, err := tx.q.ExecContext(tx.ctx, `UPDATE nodes SET mtime = ?, ctime = ? WHERE ino = ?`, mtime, ctime, ino); err != nil {
		return fmt.Errorf("set times of %d: %w", ino, err)
	}
	return nil
}

// Delete removes a node row.
func (tx *Tx) Delete(ino uint64) error {
	if _, err := tx.q.ExecContext(tx.ctx, `DELETE FROM nodes WHERE ino = ?`, ino); err != nil {
		return fmt.Errorf("delete node %d: %w", ino, err)
	}
	return nil
}

// MarkChanged sets FlagChanged on ino and on every ancestor up to the first
// one already marked (whose ancestors are marked by the invariant).
func (tx *Tx) MarkChanged(ino uint64) error {
	for ino != OrphanParent {
		var parent uint64
		var flags Flags
		err := tx.q.QueryRowContext(tx.ctx, `SELECT parent, flags FROM nodes WHERE ino = ?`, ino).Scan(&parent, &flags)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("mark %d changed: %w", ino, err)
		}
		if flags&FlagChanged != 0 {
			return nil
		}
		if _, err := tx.q.ExecContext(tx.ctx, `UPDATE nodes SET flags = flags | ? WHERE ino = ?`, FlagChanged, ino); err != nil {
			return fmt.Errorf("mark %d changed: %w", ino, err)
		}
		ino = parent
	}
	return nil
}

// SetFlags replaces a node's flags.
func (tx *Tx) SetFlags(ino uint64, f Flags) error {
	if _, err := tx.q.ExecContext(tx.ctx, `UPDATE nodes SET flags = ? WHERE ino = ?`, f, ino); err != nil {
		return fmt.Errorf("set flags of %d: %w", ino, err)
	}
	return nil
}

// SetXattrs replaces a node's encoded extended attributes.
func (tx *Tx) SetXattrs(ino uint64, x []byte, ctime int64) error {
	if _, err := tx.q.ExecContext(tx.ctx, `UPDATE nodes SET xattrs = ?, ctime = ? WHERE ino = ?`, x, ctime, ino); err != nil {
		return fmt.Errorf("set xattrs of %d: %w", ino, err)
	}
	return nil
}

// Orphans lists nodes unlinked while open (left over after a crash).
func (tx *Tx) Orphans() ([]Node, error) {
	return children(tx.ctx, tx.q, OrphanParent, "", 1<<30, false)
}

// Pending lists the files whose staging content is not yet committed.
func (tx *Tx) Pending() ([]Node, error) { return pending(tx.ctx, tx.q) }

func pending(ctx context.Context, q querier) ([]Node, error) {
	rows, err := q.QueryContext(ctx, pendingQuery, FlagContent)
	if err != nil {
		return nil, fmt.Errorf("list pending: %w", err)
	}
	defer rows.Close()
	var out []Node
	for rows.Next() {
		n, err := scanNode(rows, false)
		if err != nil {
			return nil, fmt.Errorf("list pending: %w", err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list pending: %w", err)
	}
	return out, nil
}

// SetKV writes a key-value state entry.
func (tx *Tx) SetKV(key string, v []byte) error {
	if _, err := tx.q.ExecContext(tx.ctx, `INSERT INTO kv (k, v) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v`, key, v); err != nil {
		return fmt.Errorf("set state %s: %w", key, err)
	}
	return nil
}

// GetKV reads a key-value state entry inside the transaction.
func (tx *Tx) GetKV(key string) ([]byte, bool, error) {
	var v []byte
	err := tx.q.QueryRowContext(tx.ctx, `SELECT v FROM kv WHERE k = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("get state %s: %w", key, err)
	}
	return v, true, nil
}

// FullChildren lists whole children (with xattrs and chunks), as Children.
func (db *DB) FullChildren(ctx context.Context, parent uint64, after string, limit int) ([]Node, error) {
	q, done := db.reader()
	defer done()
	return children(ctx, q, parent, after, limit, true)
}

// Pending lists the files whose staging content is not yet committed.
func (db *DB) Pending(ctx context.Context) ([]Node, error) {
	q, done := db.reader()
	defer done()
	return pending(ctx, q)
}

// SetTree sets a directory's base tree and flags.
func (tx *Tx) SetTree(ino uint64, id crypto.ID, f Flags) error {
	if _, err := tx.q.ExecContext(tx.ctx, `UPDATE nodes SET tree = ?, flags = ? WHERE ino = ?`, treeCol(id), f, ino); err != nil {
		return fmt.Errorf("set tree of %d: %w", ino, err)
	}
	return nil
}

// Path returns the database file's path.
func (db *DB) Path() string { return strings.TrimSuffix(db.wal, "-wal") }

// Xattrs reads a node's encoded extended attributes.
func (db *DB) Xattrs(ctx context.Context, ino uint64) ([]byte, error) {
	var x []byte
	q, done := db.reader()
	defer done()
	err := q.QueryRowContext(ctx, `SELECT xattrs FROM nodes WHERE ino = ?`, ino).Scan(&x)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("xattrs of %d: %w", ino, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("xattrs of %d: %w", ino, err)
	}
	return x, nil
}

// ClearCleanStaging forgets the staging files of nodes without pending
// content (local copies, removed at start).
func (tx *Tx) ClearCleanStaging() error {
	if _, err := tx.q.ExecContext(tx.ctx, `UPDATE nodes SET staging = '' WHERE staging != '' AND flags & ? = 0`, FlagContent); err != nil {
		return fmt.Errorf("clear staging: %w", err)
	}
	return nil
}

// SetMetaInline writes an open file's size, times, mode and inline content.
func (tx *Tx) SetMetaInline(ino uint64, size, mtime, ctime int64, mode uint32, inline []byte) error {
	if _, err := tx.q.ExecContext(tx.ctx, `UPDATE nodes SET size = ?, mtime = ?, ctime = ?, mode = ?, inline = ? WHERE ino = ?`,
		size, mtime, ctime, mode, inline, ino); err != nil {
		return fmt.Errorf("set attributes of %d: %w", ino, err)
	}
	return nil
}

// SetStaging names a node's staging file, which replaces any inline content.
func (tx *Tx) SetStaging(ino uint64, name string) error {
	if _, err := tx.q.ExecContext(tx.ctx, `UPDATE nodes SET staging = ?, inline = NULL WHERE ino = ?`, name, ino); err != nil {
		return fmt.Errorf("set staging of %d: %w", ino, err)
	}
	return nil
}

// SetMeta writes an open file's size, times and mode.
func (tx *Tx) SetMeta(ino uint64, size, mtime, ctime int64, mode uint32) error {
	if _, err := tx.q.ExecContext(tx.ctx, `UPDATE nodes SET size = ?, mtime = ?, ctime = ?, mode = ? WHERE ino = ?`, size, mtime, ctime, mode, ino); err != nil {
		return fmt.Errorf("set attributes of %d: %w", ino, err)
	}
	return nil
}

// TouchDir records a change to a directory's entries: it checks that ino
// is a directory, sets its times and marks it and its ancestors changed.
func (tx *Tx) TouchDir(ino uint64, t int64) error {
	var parent uint64
	var flags Flags
	var kind Kind
	err := tx.q.QueryRowContext(tx.ctx, `SELECT parent, flags, kind FROM nodes WHERE ino = ?`, ino).Scan(&parent, &flags, &kind)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("directory %d: %w", ino, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("directory %d: %w", ino, err)
	}
	if kind != KindDir {
		return fmt.Errorf("node %d: %w", ino, ErrNotDir)
	}
	if _, err := tx.q.ExecContext(tx.ctx, `UPDATE nodes SET mtime = ?, ctime = ?, flags = flags | ? WHERE ino = ?`, t, t, FlagChanged, ino); err != nil {
		return fmt.Errorf("touch directory %d: %w", ino, err)
	}
	if flags&FlagChanged != 0 {
		return nil
	}
	return tx.MarkChanged(parent)
}

// Chattr sets a node's mode and/or modification time and its change time,
// marks it changed (unless it is an orphan) with its ancestors, and returns
// the updated node without xattrs and chunks.
func (tx *Tx) Chattr(ino uint64, mode *uint32, mtime *int64, ctime int64) (Node, error) {
	var m, mt any
	if mode != nil {
		m = *mode
	}
	if mtime != nil {
		mt = *mtime
	}
	const query = `UPDATE nodes SET mode = COALESCE(?, mode), mtime = COALESCE(?, mtime), ctime = ?,
		flags = CASE WHEN parent != ? OR ino = ? THEN flags | ? ELSE flags END WHERE ino = ? RETURNING ` + attrCols
	args := []any{m, mt, ctime, OrphanParent, RootIno, FlagChanged, ino}
	n, err := scanNode(tx.q.QueryRowContext(tx.ctx, query, args...), false)
	if err != nil {
		return Node{}, fmt.Errorf("change attributes of %d: %w", ino, err)
	}
	// A write through a query: ExecContext did not see it.
	if err := tx.record(query, args); err != nil {
		return Node{}, err
	}
	if n.Parent != OrphanParent {
		if err := tx.MarkChanged(n.Parent); err != nil {
			return Node{}, err
		}
	}
	return n, nil
}

// SetContent records a file's uploaded content: its chunk list and size
// become the synced content, pending content (FlagContent, inline) is
// cleared. With dropStaging the row also forgets its staging file, whose
// name it returns for removal. ErrNotFound if the node is gone. It reads
// and writes only what changes, where Get and Put would read and rewrite
// the whole row with its inline content.
func (tx *Tx) SetContent(ino uint64, chunks []byte, size int64, dropStaging bool) (string, error) {
	var staging string
	err := tx.q.QueryRowContext(tx.ctx, `SELECT staging FROM nodes WHERE ino = ?`, ino).Scan(&staging)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("set content of %d: %w", ino, ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("set content of %d: %w", ino, err)
	}
	keep := staging
	if dropStaging {
		keep = ""
	}
	if _, err := tx.q.ExecContext(tx.ctx, `UPDATE nodes SET chunks = ?, size = ?, inline = NULL, flags = (flags & ?) | ?, staging = ? WHERE ino = ?`,
		chunks, size, ^FlagContent, FlagSynced, keep, ino); err != nil {
		return "", fmt.Errorf("set content of %d: %w", ino, err)
	}
	if !dropStaging {
		return "", nil
	}
	return staging, nil
}
