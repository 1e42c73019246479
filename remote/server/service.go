// Package server is the AnySync gRPC service: accounts and devices, the
// version head and blob index of each account, and pack transfer to object
// storage. It keeps metadata behind meta.Store and packs behind
// objstore.ObjectStore, and serves only over TLS.
package server

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/anysync/anysync/crypto"
	pb "github.com/anysync/anysync/proto/anysyncpb"
	"github.com/anysync/anysync/remote/server/meta"
	"github.com/anysync/anysync/store/objstore"
	"golang.org/x/sync/semaphore"
)

// RateLimit lets Burst failures through, then one every Every.
type RateLimit struct {
	Burst int
	Every time.Duration
}

// Options configure a Service. Zero values take the defaults below.
type Options struct {
	Logger *slog.Logger
	// Secret keys the fake salts of unknown emails and the email hashes
	// in logs. It must stay the same across restarts (32 bytes).
	Secret []byte
	// DefaultQuota is the quota of new accounts in bytes; 0: unlimited.
	DefaultQuota int64
	// MaxPackSize bounds one pack (default 64 MiB).
	MaxPackSize int64
	// SignupClosed refuses new accounts.
	SignupClosed bool
	// FakeParams are the scrypt parameters reported for unknown emails;
	// they should match what clients use for new accounts.
	FakeN, FakeR, FakeP int
	// AccountLimit and AddrLimit bound failed logins per account and per
	// client address.
	AccountLimit, AddrLimit RateLimit
	// RateLimitEntries bounds the memory of each rate limiter.
	RateLimitEntries int
	// WatchRecheck is how often an open Watch stream re-checks its token
	// (revocation in this process ends it at once).
	WatchRecheck time.Duration
	// UploadTimeout bounds one pack upload.
	UploadTimeout time.Duration
	// DownloadMemory bounds the bytes of range reads held in memory at
	// once, over all clients (default 256 MiB); further reads wait.
	DownloadMemory int64
}

func (o *Options) setDefaults() error {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if len(o.Secret) < 16 {
		return errors.New("server secret must be at least 16 bytes")
	}
	if o.MaxPackSize <= 0 {
		o.MaxPackSize = 64 << 20
	}
	if o.FakeN == 0 {
		o.FakeN, o.FakeR, o.FakeP = crypto.DefaultScryptN, crypto.DefaultScryptR, crypto.DefaultScryptP
	}
	if o.AccountLimit.Burst == 0 {
		o.AccountLimit = RateLimit{Burst: 10, Every: time.Minute}
	}
	if o.AddrLimit.Burst == 0 {
		o.AddrLimit = RateLimit{Burst: 30, Every: 10 * time.Second}
	}
	if o.RateLimitEntries <= 0 {
		o.RateLimitEntries = 100_000
	}
	if o.WatchRecheck == 0 {
		o.WatchRecheck = 5 * time.Second
	}
	if o.UploadTimeout == 0 {
		o.UploadTimeout = 30 * time.Minute
	}
	if o.DownloadMemory < pb.MaxRange {
		o.DownloadMemory = 256 << 20
	}
	return nil
}

// Service implements pb.AnySyncServer.
type Service struct {
	pb.UnimplementedAnySyncServer
	meta    meta.Store
	objects objstore.ObjectStore
	opts    Options
	log     *slog.Logger

	accountLimit *limiter
	addrLimit    *limiter
	watchers     *broadcaster
	downloads    *semaphore.Weighted

	stopOnce sync.Once
	stopping chan struct{} // closed when the server begins to shut down
}

// New returns a service over a metadata store and an object store.
func New(m meta.Store, objects objstore.ObjectStore, opts Options) (*Service, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	accounts, err := newLimiter(opts.AccountLimit, opts.RateLimitEntries)
	if err != nil {
		return nil, err
	}
	addrs, err := newLimiter(opts.AddrLimit, opts.RateLimitEntries)
	if err != nil {
		return nil, err
	}
	return &Service{
		meta:         m,
		objects:      objects,
		opts:         opts,
		log:          opts.Logger,
		accountLimit: accounts,
		addrLimit:    addrs,
		watchers:     newBroadcaster(),
		downloads:    semaphore.NewWeighted(opts.DownloadMemory),
		stopping:     make(chan struct{}),
	}, nil
}

// BeginShutdown ends every Watch stream (they would otherwise keep a
// graceful stop waiting forever) and refuses new ones.
func (s *Service) BeginShutdown() {
	s.stopOnce.Do(func() { close(s.stopping) })
}

// newID returns 16 random bytes in hex: user and device IDs.
func newID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random id: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// keyed returns HMAC-SHA256(secret, label || 0 || msg).
func (s *Service) keyed(label, msg string) []byte {
	m := hmac.New(sha256.New, s.opts.Secret)
	m.Write([]byte(label))
	m.Write([]byte{0})
	m.Write([]byte(msg))
	return m.Sum(nil)
}

// emailTag names an email in logs without revealing it.
func (s *Service) emailTag(email string) string {
	return hex.EncodeToString(s.keyed("anysync log email", email)[:6])
}

// CleanupStale removes packs whose upload or deletion was cut off before
// cutoff (a crash, a lost connection), with their objects.
func (s *Service) CleanupStale(ctx context.Context, cutoff time.Time) (int, error) {
	refs, err := s.meta.StalePacks(ctx, cutoff)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range refs {
		err := s.objects.Delete(ctx, storageKey(r.UserID, r.Name))
		if err != nil && !errors.Is(err, objstore.ErrNotFound) {
			return n, fmt.Errorf("clean up pack %s: %w", r.Name, err)
		}
		if err := s.meta.DropPack(ctx, r.UserID, r.Name); err != nil && !errors.Is(err, meta.ErrNotFound) {
			return n, fmt.Errorf("clean up pack %s: %w", r.Name, err)
		}
		n++
	}
	return n, nil
}

// storageKey is where an account's pack lives in the object store: the
// account ID (32 hex digits) then the pack name (64), so accounts can never
// collide and names stay within [0-9a-f].
func storageKey(userID, pack string) string { return userID + pack }
