package localdb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

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

// LookupBlob finds a blob in the local index.
func (db *DB) LookupBlob(ctx context.Context, id crypto.ID) (BlobLocation, bool, error) {
	var loc BlobLocation
	err := db.r.QueryRowContext(ctx, `SELECT pack, off, len FROM blobs WHERE id = ?`, id[:]).Scan(&loc.Pack, &loc.Offset, &loc.Length)
	if errors.Is(err, sql.ErrNoRows) {
		return BlobLocation{}, false, nil
	}
	if err != nil {
		return BlobLocation{}, false, fmt.Errorf("lookup blob %s: %w", id.Short(), err)
	}
	return loc, true, nil
}

// AddBlobs adds index entries; an ID already present keeps its first location.
func (db *DB) AddBlobs(ctx context.Context, entries []BlobEntry) error {
	if len(entries) == 0 {
		return nil
	}
	return db.Update(ctx, func(tx *Tx) error {
		stmt, err := tx.tx.PrepareContext(ctx, `INSERT OR IGNORE INTO blobs (id, pack, off, len) VALUES (?, ?, ?, ?)`)
		if err != nil {
			return fmt.Errorf("add blobs: %w", err)
		}
		defer stmt.Close()
		for _, e := range entries {
			if _, err := stmt.ExecContext(ctx, e.ID[:], e.Pack, e.Offset, e.Length); err != nil {
				return fmt.Errorf("add blob %s: %w", e.ID.Short(), err)
			}
		}
		return nil
	})
}
