package server

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/anysync/anysync/crypto"
	pb "github.com/anysync/anysync/proto/anysyncpb"
	"github.com/anysync/anysync/remote/server/meta"
	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Calls that need no token; everything else is authenticated.
var publicMethods = map[string]bool{
	pb.AnySync_PreLogin_FullMethodName: true,
	pb.AnySync_Signup_FullMethodName:   true,
	pb.AnySync_Login_FullMethodName:    true,
}

// callInfo collects what the request log line reports; handlers fill in
// what they learn.
type callInfo struct {
	mu      sync.Mutex
	user    string
	device  string
	account string // keyed hash of an email, never the email
	bytes   int64
}

func (c *callInfo) set(fn func(*callInfo)) {
	if c == nil {
		return
	}
	c.mu.Lock()
	fn(c)
	c.mu.Unlock()
}

type callInfoKey struct{}
type identityKey struct{}

// identity is the authenticated caller.
type identity struct {
	userID   string
	deviceID string
}

func infoFrom(ctx context.Context) *callInfo {
	ci, _ := ctx.Value(callInfoKey{}).(*callInfo)
	return ci
}

func identityFrom(ctx context.Context) (identity, error) {
	id, ok := ctx.Value(identityKey{}).(identity)
	if !ok {
		return identity{}, errUnauthenticated
	}
	return id, nil
}

// ParseBearer extracts the token from an "authorization" metadata value.
func ParseBearer(v string) ([]byte, error) {
	const prefix = "bearer "
	if len(v) < len(prefix) || !strings.EqualFold(v[:len(prefix)], prefix) {
		return nil, errors.New("authorization is not a bearer token")
	}
	enc := strings.TrimSpace(v[len(prefix):])
	if len(enc) > base64.StdEncoding.EncodedLen(pb.TokenSize) {
		return nil, errors.New("bearer token too long")
	}
	tok, err := base64.StdEncoding.DecodeString(enc)
	if err != nil || len(tok) != pb.TokenSize {
		return nil, errors.New("bearer token malformed")
	}
	return tok, nil
}

// authenticate resolves the caller's token to a live device of an enabled
// account, with one prepared statement. No caching: a revoked token or
// disabled account is refused on the very next call.
func (s *Service) authenticate(ctx context.Context) (identity, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get(pb.AuthHeader)
	if len(vals) != 1 {
		return identity{}, errUnauthenticated
	}
	tok, err := ParseBearer(vals[0])
	if err != nil {
		return identity{}, errUnauthenticated
	}
	hash := crypto.TokenHash(tok)
	d, err := s.meta.DeviceByToken(ctx, hash)
	if errors.Is(err, meta.ErrNotFound) {
		return identity{}, errUnauthenticated
	}
	if err != nil {
		return identity{}, toStatus(err)
	}
	// The lookup was by hash; compare again in constant time so nothing
	// rests on how the database matched.
	if !crypto.Equal(d.TokenHash[:], hash[:]) {
		return identity{}, errUnauthenticated
	}
	// The account's state came with the device, in the same statement.
	if d.UserDisabled {
		return identity{}, errDisabled
	}
	if now := time.Now(); now.Sub(d.LastSeen) > time.Minute {
		if err := s.meta.TouchDevice(ctx, d.ID, now); err != nil {
			s.log.Debug("touch device", "device", d.ID, "err", err)
		}
	}
	return identity{userID: d.UserID, deviceID: d.ID}, nil
}

func peerHost(ctx context.Context) string {
	p, ok := peer.FromContext(ctx)
	if !ok || p.Addr == nil {
		return ""
	}
	host, _, err := net.SplitHostPort(p.Addr.String())
	if err != nil {
		return p.Addr.String()
	}
	return host
}

func shortMethod(full string) string {
	if i := strings.LastIndexByte(full, '/'); i >= 0 {
		return full[i+1:]
	}
	return full
}

func (s *Service) logCall(ctx context.Context, method string, start time.Time, ci *callInfo, cause, err error) {
	code := status.Code(err)
	level := slog.LevelInfo
	if code == codes.Internal || code == codes.Unknown {
		level = slog.LevelError
	}
	ci.mu.Lock()
	attrs := []slog.Attr{
		slog.String("method", shortMethod(method)),
		slog.String("peer", peerHost(ctx)),
		slog.String("code", code.String()),
		slog.Duration("took", time.Since(start).Round(time.Microsecond)),
	}
	if ci.user != "" {
		attrs = append(attrs, slog.String("user", ci.user), slog.String("device", ci.device))
	}
	if ci.account != "" {
		attrs = append(attrs, slog.String("account", ci.account))
	}
	if ci.bytes != 0 {
		attrs = append(attrs, slog.Int64("bytes", ci.bytes))
	}
	ci.mu.Unlock()
	if err != nil && code != codes.OK {
		attrs = append(attrs, slog.String("err", status.Convert(err).Message()))
	}
	if cause != nil && level == slog.LevelError {
		// What the client saw as "internal server error".
		attrs = append(attrs, slog.String("cause", cause.Error()))
	}
	s.log.LogAttrs(ctx, level, "rpc", attrs...)
}

func (s *Service) prepare(ctx context.Context, method string) (context.Context, *callInfo, error) {
	ci := &callInfo{}
	ctx = context.WithValue(ctx, callInfoKey{}, ci)
	if publicMethods[method] {
		return ctx, ci, nil
	}
	id, err := s.authenticate(ctx)
	if err != nil {
		return ctx, ci, err
	}
	ci.user, ci.device = id.userID, id.deviceID
	return context.WithValue(ctx, identityKey{}, id), ci, nil
}

// UnaryInterceptor authenticates and logs every unary call.
func (s *Service) UnaryInterceptor(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	start := time.Now()
	ctx, ci, err := s.prepare(ctx, info.FullMethod)
	var resp any
	var cause error
	if err == nil {
		resp, cause = handler(ctx, req)
		err = toStatus(cause)
	}
	s.logCall(ctx, info.FullMethod, start, ci, cause, err)
	return resp, err
}

type wrappedStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (w *wrappedStream) Context() context.Context { return w.ctx }

// StreamInterceptor authenticates and logs every streaming call.
func (s *Service) StreamInterceptor(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	start := time.Now()
	ctx, ci, err := s.prepare(ss.Context(), info.FullMethod)
	var cause error
	if err == nil {
		cause = handler(srv, &wrappedStream{ServerStream: ss, ctx: ctx})
		err = toStatus(cause)
	}
	s.logCall(ctx, info.FullMethod, start, ci, cause, err)
	return err
}

// limiter counts failures per key in a bounded LRU of token buckets. An
// evicted key starts afresh; the per-address limiter keeps one source from
// flushing the per-account one.
type limiter struct {
	limit   RateLimit
	buckets *lru.Cache[string, *rate.Limiter]
	mu      sync.Mutex
}

func newLimiter(l RateLimit, size int) (*limiter, error) {
	c, err := lru.New[string, *rate.Limiter](size)
	if err != nil {
		return nil, fmt.Errorf("rate limiter: %w", err)
	}
	return &limiter{limit: l, buckets: c}, nil
}

func (l *limiter) bucket(key string) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets.Get(key)
	if !ok {
		b = rate.NewLimiter(rate.Every(l.limit.Every), l.limit.Burst)
		l.buckets.Add(key, b)
	}
	return b
}

// blocked reports how long key must wait before its next attempt.
func (l *limiter) blocked(key string, now time.Time) time.Duration {
	l.mu.Lock()
	b, ok := l.buckets.Get(key)
	l.mu.Unlock()
	if !ok || b.TokensAt(now) >= 1 {
		return 0
	}
	r := b.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	r.CancelAt(now)
	return wait
}

// fail records a failed attempt by key.
func (l *limiter) fail(key string, now time.Time) {
	l.bucket(key).AllowN(now, 1)
}
