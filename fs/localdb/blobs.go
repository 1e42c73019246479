package localdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"

	"github.com/anysync/anysync/crypto"
)

// BlobLocation says where a blob is stored: pack name, offset and length.
type BlobLocation struct {
	Pack           string
	Offset, Length uint32
}

// BlobEntry is one blob index entry.
type BlobEntry struct {
	ID crypto.ID
	BlobLocation
}

// HasCommittedBlob reports whether the local index holds a blob, reading
// only what is committed to the database: on a batched database it does not
// wait for the open batch, and misses entries the batch adds.
func (db *DB) HasCommittedBlob(ctx context.Context, id crypto.ID) (bool, error) {
	var one int
	err := db.rq.QueryRowContext(ctx, `SELECT 1 FROM blobs WHERE id = ?`, id[:]).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("look up blob %s: %w", id.Short(), err)
	}
	return true, nil
}

// LookupBlob finds a blob in the local index.
func (db *DB) LookupBlob(ctx context.Context, id crypto.ID) (BlobLocation, bool, error) {
	var loc BlobLocation
	q, done := db.reader()
	defer done()
	err := q.QueryRowContext(ctx, `SELECT pack, off, len FROM blobs WHERE id = ?`, id[:]).Scan(&loc.Pack, &loc.Offset, &loc.Length)
	if errors.Is(err, sql.ErrNoRows) {
		return BlobLocation{}, false, nil
	}
	if err != nil {
		return BlobLocation{}, false, fmt.Errorf("lookup blob %s: %w", id.Short(), err)
	}
	return loc, true, nil
}

// lookupChunk is how many IDs one HasBlobs query carries.
const lookupChunk = 64

// HasBlobs reports, for each of ids, whether the local index holds it: a
// query per 64 IDs rather than per ID (a backup looks up every small
// file's blob).
func (db *DB) HasBlobs(ctx context.Context, ids []crypto.ID) ([]bool, error) {
	out := make([]bool, len(ids))
	at := make(map[crypto.ID][]int, len(ids))
	for i, id := range ids {
		at[id] = append(at[id], i)
	}
	args := make([]any, 0, lookupChunk)
	for start := 0; start < len(ids); start += lookupChunk {
		chunk := ids[start:min(start+lookupChunk, len(ids))]
		args = args[:0]
		for _, id := range chunk {
			args = append(args, id[:])
		}
		q := "SELECT id FROM blobs WHERE id IN (?" + strings.Repeat(",?", len(chunk)-1) + ")"
		if err := db.hasBlobs(ctx, q, args, func(id crypto.ID) {
			for _, i := range at[id] {
				out[i] = true
			}
		}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (db *DB) hasBlobs(ctx context.Context, q string, args []any, found func(crypto.ID)) error {
	rq, done := db.reader()
	defer done()
	rows, err := rq.QueryContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("look up %d blobs: %w", len(args), err)
	}
	defer rows.Close()
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			return fmt.Errorf("look up %d blobs: %w", len(args), err)
		}
		var id crypto.ID
		if len(b) != len(id) {
			return fmt.Errorf("look up blobs: index holds a %d-byte ID", len(b))
		}
		copy(id[:], b)
		found(id)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("look up %d blobs: %w", len(args), err)
	}
	return nil
}

// AddBlobs adds index entries; an ID already present keeps its first
// location. Entries of packs this device uploaded are added uncommitted:
// they travel with the next commit, even after a crash. One INSERT carries
// up to 64 entries (a backup adds thousands per pack, an index sync
// tens of thousands).
func (db *DB) AddBlobs(ctx context.Context, entries []BlobEntry, committed bool) error {
	if len(entries) == 0 {
		return nil
	}
	return db.Update(ctx, func(tx *Tx) error {
		err := tx.chunked(len(entries), 5, func(args []any, i int) []any {
			e := entries[i]
			return append(args, e.ID[:], e.Pack, e.Offset, e.Length, committed)
		}, func(n int) string {
			return "INSERT OR IGNORE INTO blobs (id, pack, off, len, committed) VALUES (?, ?, ?, ?, ?)" +
				strings.Repeat(", (?, ?, ?, ?, ?)", n-1)
		})
		if err != nil {
			return fmt.Errorf("add blobs: %w", err)
		}
		return nil
	})
}

// chunked runs a statement over n items, lookupChunk items per execution:
// query(k) is the statement for k items, and add appends item i's
// per-item arguments. Statements are prepared on the transaction's own
// connection, never through the pool's statement cache: preparing there
// needs a second connection while this one holds the write lock, and the
// pool's other connection may be waiting for that lock (a transaction
// beside this one), which stalled both for the busy timeout and failed
// one.
func (tx *Tx) chunked(n, perItem int, add func(args []any, i int) []any, query func(k int) string) error {
	args := make([]any, 0, perItem*lookupChunk)
	var full *sql.Stmt
	defer func() {
		if full != nil {
			_ = full.Close()
		}
	}()
	for start := 0; start < n; start += lookupChunk {
		end := min(start+lookupChunk, n)
		args = args[:0]
		for i := start; i < end; i++ {
			args = add(args, i)
		}
		var err error
		if end-start == lookupChunk {
			if full == nil {
				if full, err = tx.tx.PrepareContext(tx.ctx, query(lookupChunk)); err != nil {
					return fmt.Errorf("prepare: %w", err)
				}
			}
			_, err = full.ExecContext(tx.ctx, args...)
		} else {
			_, err = tx.tx.ExecContext(tx.ctx, query(end-start), args...)
		}
		if err != nil {
			return fmt.Errorf("%d of %d rows: %w", end-start, n, err)
		}
		if err := tx.record(query(end-start), args); err != nil {
			return err
		}
	}
	return nil
}

// UncommittedBlobs returns up to limit index entries not yet sent with a
// commit.
func (db *DB) UncommittedBlobs(ctx context.Context, limit int) ([]BlobEntry, error) {
	q, done := db.reader()
	defer done()
	rows, err := q.QueryContext(ctx, `SELECT id, pack, off, len FROM blobs WHERE committed = 0 LIMIT ?`, limit)
	if err != nil {
		return nil, fmt.Errorf("list uncommitted blobs: %w", err)
	}
	defer rows.Close()
	var out []BlobEntry
	for rows.Next() {
		var e BlobEntry
		var id []byte
		if err := rows.Scan(&id, &e.Pack, &e.Offset, &e.Length); err != nil {
			return nil, fmt.Errorf("list uncommitted blobs: %w", err)
		}
		copy(e.ID[:], id)
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list uncommitted blobs: %w", err)
	}
	return out, nil
}

// MarkBlobsCommitted records that entries reached the server: one UPDATE
// per 64 IDs (a backup commits tens of thousands at once).
func (tx *Tx) MarkBlobsCommitted(entries []BlobEntry) error {
	err := tx.chunked(len(entries), 1, func(args []any, i int) []any {
		return append(args, entries[i].ID[:])
	}, func(n int) string {
		return "UPDATE blobs SET committed = 1 WHERE id IN (?" + strings.Repeat(",?", n-1) + ")"
	})
	if err != nil {
		return fmt.Errorf("mark blobs committed: %w", err)
	}
	return nil
}
