// Package meta is the server's metadata storage: accounts, devices, versions,
// the blob index and the pack table. The service talks only to the Store
// interface; SQLite (embedded, the default) implements it here, and a
// PostgreSQL implementation can be added beside it without touching the
// service. Every method that changes more than one row is one transaction.
package meta

import (
	"context"
	"errors"
	"time"

	"github.com/anysync/anysync/crypto"
)

// Errors returned (wrapped) by every Store implementation.
var (
	ErrNotFound  = errors.New("not found")
	ErrExists    = errors.New("already exists")
	ErrHeadMoved = errors.New("head moved")
	ErrQuota     = errors.New("quota exceeded")
	ErrPackInUse = errors.New("pack is referenced by the index")
	ErrBadCommit = errors.New("commit refers to data that is not stored")
	ErrConflict  = errors.New("concurrent update")
	ErrPackBusy  = errors.New("a pack of that name exists or is being uploaded or deleted")
)

// Params are an account's scrypt parameters.
type Params struct {
	N, R, P int
	Salt    []byte
}

// Credentials are what a password change replaces.
type Credentials struct {
	Verifier   [32]byte
	Params     Params
	MasterKeys []byte
}

// User is an account.
type User struct {
	ID           string
	Email        string // normalised (lower case, trimmed)
	Credentials  Credentials
	BoxPublicKey []byte
	Quota        int64 // bytes; 0 means unlimited
	Used         int64 // bytes of packs stored or being stored
	Disabled     bool
	Created      time.Time
}

// Device is one logged-in client of an account.
type Device struct {
	ID            string
	UserID        string
	Name          string
	ClientVersion string
	TokenHash     [32]byte
	Created       time.Time
	LastSeen      time.Time
	// UserDisabled is whether the account is disabled, read with the
	// device in one statement (set by DeviceByToken only).
	UserDisabled bool
}

// Head is an account's current version.
type Head struct {
	Seq     uint64
	Version crypto.ID
}

// Version is one committed version.
type Version struct {
	Seq      uint64
	ID       crypto.ID
	Parent   crypto.ID
	Time     time.Time
	DeviceID string
}

// IndexEntry locates a blob inside a pack.
type IndexEntry struct {
	Blob   crypto.ID
	Pack   string
	Offset uint32
	Length uint32
}

// Commit is a compare-and-swap of an account's head that also adds the
// index entries of the version's new packs.
type Commit struct {
	ExpectedSeq uint64
	Version     crypto.ID
	Parent      crypto.ID
	DeviceID    string
	Time        time.Time
	Entries     []IndexEntry
}

// Pack is a stored pack of an account.
type Pack struct {
	Name string
	Size int64
}

// PackRef names a pack of some account, for maintenance.
type PackRef struct {
	UserID string
	Name   string
}

// Store is the server's metadata storage.
type Store interface {
	// CreateUser adds an account and its first device; ErrExists if the
	// email is taken.
	CreateUser(ctx context.Context, u User, d Device) error
	// UserByEmail and UserByID return ErrNotFound for unknown accounts.
	UserByEmail(ctx context.Context, email string) (User, error)
	UserByID(ctx context.Context, id string) (User, error)
	// Users lists every account, ordered by email.
	Users(ctx context.Context) ([]User, error)
	SetQuota(ctx context.Context, userID string, quota int64) error
	SetDisabled(ctx context.Context, userID string, disabled bool) error
	// UpdateCredentials replaces the credentials if the stored verifier is
	// still old; ErrConflict otherwise.
	UpdateCredentials(ctx context.Context, userID string, old [32]byte, c Credentials) error

	// AddDevice registers a logged-in device.
	AddDevice(ctx context.Context, d Device) error
	// DeviceByToken returns the live device holding a token hash, with
	// UserDisabled set, or ErrNotFound (also for revoked devices).
	DeviceByToken(ctx context.Context, tokenHash [32]byte) (Device, error)
	// Devices lists an account's live devices, oldest first.
	Devices(ctx context.Context, userID string) ([]Device, error)
	// RevokeDevice removes a device of this account; ErrNotFound otherwise.
	RevokeDevice(ctx context.Context, userID, deviceID string) error
	TouchDevice(ctx context.Context, deviceID string, t time.Time) error

	Head(ctx context.Context, userID string) (Head, error)
	// Versions returns up to limit versions with seq > afterSeq, in order.
	Versions(ctx context.Context, userID string, afterSeq uint64, limit int) ([]Version, error)
	// Commit moves the head from c.ExpectedSeq to a new version, with its
	// index entries, in one transaction. ErrHeadMoved if the head is not at
	// c.ExpectedSeq; ErrBadCommit if an entry lies outside a stored pack of
	// this account, the parent is not the head, or the version blob is not
	// indexed.
	Commit(ctx context.Context, userID string, c Commit) (Head, error)
	// IndexSince returns the index entries of versions after afterSeq,
	// whole versions at a time: as many as fit in limit entries, but at
	// least one version. next is the last version included (afterSeq if
	// none).
	IndexSince(ctx context.Context, userID string, afterSeq uint64, limit int) (entries []IndexEntry, next uint64, err error)
	// HasBlobs reports which of ids are in the account's index.
	HasBlobs(ctx context.Context, userID string, ids []crypto.ID) ([]bool, error)

	// ReservePack records an upload in progress and charges its size to
	// the account: ErrQuota if that would exceed the quota, ErrPackBusy
	// if the name is taken in any state.
	ReservePack(ctx context.Context, userID, name string, size int64, now time.Time) error
	// CompletePack marks a reserved pack as stored.
	CompletePack(ctx context.Context, userID, name string) error
	// BeginDeletePack hides a stored pack from commits and downloads before
	// its object is deleted; ErrPackInUse if the index refers to it.
	BeginDeletePack(ctx context.Context, userID, name string, now time.Time) error
	// RestorePack undoes BeginDeletePack when the object could not be
	// deleted.
	RestorePack(ctx context.Context, userID, name string) error
	// DropPack forgets a pack in any state and credits its size back.
	DropPack(ctx context.Context, userID, name string) error
	// StalePacks lists packs left uploading or deleting since before t,
	// by a crash or a lost connection.
	StalePacks(ctx context.Context, before time.Time) ([]PackRef, error)
	// Pack returns a stored pack (not one in upload or deletion).
	Pack(ctx context.Context, userID, name string) (Pack, error)
	// Packs lists up to limit stored packs named after after, in order.
	Packs(ctx context.Context, userID, after string, limit int) ([]Pack, error)

	Close() error
}
