package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"time"

	pb "github.com/anysync/anysync/proto/anysyncpb"
	"github.com/anysync/anysync/remote/server/meta"
	"github.com/anysync/anysync/store/objstore/rclonestore"
	"google.golang.org/grpc"
)

// Files of a data folder (docs/server.md).
const (
	ConfigFile = "config.json"
	CertFile   = "tls.crt"
	KeyFile    = "tls.key"
	SecretFile = "secret.key"
	DBFile     = "meta.db"
	PacksDir   = "packs"
)

// DefaultListen is where a new server listens unless told otherwise.
const DefaultListen = "127.0.0.1:65065"

// ErrInitialised means init found an existing configuration.
var ErrInitialised = errors.New("data folder is already initialised")

// Config is a data folder's config.json.
type Config struct {
	// Listen is the TCP address to serve on.
	Listen string `json:"listen"`
	// Storage is the rclone remote for packs; empty means the packs/
	// folder of the data folder.
	Storage string `json:"storage,omitempty"`
	// RcloneConfig is an rclone config file for named remotes in Storage.
	RcloneConfig string `json:"rclone_config,omitempty"`
	// DefaultQuota is the quota of new accounts in bytes; 0: unlimited.
	DefaultQuota int64 `json:"default_quota"`
	// MaxPackSize bounds one pack in bytes; 0: 64 MiB.
	MaxPackSize int64 `json:"max_pack_size,omitempty"`
	// SignupClosed refuses new accounts.
	SignupClosed bool `json:"signup_closed,omitempty"`
}

// InitOptions are the choices of `anysync-server init`.
type InitOptions struct {
	Listen       string
	Storage      string
	RcloneConfig string
	// DefaultQuota is the quota of new accounts in bytes; 0: unlimited.
	DefaultQuota int64
	// Hosts are extra names or addresses for the certificate.
	Hosts []string
}

// Init creates a data folder: configuration, TLS key and self-signed
// certificate, server secret, and metadata database. It returns the
// certificate fingerprint that clients pin.
func Init(ctx context.Context, dir string, o InitOptions) (string, error) {
	if o.Listen == "" {
		o.Listen = DefaultListen
	}
	host, _, err := net.SplitHostPort(o.Listen)
	if err != nil {
		return "", fmt.Errorf("listen address %q: %w", o.Listen, err)
	}
	if _, err := os.Stat(filepath.Join(dir, ConfigFile)); err == nil {
		return "", fmt.Errorf("%s: %w", dir, ErrInitialised)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create data folder: %w", err)
	}
	if o.Storage == "" {
		if err := os.MkdirAll(filepath.Join(dir, PacksDir), 0o700); err != nil {
			return "", fmt.Errorf("create packs folder: %w", err)
		}
	}
	cfg := Config{Listen: o.Listen, Storage: o.Storage, RcloneConfig: o.RcloneConfig, DefaultQuota: o.DefaultQuota}
	// Fail now rather than at the first upload.
	if _, err := openStorage(ctx, dir, cfg); err != nil {
		return "", err
	}
	certPEM, keyPEM, err := GenerateCert(append([]string{host}, o.Hosts...))
	if err != nil {
		return "", err
	}
	_, fp, err := TLSConfig(certPEM, keyPEM)
	if err != nil {
		return "", err
	}
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return "", fmt.Errorf("generate server secret: %w", err)
	}
	for _, f := range []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{CertFile, certPEM, 0o644},
		{KeyFile, keyPEM, 0o600},
		{SecretFile, secret, 0o600},
	} {
		if err := writeFile(filepath.Join(dir, f.name), f.data, f.mode); err != nil {
			return "", err
		}
	}
	// The database holds verifiers and wrapped keys: owner only, before
	// SQLite creates it with the umask's mode.
	dbPath := filepath.Join(dir, DBFile)
	f, err := os.OpenFile(dbPath, os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return "", fmt.Errorf("create metadata db: %w", err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("create metadata db: %w", err)
	}
	db, err := meta.OpenSQLite(ctx, dbPath)
	if err != nil {
		return "", err
	}
	if err := db.Close(); err != nil {
		return "", fmt.Errorf("close metadata db: %w", err)
	}
	// The config goes last: a folder without it was never initialised,
	// so an interrupted init can simply run again.
	data, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encode config: %w", err)
	}
	if err := writeFile(filepath.Join(dir, ConfigFile), append(data, '\n'), 0o600); err != nil {
		return "", err
	}
	return fp, nil
}

// writeFile writes a file through a temporary name, so a crash never
// leaves a half-written one.
func writeFile(path string, data []byte, mode os.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// LoadConfig reads a data folder's config.json.
func LoadConfig(dir string) (Config, error) {
	data, err := os.ReadFile(filepath.Join(dir, ConfigFile))
	if errors.Is(err, os.ErrNotExist) {
		return Config{}, fmt.Errorf("%s is not an anysync-server data folder (run anysync-server init): %w", dir, err)
	}
	if err != nil {
		return Config{}, fmt.Errorf("read config: %w", err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return Config{}, fmt.Errorf("parse %s: %w", filepath.Join(dir, ConfigFile), err)
	}
	return cfg, nil
}

// ParseConfig decodes config.json, filling in defaults. Unknown fields are
// an error, so a misspelt option is not silently ignored.
func ParseConfig(data []byte) (Config, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var cfg Config
	if err := dec.Decode(&cfg); err != nil {
		return Config{}, err
	}
	if dec.More() {
		return Config{}, errors.New("trailing data after the JSON object")
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultListen
	}
	if _, _, err := net.SplitHostPort(cfg.Listen); err != nil {
		return Config{}, fmt.Errorf("listen address %q: %w", cfg.Listen, err)
	}
	if cfg.DefaultQuota < 0 || cfg.MaxPackSize < 0 {
		return Config{}, errors.New("negative size")
	}
	return cfg, nil
}

func openStorage(ctx context.Context, dir string, cfg Config) (*rclonestore.Store, error) {
	remote := cfg.Storage
	if remote == "" {
		remote = filepath.Join(dir, PacksDir)
	}
	st, err := rclonestore.NewWithConfig(ctx, remote, cfg.RcloneConfig)
	if err != nil {
		return nil, fmt.Errorf("open pack storage: %w", err)
	}
	return st, nil
}

// CertFingerprint returns the fingerprint of a data folder's certificate.
func CertFingerprint(dir string) (string, error) {
	certPEM, err := os.ReadFile(filepath.Join(dir, CertFile))
	if err != nil {
		return "", fmt.Errorf("read certificate: %w", err)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != "CERTIFICATE" {
		return "", fmt.Errorf("%s holds no PEM certificate", filepath.Join(dir, CertFile))
	}
	return pb.Fingerprint(block.Bytes), nil
}

// Instance is a server opened from a data folder.
type Instance struct {
	Config      Config
	Fingerprint string
	Service     *Service
	meta        *meta.SQLite
	grpc        *grpc.Server
	log         *slog.Logger
}

// Open opens a data folder for serving.
func Open(ctx context.Context, dir string, log *slog.Logger) (*Instance, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	certPEM, err := os.ReadFile(filepath.Join(dir, CertFile))
	if err != nil {
		return nil, fmt.Errorf("read certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, KeyFile))
	if err != nil {
		return nil, fmt.Errorf("read TLS key: %w", err)
	}
	tlsCfg, fp, err := TLSConfig(certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	secret, err := os.ReadFile(filepath.Join(dir, SecretFile))
	if err != nil {
		return nil, fmt.Errorf("read server secret: %w", err)
	}
	objects, err := openStorage(ctx, dir, cfg)
	if err != nil {
		return nil, err
	}
	db, err := meta.OpenSQLite(ctx, filepath.Join(dir, DBFile))
	if err != nil {
		return nil, err
	}
	svc, err := New(db, objects, Options{
		Logger:       log,
		Secret:       secret,
		DefaultQuota: cfg.DefaultQuota,
		MaxPackSize:  cfg.MaxPackSize,
		SignupClosed: cfg.SignupClosed,
	})
	if err != nil {
		_ = db.Close()
		return nil, err
	}
	return &Instance{Config: cfg, Fingerprint: fp, Service: svc, meta: db, grpc: NewGRPCServer(svc, tlsCfg), log: log}, nil
}

// Run serves on the configured address until ctx is done, then drains and
// closes the database.
func (in *Instance) Run(ctx context.Context, drain time.Duration) error {
	lis, err := net.Listen("tcp", in.Config.Listen)
	if err != nil {
		_ = in.meta.Close()
		return fmt.Errorf("listen on %s: %w", in.Config.Listen, err)
	}
	return in.Serve(ctx, lis, drain)
}

// Serve is Run on a given listener.
func (in *Instance) Serve(ctx context.Context, lis net.Listener, drain time.Duration) error {
	defer in.meta.Close()
	// The embedded database belongs to this process alone, so every
	// unfinished upload or deletion in it is left over from a crash.
	if n, err := in.Service.CleanupStale(ctx, time.Now()); err != nil {
		in.log.Error("clean up unfinished uploads", "err", err)
	} else if n > 0 {
		in.log.Info("cleaned up unfinished uploads", "packs", n)
	}
	in.log.Info("listening", "addr", lis.Addr().String(), "fingerprint", in.Fingerprint)
	return Serve(ctx, in.Service, in.grpc, lis, drain)
}

// Close releases an instance that was opened but never served.
func (in *Instance) Close() error { return in.meta.Close() }
