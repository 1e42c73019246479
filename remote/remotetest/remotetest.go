// Package remotetest runs a real AnySync server in-process for tests:
// SQLite metadata in a temporary folder, packs in memory (or any object
// store), TLS with a fresh self-signed certificate, on a loopback port.
package remotetest

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"net"
	"path/filepath"
	"testing"
	"time"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/remote"
	"github.com/anysync/anysync/remote/server"
	"github.com/anysync/anysync/remote/server/meta"
	"github.com/anysync/anysync/store/objstore"
)

// Server is a running in-process server.
type Server struct {
	Addr        string
	Fingerprint string
	CertPEM     []byte // the server's certificate, for WithCAFile
	Service     *server.Service
	Meta        *meta.SQLite
	Objects     objstore.ObjectStore
	opts        server.Options
	tls         *tls.Config
	stop        context.CancelFunc
	done        chan error
}

// Config adjusts the server before it starts.
type Config struct {
	Options server.Options
	Objects objstore.ObjectStore // default: objstore.NewMem()
	Addr    string               // default: a free loopback port
}

// Start runs a server until the test ends.
func Start(t testing.TB, configure ...func(*Config)) *Server {
	t.Helper()
	cfg := Config{}
	for _, f := range configure {
		f(&cfg)
	}
	if cfg.Objects == nil {
		cfg.Objects = objstore.NewMem()
	}
	if cfg.Options.Secret == nil {
		cfg.Options.Secret = make([]byte, 32)
		if _, err := rand.Read(cfg.Options.Secret); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	m, err := meta.OpenSQLite(ctx, filepath.Join(t.TempDir(), "meta.db"))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := server.New(m, cfg.Objects, cfg.Options)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, keyPEM, err := server.GenerateCert(nil)
	if err != nil {
		t.Fatal(err)
	}
	tlsCfg, fp, err := server.TLSConfig(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Fingerprint: fp, CertPEM: certPEM, Service: svc, Meta: m, Objects: cfg.Objects, opts: cfg.Options, tls: tlsCfg}
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if err := s.serve(cfg.Addr); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Stop()
		_ = m.Close()
	})
	return s
}

func (s *Server) serve(addr string) error {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	s.Addr = lis.Addr().String()
	ctx, stop := context.WithCancel(context.Background())
	s.stop, s.done = stop, make(chan error, 1)
	g := server.NewGRPCServer(s.Service, s.tls)
	go func() { s.done <- server.Serve(ctx, s.Service, g, lis, 5*time.Second) }()
	return nil
}

// Restart stops the server and starts a new service process-alike on the
// same address, database, storage and certificate.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.Stop()
	svc, err := server.New(s.Meta, s.Objects, s.opts)
	if err != nil {
		t.Fatal(err)
	}
	s.Service = svc
	if err := s.serve(s.Addr); err != nil {
		t.Fatal(err)
	}
}

// Stop stops the server (and waits for it); later calls do nothing.
func (s *Server) Stop() {
	if s.done != nil {
		s.stop()
		<-s.done
		s.done = nil
	}
}

// Dial connects a client that pins the server's certificate, with short
// retries so failing tests fail fast.
func (s *Server) Dial(t testing.TB, opts ...remote.Option) *remote.Client {
	t.Helper()
	opts = append([]remote.Option{remote.WithRetry(3, 20*time.Millisecond, 100*time.Millisecond)}, opts...)
	c, err := remote.Dial(context.Background(), s.Addr, s.Fingerprint, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Account is a signed-up test account.
type Account struct {
	Email      string
	Proof      []byte
	Params     remote.Params
	MasterKeys []byte
	Session    *remote.Session
	Client     *remote.Client // authenticated with Session.Token
}

// SignUp creates an account with a random proof and opaque master.keys,
// and returns it with a client that carries its token.
func (s *Server) SignUp(t testing.TB, email string) *Account {
	t.Helper()
	if email == "" {
		email = fmt.Sprintf("user-%x@example.org", RandomBytes(t, 6))
	}
	p, err := crypto.NewScryptParams()
	if err != nil {
		t.Fatal(err)
	}
	a := &Account{Email: email, Proof: RandomBytes(t, 32), Params: p, MasterKeys: RandomBytes(t, 200)}
	c := s.Dial(t)
	a.Session, err = c.Signup(context.Background(), remote.SignupRequest{
		Email: email, Proof: a.Proof, Params: p, MasterKeys: a.MasterKeys, DeviceName: "test device",
	})
	if err != nil {
		t.Fatalf("sign up %s: %v", email, err)
	}
	a.Client = c.WithToken(a.Session.Token)
	return a
}

// RandomBytes returns n random bytes.
func RandomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}
