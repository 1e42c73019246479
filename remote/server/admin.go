package server

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/anysync/anysync/remote/server/meta"
)

// OpenMeta opens a data folder's metadata database, for the admin
// commands. It may run beside a serving process: SQLite's WAL mode and
// busy timeout let both write.
func OpenMeta(ctx context.Context, dir string) (*meta.SQLite, error) {
	if _, err := LoadConfig(dir); err != nil {
		return nil, err
	}
	return meta.OpenSQLite(ctx, filepath.Join(dir, DBFile))
}

// UserSummary is one line of `anysync-server user list`.
type UserSummary struct {
	meta.User
	Devices int
}

// ListUsers returns every account with its device count.
func ListUsers(ctx context.Context, m meta.Store) ([]UserSummary, error) {
	us, err := m.Users(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]UserSummary, len(us))
	for i, u := range us {
		ds, err := m.Devices(ctx, u.ID)
		if err != nil {
			return nil, err
		}
		out[i] = UserSummary{User: u, Devices: len(ds)}
	}
	return out, nil
}

func userByEmail(ctx context.Context, m meta.Store, email string) (meta.User, error) {
	e, err := NormalizeEmail(email)
	if err != nil {
		return meta.User{}, err
	}
	u, err := m.UserByEmail(ctx, e)
	if err != nil {
		return meta.User{}, fmt.Errorf("no account for %s: %w", e, err)
	}
	return u, nil
}

// SetQuota sets an account's quota in bytes (0: unlimited). A quota below
// what the account stores blocks further uploads and deletes nothing.
func SetQuota(ctx context.Context, m meta.Store, email string, quota int64) error {
	if quota < 0 {
		return fmt.Errorf("quota %d: %w", quota, ErrInvalid)
	}
	u, err := userByEmail(ctx, m, email)
	if err != nil {
		return err
	}
	return m.SetQuota(ctx, u.ID, quota)
}

// SetDisabled disables or re-enables an account. A disabled account's
// tokens are refused on their next call, and its Watch streams end within
// the server's recheck interval.
func SetDisabled(ctx context.Context, m meta.Store, email string, disabled bool) error {
	u, err := userByEmail(ctx, m, email)
	if err != nil {
		return err
	}
	return m.SetDisabled(ctx, u.ID, disabled)
}
