package meta

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/anysync/anysync/crypto"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// migrations are applied in order; PRAGMA user_version counts the applied
// ones. Append new steps, never edit a released one.
var migrations = []string{
	`CREATE TABLE users (
		num INTEGER PRIMARY KEY,
		id TEXT NOT NULL UNIQUE,
		email TEXT NOT NULL UNIQUE,
		verifier BLOB NOT NULL,
		scrypt_n INTEGER NOT NULL,
		scrypt_r INTEGER NOT NULL,
		scrypt_p INTEGER NOT NULL,
		salt BLOB NOT NULL,
		master_keys BLOB NOT NULL,
		box_public_key BLOB NOT NULL,
		quota INTEGER NOT NULL DEFAULT 0,
		used INTEGER NOT NULL DEFAULT 0,
		disabled INTEGER NOT NULL DEFAULT 0,
		created_ms INTEGER NOT NULL,
		head_seq INTEGER NOT NULL DEFAULT 0,
		head_version BLOB
	);
	CREATE TABLE devices (
		id TEXT PRIMARY KEY,
		user_num INTEGER NOT NULL REFERENCES users(num),
		name TEXT NOT NULL,
		client_version TEXT NOT NULL,
		token_hash BLOB NOT NULL UNIQUE,
		created_ms INTEGER NOT NULL,
		last_seen_ms INTEGER NOT NULL
	);
	CREATE INDEX devices_by_user ON devices(user_num);
	CREATE TABLE versions (
		user_num INTEGER NOT NULL REFERENCES users(num),
		seq INTEGER NOT NULL,
		version_id BLOB NOT NULL,
		parent_id BLOB,
		time_ms INTEGER NOT NULL,
		device_id TEXT NOT NULL,
		PRIMARY KEY (user_num, seq)
	) WITHOUT ROWID;
	CREATE TABLE packs (
		num INTEGER PRIMARY KEY,
		user_num INTEGER NOT NULL REFERENCES users(num),
		name TEXT NOT NULL,
		size INTEGER NOT NULL,
		state INTEGER NOT NULL,
		updated_ms INTEGER NOT NULL,
		refs INTEGER NOT NULL DEFAULT 0,
		UNIQUE (user_num, name)
	);
	CREATE INDEX packs_by_state ON packs(state, updated_ms);
	CREATE TABLE blobs (
		user_num INTEGER NOT NULL,
		seq INTEGER NOT NULL,
		n INTEGER NOT NULL,
		blob_id BLOB NOT NULL,
		pack_num INTEGER NOT NULL REFERENCES packs(num),
		off INTEGER NOT NULL,
		len INTEGER NOT NULL,
		PRIMARY KEY (user_num, seq, n)
	) WITHOUT ROWID;
	CREATE INDEX blobs_by_id ON blobs(user_num, blob_id);`,
}

// Pack states.
const (
	packUploading = 1
	packStored    = 2
	packDeleting  = 3
)

// SQLite is the embedded Store: one database file in WAL mode.
type SQLite struct {
	db *sql.DB
	// Statements of every call, prepared once: preparing (parsing and
	// planning) took about as long as running them.
	byToken *sql.Stmt // DeviceByToken
	pack    *sql.Stmt // Pack (every range download)
}

var _ Store = (*SQLite)(nil)

// OpenSQLite opens (creating if needed) the database at path and brings its
// schema up to date.
func OpenSQLite(ctx context.Context, path string) (*SQLite, error) {
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(10000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Add("_pragma", "foreign_keys(1)")
	// A big commit's index pages stay in memory until COMMIT instead of
	// spilling to the WAL page by page.
	q.Add("_pragma", "cache_size(-65536)")
	// Multi-row inserts keep a statement journal; in memory it costs no
	// system calls.
	q.Add("_pragma", "temp_store(MEMORY)")
	// Writers take the lock up front, so a read-then-write transaction
	// never fails half way with SQLITE_BUSY.
	q.Set("_txlock", "immediate")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("open metadata db %s: %w", path, err)
	}
	s := &SQLite{db: db}
	if err := s.migrate(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open metadata db %s: %w", path, err)
	}
	if err := s.prepare(ctx); err != nil {
		_ = s.Close()
		return nil, fmt.Errorf("open metadata db %s: %w", path, err)
	}
	return s, nil
}

func (s *SQLite) prepare(ctx context.Context) error {
	var err error
	s.byToken, err = s.db.PrepareContext(ctx, "SELECT "+deviceCols+
		", u.disabled FROM devices d JOIN users u ON u.num = d.user_num WHERE d.token_hash = ?")
	if err != nil {
		return fmt.Errorf("prepare device lookup: %w", err)
	}
	s.pack, err = s.db.PrepareContext(ctx, `SELECT p.size FROM packs p JOIN users u ON u.num = p.user_num
		WHERE u.id = ? AND p.name = ? AND p.state = ?`)
	if err != nil {
		return fmt.Errorf("prepare pack lookup: %w", err)
	}
	return nil
}

// SchemaVersion returns the number of applied migrations.
func (s *SQLite) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := s.db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

func (s *SQLite) migrate(ctx context.Context) error {
	v, err := s.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	if v > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than this server (%d): upgrade the server", v, len(migrations))
	}
	for i := v; i < len(migrations); i++ {
		err := s.tx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
				return err
			}
			_, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", i+1))
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate schema to version %d: %w", i+1, err)
		}
	}
	return nil
}

// Close closes the database.
func (s *SQLite) Close() error {
	for _, st := range []*sql.Stmt{s.byToken, s.pack} {
		if st != nil {
			_ = st.Close()
		}
	}
	return s.db.Close()
}

func (s *SQLite) tx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func userNum(ctx context.Context, q querier, userID string) (int64, error) {
	var n int64
	err := q.QueryRowContext(ctx, "SELECT num FROM users WHERE id = ?", userID).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("user %s: %w", userID, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("look up user %s: %w", userID, err)
	}
	return n, nil
}

func isUnique(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		return se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE || se.Code() == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

func ms(t time.Time) int64 { return t.UnixMilli() }

func fromMS(v int64) time.Time { return time.UnixMilli(v).UTC() }

func toID(b []byte) crypto.ID {
	var id crypto.ID
	copy(id[:], b)
	return id
}

func idOrNil(id crypto.ID) []byte {
	if id.IsZero() {
		return nil
	}
	return id[:]
}

// CreateUser implements Store.
func (s *SQLite) CreateUser(ctx context.Context, u User, d Device) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		c := u.Credentials
		res, err := tx.ExecContext(ctx, `INSERT INTO users (id, email, verifier, scrypt_n, scrypt_r, scrypt_p, salt,
			master_keys, box_public_key, quota, created_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?)`,
			u.ID, u.Email, c.Verifier[:], c.Params.N, c.Params.R, c.Params.P, c.Params.Salt,
			c.MasterKeys, u.BoxPublicKey, u.Quota, ms(u.Created))
		if isUnique(err) {
			return fmt.Errorf("create user: %w", ErrExists)
		}
		if err != nil {
			return fmt.Errorf("create user: %w", err)
		}
		num, err := res.LastInsertId()
		if err != nil {
			return fmt.Errorf("create user: %w", err)
		}
		return insertDevice(ctx, tx, num, d)
	})
}

func insertDevice(ctx context.Context, tx *sql.Tx, userNum int64, d Device) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO devices (id, user_num, name, client_version, token_hash, created_ms, last_seen_ms)
		VALUES (?,?,?,?,?,?,?)`, d.ID, userNum, d.Name, d.ClientVersion, d.TokenHash[:], ms(d.Created), ms(d.LastSeen))
	if isUnique(err) {
		return fmt.Errorf("add device: %w", ErrExists)
	}
	if err != nil {
		return fmt.Errorf("add device: %w", err)
	}
	return nil
}

const userCols = `id, email, verifier, scrypt_n, scrypt_r, scrypt_p, salt, master_keys, box_public_key, quota, used, disabled, created_ms`

type scanner interface{ Scan(dest ...any) error }

func scanUser(r scanner) (User, error) {
	var u User
	var verifier []byte
	var created int64
	err := r.Scan(&u.ID, &u.Email, &verifier, &u.Credentials.Params.N, &u.Credentials.Params.R, &u.Credentials.Params.P,
		&u.Credentials.Params.Salt, &u.Credentials.MasterKeys, &u.BoxPublicKey, &u.Quota, &u.Used, &u.Disabled, &created)
	if err != nil {
		return User{}, err
	}
	copy(u.Credentials.Verifier[:], verifier)
	u.Created = fromMS(created)
	return u, nil
}

func (s *SQLite) userWhere(ctx context.Context, cond string, arg any) (User, error) {
	u, err := scanUser(s.db.QueryRowContext(ctx, "SELECT "+userCols+" FROM users WHERE "+cond, arg))
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, fmt.Errorf("user: %w", ErrNotFound)
	}
	if err != nil {
		return User{}, fmt.Errorf("read user: %w", err)
	}
	return u, nil
}

// UserByEmail implements Store.
func (s *SQLite) UserByEmail(ctx context.Context, email string) (User, error) {
	return s.userWhere(ctx, "email = ?", email)
}

// UserByID implements Store.
func (s *SQLite) UserByID(ctx context.Context, id string) (User, error) {
	return s.userWhere(ctx, "id = ?", id)
}

// Users implements Store.
func (s *SQLite) Users(ctx context.Context) ([]User, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+userCols+" FROM users ORDER BY email")
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return out, nil
}

func (s *SQLite) execOne(ctx context.Context, what, query string, args ...any) error {
	res, err := s.db.ExecContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return nil
}

// SetQuota implements Store.
func (s *SQLite) SetQuota(ctx context.Context, userID string, quota int64) error {
	return s.execOne(ctx, "set quota", "UPDATE users SET quota = ? WHERE id = ?", quota, userID)
}

// SetDisabled implements Store.
func (s *SQLite) SetDisabled(ctx context.Context, userID string, disabled bool) error {
	return s.execOne(ctx, "set disabled", "UPDATE users SET disabled = ? WHERE id = ?", disabled, userID)
}

// UpdateCredentials implements Store.
func (s *SQLite) UpdateCredentials(ctx context.Context, userID string, old [32]byte, c Credentials) error {
	res, err := s.db.ExecContext(ctx, `UPDATE users SET verifier = ?, scrypt_n = ?, scrypt_r = ?, scrypt_p = ?, salt = ?, master_keys = ?
		WHERE id = ? AND verifier = ?`, c.Verifier[:], c.Params.N, c.Params.R, c.Params.P, c.Params.Salt, c.MasterKeys, userID, old[:])
	if err != nil {
		return fmt.Errorf("update credentials: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("update credentials: %w", err)
	}
	if n == 0 {
		return fmt.Errorf("update credentials: %w", ErrConflict)
	}
	return nil
}

// AddDevice implements Store.
func (s *SQLite) AddDevice(ctx context.Context, d Device) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		num, err := userNum(ctx, tx, d.UserID)
		if err != nil {
			return err
		}
		return insertDevice(ctx, tx, num, d)
	})
}

const deviceCols = `d.id, u.id, d.name, d.client_version, d.token_hash, d.created_ms, d.last_seen_ms`

func scanDevice(r scanner) (Device, error) {
	var d Device
	var hash []byte
	var created, seen int64
	if err := r.Scan(&d.ID, &d.UserID, &d.Name, &d.ClientVersion, &hash, &created, &seen); err != nil {
		return Device{}, err
	}
	copy(d.TokenHash[:], hash)
	d.Created, d.LastSeen = fromMS(created), fromMS(seen)
	return d, nil
}

// DeviceByToken implements Store.
func (s *SQLite) DeviceByToken(ctx context.Context, tokenHash [32]byte) (Device, error) {
	var d Device
	var hash []byte
	var created, seen int64
	err := s.byToken.QueryRowContext(ctx, tokenHash[:]).Scan(&d.ID, &d.UserID, &d.Name, &d.ClientVersion, &hash, &created, &seen, &d.UserDisabled)
	if err == nil {
		copy(d.TokenHash[:], hash)
		d.Created, d.LastSeen = fromMS(created), fromMS(seen)
	}
	if errors.Is(err, sql.ErrNoRows) {
		return Device{}, fmt.Errorf("device: %w", ErrNotFound)
	}
	if err != nil {
		return Device{}, fmt.Errorf("read device: %w", err)
	}
	return d, nil
}

// Devices implements Store.
func (s *SQLite) Devices(ctx context.Context, userID string) ([]Device, error) {
	rows, err := s.db.QueryContext(ctx, "SELECT "+deviceCols+
		" FROM devices d JOIN users u ON u.num = d.user_num WHERE u.id = ? ORDER BY d.created_ms, d.id", userID)
	if err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	defer rows.Close()
	var out []Device
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, fmt.Errorf("list devices: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list devices: %w", err)
	}
	return out, nil
}

// RevokeDevice implements Store. The row goes: a revoked token hash must
// match nothing, and nothing else refers to a device row.
func (s *SQLite) RevokeDevice(ctx context.Context, userID, deviceID string) error {
	return s.execOne(ctx, "revoke device", `DELETE FROM devices WHERE id = ? AND user_num = (SELECT num FROM users WHERE id = ?)`,
		deviceID, userID)
}

// TouchDevice implements Store.
func (s *SQLite) TouchDevice(ctx context.Context, deviceID string, t time.Time) error {
	return s.execOne(ctx, "touch device", "UPDATE devices SET last_seen_ms = ? WHERE id = ?", ms(t), deviceID)
}

func head(ctx context.Context, q querier, userID string) (int64, Head, error) {
	var num int64
	var h Head
	var v []byte
	err := q.QueryRowContext(ctx, "SELECT num, head_seq, head_version FROM users WHERE id = ?", userID).Scan(&num, &h.Seq, &v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, Head{}, fmt.Errorf("user %s: %w", userID, ErrNotFound)
	}
	if err != nil {
		return 0, Head{}, fmt.Errorf("read head: %w", err)
	}
	h.Version = toID(v)
	return num, h, nil
}

// Head implements Store.
func (s *SQLite) Head(ctx context.Context, userID string) (Head, error) {
	_, h, err := head(ctx, s.db, userID)
	return h, err
}

// Versions implements Store.
func (s *SQLite) Versions(ctx context.Context, userID string, afterSeq uint64, limit int) ([]Version, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT v.seq, v.version_id, v.parent_id, v.time_ms, v.device_id
		FROM versions v JOIN users u ON u.num = v.user_num WHERE u.id = ? AND v.seq > ? ORDER BY v.seq LIMIT ?`,
		userID, afterSeq, limit)
	if err != nil {
		return nil, fmt.Errorf("list versions: %w", err)
	}
	defer rows.Close()
	var out []Version
	for rows.Next() {
		var v Version
		var id, parent []byte
		var t int64
		if err := rows.Scan(&v.Seq, &id, &parent, &t, &v.DeviceID); err != nil {
			return nil, fmt.Errorf("list versions: %w", err)
		}
		v.ID, v.Parent, v.Time = toID(id), toID(parent), fromMS(t)
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list versions: %w", err)
	}
	return out, nil
}

type packRow struct {
	num  int64
	size int64
	refs int64 // entries of this commit in the pack
}

// Commit implements Store.
func (s *SQLite) Commit(ctx context.Context, userID string, c Commit) (Head, error) {
	var out Head
	err := s.tx(ctx, func(tx *sql.Tx) error {
		num, h, err := head(ctx, tx, userID)
		if err != nil {
			return err
		}
		if h.Seq != c.ExpectedSeq {
			return fmt.Errorf("commit: head is at %d, expected %d: %w", h.Seq, c.ExpectedSeq, ErrHeadMoved)
		}
		if c.Parent != h.Version {
			return fmt.Errorf("commit: parent %s is not the head version %s: %w", c.Parent.Short(), h.Version.Short(), ErrBadCommit)
		}
		packs := make(map[string]packRow)
		versionIndexed := false
		for _, e := range c.Entries {
			p, ok := packs[e.Pack]
			if !ok {
				err := tx.QueryRowContext(ctx, "SELECT num, size FROM packs WHERE user_num = ? AND name = ? AND state = ?",
					num, e.Pack, packStored).Scan(&p.num, &p.size)
				if errors.Is(err, sql.ErrNoRows) {
					return fmt.Errorf("commit: pack %s is not stored: %w", e.Pack, ErrBadCommit)
				}
				if err != nil {
					return fmt.Errorf("commit: look up pack: %w", err)
				}
			}
			if e.Length == 0 || int64(e.Offset)+int64(e.Length) > p.size {
				return fmt.Errorf("commit: blob %s at %d+%d lies outside pack %s of %d bytes: %w",
					e.Blob.Short(), e.Offset, e.Length, e.Pack, p.size, ErrBadCommit)
			}
			p.refs++
			packs[e.Pack] = p
			if e.Blob == c.Version {
				versionIndexed = true
			}
		}
		if !versionIndexed {
			var one int
			err := tx.QueryRowContext(ctx, "SELECT 1 FROM blobs WHERE user_num = ? AND blob_id = ? LIMIT 1", num, c.Version[:]).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				return fmt.Errorf("commit: version blob %s is not in the index: %w", c.Version.Short(), ErrBadCommit)
			}
			if err != nil {
				return fmt.Errorf("commit: look up version blob: %w", err)
			}
		}
		seq := h.Seq + 1
		if err := insertEntries(ctx, tx, num, seq, c.Entries, packs); err != nil {
			return err
		}
		// Reference counts stand in for an index of blobs by pack, which
		// would cost every insert a third B-tree.
		for _, p := range packs {
			if _, err := tx.ExecContext(ctx, "UPDATE packs SET refs = refs + ? WHERE num = ?", p.refs, p.num); err != nil {
				return fmt.Errorf("commit: count pack references: %w", err)
			}
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO versions (user_num, seq, version_id, parent_id, time_ms, device_id) VALUES (?,?,?,?,?,?)",
			num, seq, c.Version[:], idOrNil(c.Parent), ms(c.Time), c.DeviceID); err != nil {
			return fmt.Errorf("commit: insert version: %w", err)
		}
		if _, err := tx.ExecContext(ctx, "UPDATE users SET head_seq = ?, head_version = ? WHERE num = ?", seq, c.Version[:], num); err != nil {
			return fmt.Errorf("commit: move head: %w", err)
		}
		out = Head{Seq: seq, Version: c.Version}
		return nil
	})
	return out, err
}

// insertBatch rows go in one INSERT: per-statement overhead, not SQLite's
// B-tree work, dominates single-row inserts.
const insertBatch = 128

func insertEntries(ctx context.Context, tx *sql.Tx, userNum int64, seq uint64, es []IndexEntry, packs map[string]packRow) error {
	const row = ",(?,?,?,?,?,?,?)"
	var full *sql.Stmt
	defer func() {
		if full != nil {
			_ = full.Close()
		}
	}()
	args := make([]any, 0, 7*insertBatch)
	for start := 0; start < len(es); start += insertBatch {
		part := es[start:min(start+insertBatch, len(es))]
		args = args[:0]
		for i, e := range part {
			args = append(args, userNum, seq, start+i, e.Blob[:], packs[e.Pack].num, e.Offset, e.Length)
		}
		query := "INSERT INTO blobs (user_num, seq, n, blob_id, pack_num, off, len) VALUES " + strings.Repeat(row, len(part))[1:]
		var err error
		if len(part) == insertBatch {
			if full == nil {
				if full, err = tx.PrepareContext(ctx, query); err != nil {
					return fmt.Errorf("commit: insert index entries: %w", err)
				}
			}
			_, err = full.ExecContext(ctx, args...)
		} else {
			_, err = tx.ExecContext(ctx, query, args...)
		}
		if err != nil {
			return fmt.Errorf("commit: insert index entries: %w", err)
		}
	}
	return nil
}

// IndexSince implements Store.
func (s *SQLite) IndexSince(ctx context.Context, userID string, afterSeq uint64, limit int) ([]IndexEntry, uint64, error) {
	// Versions up to the head are immutable, so reading the head first
	// makes the page consistent without a read transaction.
	num, h, err := head(ctx, s.db, userID)
	if err != nil {
		return nil, afterSeq, err
	}
	if afterSeq >= h.Seq {
		return nil, afterSeq, nil
	}
	// Count entries per version to cut the page at a version boundary.
	rows, err := s.db.QueryContext(ctx, `SELECT seq, COUNT(*) FROM blobs WHERE user_num = ? AND seq > ? AND seq <= ?
		GROUP BY seq ORDER BY seq`, num, afterSeq, h.Seq)
	if err != nil {
		return nil, afterSeq, fmt.Errorf("index since %d: %w", afterSeq, err)
	}
	last, total, full := afterSeq, 0, false
	for rows.Next() {
		var seq uint64
		var n int
		if err := rows.Scan(&seq, &n); err != nil {
			rows.Close()
			return nil, afterSeq, fmt.Errorf("index since %d: %w", afterSeq, err)
		}
		if total > 0 && total+n > limit {
			full = true
			break
		}
		last, total = seq, total+n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, afterSeq, fmt.Errorf("index since %d: %w", afterSeq, err)
	}
	next := last
	if !full {
		// Everything up to the head fits, including versions without
		// entries after the last one with some.
		next = h.Seq
	}
	if total == 0 {
		return nil, next, nil
	}
	rows, err = s.db.QueryContext(ctx, `SELECT b.blob_id, p.name, b.off, b.len FROM blobs b JOIN packs p ON p.num = b.pack_num
		WHERE b.user_num = ? AND b.seq > ? AND b.seq <= ? ORDER BY b.seq, b.n`, num, afterSeq, last)
	if err != nil {
		return nil, afterSeq, fmt.Errorf("index since %d: %w", afterSeq, err)
	}
	defer rows.Close()
	out := make([]IndexEntry, 0, total)
	for rows.Next() {
		var e IndexEntry
		var id []byte
		if err := rows.Scan(&id, &e.Pack, &e.Offset, &e.Length); err != nil {
			return nil, afterSeq, fmt.Errorf("index since %d: %w", afterSeq, err)
		}
		e.Blob = toID(id)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, afterSeq, fmt.Errorf("index since %d: %w", afterSeq, err)
	}
	return out, next, nil
}

// HasBlobs implements Store.
func (s *SQLite) HasBlobs(ctx context.Context, userID string, ids []crypto.ID) ([]bool, error) {
	num, err := userNum(ctx, s.db, userID)
	if err != nil {
		return nil, err
	}
	out := make([]bool, len(ids))
	where := make(map[crypto.ID][]int, len(ids))
	for i, id := range ids {
		where[id] = append(where[id], i)
	}
	const batch = 500
	for start := 0; start < len(ids); start += batch {
		part := ids[start:min(start+batch, len(ids))]
		args := make([]any, 0, len(part)+1)
		args = append(args, num)
		for _, id := range part {
			args = append(args, id[:])
		}
		query := "SELECT DISTINCT blob_id FROM blobs WHERE user_num = ? AND blob_id IN (?" + strings.Repeat(",?", len(part)-1) + ")"
		rows, err := s.db.QueryContext(ctx, query, args...)
		if err != nil {
			return nil, fmt.Errorf("has blobs: %w", err)
		}
		for rows.Next() {
			var id []byte
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, fmt.Errorf("has blobs: %w", err)
			}
			for _, i := range where[toID(id)] {
				out[i] = true
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("has blobs: %w", err)
		}
	}
	return out, nil
}

// ReservePack implements Store.
func (s *SQLite) ReservePack(ctx context.Context, userID, name string, size int64, now time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var num, quota, used int64
		err := tx.QueryRowContext(ctx, "SELECT num, quota, used FROM users WHERE id = ?", userID).Scan(&num, &quota, &used)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("reserve pack: user %s: %w", userID, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("reserve pack: %w", err)
		}
		var one int
		err = tx.QueryRowContext(ctx, "SELECT 1 FROM packs WHERE user_num = ? AND name = ?", num, name).Scan(&one)
		if err == nil {
			return fmt.Errorf("reserve pack %s: %w", name, ErrPackBusy)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("reserve pack: %w", err)
		}
		if quota > 0 && used+size > quota {
			return fmt.Errorf("%w: a pack of %d bytes does not fit, %d of %d bytes used", ErrQuota, size, used, quota)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO packs (user_num, name, size, state, updated_ms) VALUES (?,?,?,?,?)",
			num, name, size, packUploading, ms(now)); err != nil {
			return fmt.Errorf("reserve pack: %w", err)
		}
		if _, err := tx.ExecContext(ctx, "UPDATE users SET used = used + ? WHERE num = ?", size, num); err != nil {
			return fmt.Errorf("reserve pack: %w", err)
		}
		return nil
	})
}

func (s *SQLite) setPackState(ctx context.Context, what, userID, name string, from, to int, now time.Time) error {
	return s.execOne(ctx, what, `UPDATE packs SET state = ?, updated_ms = ?
		WHERE user_num = (SELECT num FROM users WHERE id = ?) AND name = ? AND state = ?`, to, ms(now), userID, name, from)
}

// CompletePack implements Store.
func (s *SQLite) CompletePack(ctx context.Context, userID, name string) error {
	return s.setPackState(ctx, "complete pack "+name, userID, name, packUploading, packStored, time.Now())
}

// BeginDeletePack implements Store.
func (s *SQLite) BeginDeletePack(ctx context.Context, userID, name string, now time.Time) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var pnum, refs int64
		err := tx.QueryRowContext(ctx, `SELECT p.num, p.refs FROM packs p JOIN users u ON u.num = p.user_num
			WHERE u.id = ? AND p.name = ? AND p.state = ?`, userID, name, packStored).Scan(&pnum, &refs)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("delete pack %s: %w", name, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("delete pack %s: %w", name, err)
		}
		if refs > 0 {
			return fmt.Errorf("delete pack %s: %d index entries: %w", name, refs, ErrPackInUse)
		}
		if _, err := tx.ExecContext(ctx, "UPDATE packs SET state = ?, updated_ms = ? WHERE num = ?", packDeleting, ms(now), pnum); err != nil {
			return fmt.Errorf("delete pack %s: %w", name, err)
		}
		return nil
	})
}

// RestorePack implements Store.
func (s *SQLite) RestorePack(ctx context.Context, userID, name string) error {
	return s.setPackState(ctx, "restore pack "+name, userID, name, packDeleting, packStored, time.Now())
}

// DropPack implements Store.
func (s *SQLite) DropPack(ctx context.Context, userID, name string) error {
	return s.tx(ctx, func(tx *sql.Tx) error {
		var unum, pnum, size int64
		err := tx.QueryRowContext(ctx, `SELECT u.num, p.num, p.size FROM packs p JOIN users u ON u.num = p.user_num
			WHERE u.id = ? AND p.name = ?`, userID, name).Scan(&unum, &pnum, &size)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("drop pack %s: %w", name, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("drop pack %s: %w", name, err)
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM packs WHERE num = ?", pnum); err != nil {
			return fmt.Errorf("drop pack %s: %w", name, err)
		}
		if _, err := tx.ExecContext(ctx, "UPDATE users SET used = used - ? WHERE num = ?", size, unum); err != nil {
			return fmt.Errorf("drop pack %s: %w", name, err)
		}
		return nil
	})
}

// StalePacks implements Store.
func (s *SQLite) StalePacks(ctx context.Context, before time.Time) ([]PackRef, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT u.id, p.name FROM packs p JOIN users u ON u.num = p.user_num
		WHERE p.state IN (?, ?) AND p.updated_ms < ? ORDER BY p.num`, packUploading, packDeleting, ms(before))
	if err != nil {
		return nil, fmt.Errorf("stale packs: %w", err)
	}
	defer rows.Close()
	var out []PackRef
	for rows.Next() {
		var r PackRef
		if err := rows.Scan(&r.UserID, &r.Name); err != nil {
			return nil, fmt.Errorf("stale packs: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("stale packs: %w", err)
	}
	return out, nil
}

// Pack implements Store.
func (s *SQLite) Pack(ctx context.Context, userID, name string) (Pack, error) {
	p := Pack{Name: name}
	err := s.pack.QueryRowContext(ctx, userID, name, packStored).Scan(&p.Size)
	if errors.Is(err, sql.ErrNoRows) {
		return Pack{}, fmt.Errorf("pack %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return Pack{}, fmt.Errorf("pack %s: %w", name, err)
	}
	return p, nil
}

// Packs implements Store.
func (s *SQLite) Packs(ctx context.Context, userID, after string, limit int) ([]Pack, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT p.name, p.size FROM packs p JOIN users u ON u.num = p.user_num
		WHERE u.id = ? AND p.name > ? AND p.state = ? ORDER BY p.name LIMIT ?`, userID, after, packStored, limit)
	if err != nil {
		return nil, fmt.Errorf("list packs: %w", err)
	}
	defer rows.Close()
	var out []Pack
	for rows.Next() {
		var p Pack
		if err := rows.Scan(&p.Name, &p.Size); err != nil {
			return nil, fmt.Errorf("list packs: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list packs: %w", err)
	}
	return out, nil
}
