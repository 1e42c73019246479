// Package remote is the client side of the AnySync protocol: a gRPC client
// over TLS that pins the server's certificate fingerprint (like SSH),
// retries transient failures with backoff, and offers the server's pack
// calls as an objstore.ObjectStore so the client never holds storage
// credentials. The wire contract is in docs/protocol.md.
package remote

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"time"

	pb "github.com/anysync/anysync/proto/anysyncpb"
	"github.com/anysync/anysync/remote/internal/tlsbatch"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/metadata"
)

// DefaultClientVersion is sent at login unless WithClientVersion says
// otherwise.
const DefaultClientVersion = "anysync-go/1"

type options struct {
	caFile        string
	attempts      int
	initial, max  time.Duration
	callTimeout   time.Duration
	transferTime  time.Duration
	clientVersion string
}

// Option configures Dial.
type Option func(*options)

// WithCAFile verifies the server against the CA certificates in a PEM file
// (and the host name in addr) instead of pinning a fingerprint.
func WithCAFile(path string) Option { return func(o *options) { o.caFile = path } }

// WithRetry sets how often a transient failure is retried (attempts counts
// the first try) and the backoff between tries, which doubles from initial
// up to max with random jitter.
func WithRetry(attempts int, initial, max time.Duration) Option {
	return func(o *options) { o.attempts, o.initial, o.max = attempts, initial, max }
}

// WithCallTimeout bounds each try of a call (default 30 s; pack transfers
// get four times as long).
func WithCallTimeout(d time.Duration) Option {
	return func(o *options) { o.callTimeout, o.transferTime = d, 4*d }
}

// WithClientVersion names the client software in logins.
func WithClientVersion(v string) Option { return func(o *options) { o.clientVersion = v } }

// conn is what the clients made by WithToken share.
type conn struct {
	cc       *grpc.ClientConn
	api      pb.AnySyncClient
	opts     options
	mu       sync.Mutex
	pinError error // set when a handshake saw the wrong certificate
}

func (c *conn) setPinError(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pinError = err
}

func (c *conn) pinErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pinError
}

// Client talks to one AnySync server. It is safe for concurrent use.
type Client struct {
	*conn
	token string // "Bearer <base64>", or empty
}

// Dial connects to addr ("host:port") over TLS. The server's certificate
// must have the given fingerprint ("SHA256:..." as printed by
// `anysync-server init` and FetchFingerprint), unless WithCAFile is given.
//
// Dial makes one TLS handshake to check the certificate: a wrong
// fingerprint fails Dial with ErrFingerprintMismatch (an untrusted
// certificate in CA mode with ErrUntrustedCertificate). A server that cannot
// be reached does not fail Dial: calls retry, and return ErrUnavailable
// when their retries run out, so a client can start offline.
func Dial(ctx context.Context, addr, fingerprint string, opts ...Option) (*Client, error) {
	o := options{attempts: 6, initial: 200 * time.Millisecond, max: 5 * time.Second,
		callTimeout: 30 * time.Second, transferTime: 2 * time.Minute, clientVersion: DefaultClientVersion}
	for _, opt := range opts {
		opt(&o)
	}
	if o.attempts < 1 {
		o.attempts = 1
	}
	c := &conn{opts: o}
	tlsCfg, err := c.tlsConfig(addr, fingerprint)
	if err != nil {
		return nil, err
	}
	if err := probe(ctx, addr, tlsCfg); err != nil && c.pinErr() != nil {
		return nil, c.pinErr()
	}
	cc, err := grpc.NewClient("passthrough:///"+addr,
		// One send per write of gRPC's buffer, not per 16 KiB TLS record
		// (tlsbatch), and a buffer of 256 KiB instead of 32 KiB.
		grpc.WithTransportCredentials(tlsbatch.New(credentials.NewTLS(tlsCfg))),
		grpc.WithWriteBufferSize(256<<10),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(pb.MaxMessage), grpc.MaxCallSendMsgSize(pb.MaxMessage)),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 20 * time.Second}),
		experimental.WithBufferPool(pb.BufferPool()),
	)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	c.cc, c.api = cc, pb.NewAnySyncClient(cc)
	return &Client{conn: c}, nil
}

func (c *conn) tlsConfig(addr, fingerprint string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS13, NextProtos: []string{"h2"}}
	if c.opts.caFile != "" {
		pemData, err := os.ReadFile(c.opts.caFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemData) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", c.opts.caFile)
		}
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, fmt.Errorf("server address %q: %w", addr, err)
		}
		// Verified by hand, like the pin, so a failure is recorded and
		// never retried.
		cfg.InsecureSkipVerify = true
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return fmt.Errorf("%w: server sent no certificate", ErrUntrustedCertificate)
			}
			inter := x509.NewCertPool()
			for _, cert := range cs.PeerCertificates[1:] {
				inter.AddCert(cert)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, DNSName: host})
			if err != nil {
				err = fmt.Errorf("%w: %v: refusing to connect", ErrUntrustedCertificate, err)
				c.setPinError(err)
				return err
			}
			return nil
		}
		return cfg, nil
	}
	if fingerprint == "" {
		return nil, errors.New("no server fingerprint to pin: fetch it with FetchFingerprint and confirm it with the server's administrator")
	}
	// Chain verification is replaced by the pin: a self-signed
	// certificate has no chain, and the pin is stronger than one.
	cfg.InsecureSkipVerify = true
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if len(cs.PeerCertificates) == 0 {
			return fmt.Errorf("%w: server sent no certificate", ErrFingerprintMismatch)
		}
		got := pb.Fingerprint(cs.PeerCertificates[0].Raw)
		if got != fingerprint {
			err := fmt.Errorf("%w: server certificate fingerprint is %s, expected %s: refusing to connect "+
				"(possible man-in-the-middle); if the server was re-initialised, check the new fingerprint "+
				"with its administrator and log in again", ErrFingerprintMismatch, got, fingerprint)
			c.setPinError(err)
			return err
		}
		return nil
	}
	return cfg, nil
}

// probe makes one TLS handshake with addr.
func probe(ctx context.Context, addr string, cfg *tls.Config) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	d := &tls.Dialer{Config: cfg}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", addr, err)
	}
	return nc.Close()
}

// FetchFingerprint connects to addr without verifying its certificate and
// returns the certificate's fingerprint, to show the user (who compares it
// with what the server's administrator sees) before pinning it.
func FetchFingerprint(ctx context.Context, addr string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	d := &tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13, NextProtos: []string{"h2"}}}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("fetch certificate of %s: %w", addr, err)
	}
	defer nc.Close()
	tc, ok := nc.(*tls.Conn)
	if !ok {
		return "", fmt.Errorf("fetch certificate of %s: not a TLS connection", addr)
	}
	certs := tc.ConnectionState().PeerCertificates
	if len(certs) == 0 {
		return "", fmt.Errorf("fetch certificate of %s: server sent none", addr)
	}
	return pb.Fingerprint(certs[0].Raw), nil
}

// Close closes the connection, for this client and every client WithToken
// made from it.
func (c *Client) Close() error { return c.cc.Close() }

// WithToken returns a client that authenticates its calls with token. It
// shares c's connection.
func (c *Client) WithToken(token []byte) *Client {
	return &Client{conn: c.conn, token: "Bearer " + base64.StdEncoding.EncodeToString(token)}
}

func (c *Client) authed(ctx context.Context) context.Context {
	if c.token == "" {
		return ctx
	}
	return metadata.AppendToOutgoingContext(ctx, pb.AuthHeader, c.token)
}

// do runs one call with retries: each try gets its own deadline, transient
// failures are retried with exponential backoff and jitter, everything
// else (authentication, head moved, quota...) is returned at once. fn gets
// the try number, from 1.
func (c *Client) do(ctx context.Context, op string, timeout time.Duration, fn func(ctx context.Context, try int) error) error {
	backoff := c.opts.initial
	for try := 1; ; try++ {
		tctx, cancel := context.WithTimeout(c.authed(ctx), timeout)
		err := fn(tctx, try)
		cancel()
		if err == nil {
			return nil
		}
		if perr := c.pinErr(); perr != nil {
			return fmt.Errorf("%s: %w", op, perr)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %w", op, ctx.Err())
		}
		if !transient(err) || try >= c.opts.attempts {
			return mapError(op, err)
		}
		// Full jitter over the upper half keeps retrying clients apart.
		wait := backoff/2 + rand.N(backoff/2+1)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%s: %w", op, ctx.Err())
		case <-t.C:
		}
		backoff = min(2*backoff, c.opts.max)
	}
}
