package remote_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"crypto/tls"
	"github.com/anysync/anysync/crypto"
	pb "github.com/anysync/anysync/proto/anysyncpb"
	"github.com/anysync/anysync/remote"
	"github.com/anysync/anysync/remote/remotetest"
	"github.com/anysync/anysync/remote/server"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// rawClient talks to the server with the generated stubs, so a test can
// send what the remote client never would.
func rawClient(t *testing.T, srv *remotetest.Server) pb.AnySyncClient {
	t.Helper()
	cc, err := grpc.NewClient("passthrough:///"+srv.Addr, grpc.WithTransportCredentials(
		credentials.NewTLS(&tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return pb.NewAnySyncClient(cc)
}

func withAuth(value string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", value)
}

func TestNoSecretsWithoutProof(t *testing.T) {
	srv := remotetest.Start(t)
	a := srv.SignUp(t, "victim@example.org")
	c := srv.Dial(t)
	wrong := remotetest.RandomBytes(t, 32)

	s, err := c.Login(ctx, remote.LoginRequest{Email: a.Email, Proof: wrong})
	if !errors.Is(err, remote.ErrWrongPassword) || s != nil {
		t.Fatalf("wrong proof: %v %+v", err, s)
	}
	// Unknown email: the same answer as a wrong proof.
	_, err2 := c.Login(ctx, remote.LoginRequest{Email: "nobody@example.org", Proof: wrong})
	var e1, e2 *remote.Error
	if !errors.As(err, &e1) || !errors.As(err2, &e2) || e1.Code != e2.Code || e1.Msg != e2.Msg || e1.Reason != e2.Reason {
		t.Fatalf("unknown email answered differently: %v vs %v", err, err2)
	}
	// Missing or malformed proofs never reach the verifier.
	raw := rawClient(t, srv)
	box, _ := crypto.NewBoxKeyPair()
	for _, proof := range [][]byte{nil, {}, wrong[:31], append(wrong, 0)} {
		resp, err := raw.Login(ctx, &pb.LoginRequest{Email: a.Email, Proof: proof, DeviceBoxPublicKey: box.Public[:]})
		if status.Code(err) != codes.InvalidArgument || resp != nil {
			t.Fatalf("proof of %d bytes: %v %v", len(proof), resp, err)
		}
	}
	// The same proof bytes but the victim's verifier instead: a client
	// that knows the verifier (say, from a leaked database) cannot log in.
	v := crypto.ProofVerifier(a.Proof)
	if _, err := c.Login(ctx, remote.LoginRequest{Email: a.Email, Proof: v[:]}); !errors.Is(err, remote.ErrWrongPassword) {
		t.Fatalf("verifier as proof: %v", err)
	}
	// Every refused login left no device behind.
	ds, err := a.Client.Devices(ctx)
	if err != nil || len(ds) != 1 {
		t.Fatalf("devices after failed logins: %d %v", len(ds), err)
	}
}

func TestFakeSaltForUnknownEmail(t *testing.T) {
	srv := remotetest.Start(t)
	a := srv.SignUp(t, "real@example.org")
	c := srv.Dial(t)
	f1, err := c.PreLogin(ctx, "ghost@example.org")
	if err != nil {
		t.Fatal(err)
	}
	f2, _ := c.PreLogin(ctx, "GHOST@example.org")
	if !bytes.Equal(f1.Salt, f2.Salt) {
		t.Fatal("fake salt is not stable")
	}
	real, _ := c.PreLogin(ctx, a.Email)
	if len(f1.Salt) != len(real.Salt) || f1.N != real.N || f1.R != real.R || f1.P != real.P {
		t.Fatalf("fake %+v does not look like real %+v", f1, real)
	}
	if err := f1.Validate(); err != nil {
		t.Fatalf("fake params are not usable: %v", err)
	}
	other, _ := c.PreLogin(ctx, "ghost2@example.org")
	if bytes.Equal(other.Salt, f1.Salt) || bytes.Equal(f1.Salt, make([]byte, len(f1.Salt))) {
		t.Fatal("fake salts repeat across emails or are zero")
	}
	// Keyed by the server secret: another server makes other fake salts,
	// so they cannot be precomputed.
	srv2 := remotetest.Start(t)
	g, _ := srv2.Dial(t).PreLogin(ctx, "ghost@example.org")
	if bytes.Equal(g.Salt, f1.Salt) {
		t.Fatal("fake salt does not depend on the server secret")
	}
}

func TestRevokedTokenRefusedAtOnce(t *testing.T) {
	srv := remotetest.Start(t)
	a := srv.SignUp(t, "")
	s2, err := srv.Dial(t).Login(ctx, remote.LoginRequest{Email: a.Email, Proof: a.Proof})
	if err != nil {
		t.Fatal(err)
	}
	c2 := srv.Dial(t).WithToken(s2.Token)
	if _, err := c2.Head(ctx); err != nil {
		t.Fatal(err)
	}
	if err := a.Client.RevokeDevice(ctx, s2.DeviceID); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Head(ctx); !errors.Is(err, remote.ErrUnauthenticated) {
		t.Fatalf("revoked token: %v", err)
	}
	// Logout revokes the caller's own token, and a new login's token does
	// not revive the old one.
	if err := a.Client.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Client.Head(ctx); !errors.Is(err, remote.ErrUnauthenticated) {
		t.Fatalf("logged-out token: %v", err)
	}
	s3, err := srv.Dial(t).Login(ctx, remote.LoginRequest{Email: a.Email, Proof: a.Proof})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Client.Head(ctx); !errors.Is(err, remote.ErrUnauthenticated) {
		t.Fatalf("replayed revoked token after a new login: %v", err)
	}
	if _, err := srv.Dial(t).WithToken(s3.Token).Head(ctx); err != nil {
		t.Fatal(err)
	}
	// Revoking a device of another account, or an unknown one, is NotFound.
	other := srv.SignUp(t, "")
	if err := other.Client.RevokeDevice(ctx, s3.DeviceID); !errors.Is(err, remote.ErrNotFound) {
		t.Fatalf("revoke another account's device: %v", err)
	}
	if _, err := srv.Dial(t).WithToken(s3.Token).Head(ctx); err != nil {
		t.Fatalf("a foreign revoke took effect: %v", err)
	}
}

func TestForgedTokensRefused(t *testing.T) {
	srv := remotetest.Start(t)
	a := srv.SignUp(t, "")
	forged := make([]byte, 32)
	_, _ = rand.Read(forged)
	if _, err := srv.Dial(t).WithToken(forged).Head(ctx); !errors.Is(err, remote.ErrUnauthenticated) {
		t.Fatalf("forged token: %v", err)
	}
	// A token one bit off.
	flipped := bytes.Clone(a.Session.Token)
	flipped[0] ^= 1
	if _, err := srv.Dial(t).WithToken(flipped).Head(ctx); !errors.Is(err, remote.ErrUnauthenticated) {
		t.Fatalf("bit-flipped token: %v", err)
	}
	// The token hash (what the server stores) is not a token.
	h := crypto.TokenHash(a.Session.Token)
	if _, err := srv.Dial(t).WithToken(h[:]).Head(ctx); !errors.Is(err, remote.ErrUnauthenticated) {
		t.Fatalf("token hash as token: %v", err)
	}
	raw := rawClient(t, srv)
	good := base64.StdEncoding.EncodeToString(a.Session.Token)
	for _, v := range []string{"", "Bearer", "Bearer ", "Basic " + good, "Bearer " + good[:20], "Bearer " + good + "AAAA",
		"Bearer !!!" + good[3:], "Bearer " + strings.Repeat("A", 10000)} {
		_, err := raw.GetHead(withAuth(v), &pb.GetHeadRequest{})
		if status.Code(err) != codes.Unauthenticated {
			t.Errorf("authorization %.30q: %v", v, err)
		}
	}
	if _, err := raw.GetHead(ctx, &pb.GetHeadRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("no token: %v", err)
	}
	// Two authorization values are refused, even if one is good.
	two := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+good, "authorization", "Bearer "+base64.StdEncoding.EncodeToString(forged))
	if _, err := raw.GetHead(two, &pb.GetHeadRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("two tokens: %v", err)
	}
	if _, err := raw.GetHead(withAuth("bearer "+good), &pb.GetHeadRequest{}); err != nil {
		t.Fatalf("good token through the raw client: %v", err)
	}
}

func TestDisabledAccount(t *testing.T) {
	srv := remotetest.Start(t, func(c *remotetest.Config) { c.Options.WatchRecheck = 20 * time.Millisecond })
	a := srv.SignUp(t, "")
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := a.Client.Watch(wctx)
	if err != nil {
		t.Fatal(err)
	}
	<-ch
	// As the admin CLI does: straight in the database.
	if err := server.SetDisabled(ctx, srv.Meta, a.Email, true); err != nil {
		t.Fatal(err)
	}
	_, err = a.Client.Head(ctx)
	if !errors.Is(err, remote.ErrAccountDisabled) || !errors.Is(err, remote.ErrUnauthenticated) {
		t.Fatalf("disabled account's token: %v", err)
	}
	if _, err := srv.Dial(t).Login(ctx, remote.LoginRequest{Email: a.Email, Proof: a.Proof}); !errors.Is(err, remote.ErrAccountDisabled) {
		t.Fatalf("disabled account's login: %v", err)
	}
	for range ch { // the watch ends at the next recheck
	}
	if err := server.SetDisabled(ctx, srv.Meta, a.Email, false); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Client.Head(ctx); err != nil {
		t.Fatalf("re-enabled account: %v", err)
	}
}

func TestWrongFingerprintRefused(t *testing.T) {
	srv := remotetest.Start(t)
	other := remotetest.Start(t)
	_, err := remote.Dial(ctx, srv.Addr, other.Fingerprint)
	if !errors.Is(err, remote.ErrFingerprintMismatch) {
		t.Fatalf("wrong fingerprint: %v", err)
	}
	for _, want := range []string{srv.Fingerprint, other.Fingerprint, "man-in-the-middle", "re-initialised"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
	fp, err := remote.FetchFingerprint(ctx, srv.Addr)
	if err != nil || fp != srv.Fingerprint {
		t.Fatalf("fetched %s, %v; want %s", fp, err, srv.Fingerprint)
	}
	if !strings.HasPrefix(fp, "SHA256:") || strings.HasSuffix(fp, "=") || len(fp) != 7+43 {
		t.Fatalf("fingerprint %q is not SSH style", fp)
	}
	if _, err := remote.Dial(ctx, srv.Addr, ""); err == nil {
		t.Fatal("dial without a fingerprint or CA succeeded")
	}
}

func TestCertificateSwappedAfterDial(t *testing.T) {
	// A man in the middle who takes over the address after the client
	// connected: the next handshake sees another certificate, and the
	// client refuses it for good, without retrying into it.
	srv := remotetest.Start(t)
	a := srv.SignUp(t, "")
	addr := srv.Addr
	srv.Stop()
	remotetest.Start(t, func(c *remotetest.Config) { c.Addr = addr })
	_, err := a.Client.Head(ctx)
	if !errors.Is(err, remote.ErrFingerprintMismatch) {
		t.Fatalf("swapped certificate: %v", err)
	}
	if _, err := a.Client.Head(ctx); !errors.Is(err, remote.ErrFingerprintMismatch) {
		t.Fatalf("second call after the swap: %v", err)
	}
}

func TestLoginRateLimitPerAccount(t *testing.T) {
	srv := remotetest.Start(t, func(c *remotetest.Config) {
		c.Options.AccountLimit = server.RateLimit{Burst: 3, Every: time.Hour}
	})
	a := srv.SignUp(t, "")
	b := srv.SignUp(t, "")
	c := srv.Dial(t)
	wrong := remotetest.RandomBytes(t, 32)
	for i := 0; i < 3; i++ {
		if _, err := c.Login(ctx, remote.LoginRequest{Email: a.Email, Proof: wrong}); !errors.Is(err, remote.ErrWrongPassword) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	// Locked: even the right proof is refused until the bucket refills.
	_, err := c.Login(ctx, remote.LoginRequest{Email: a.Email, Proof: a.Proof})
	if !errors.Is(err, remote.ErrRateLimited) || !strings.Contains(err.Error(), "try again in") {
		t.Fatalf("locked account: %v", err)
	}
	// Other accounts are not affected.
	if _, err := c.Login(ctx, remote.LoginRequest{Email: b.Email, Proof: b.Proof}); err != nil {
		t.Fatalf("other account: %v", err)
	}
	// Unknown emails lock the same way, so the lock tells nothing.
	for i := 0; i < 3; i++ {
		_, _ = c.Login(ctx, remote.LoginRequest{Email: "ghost@example.org", Proof: wrong})
	}
	if _, err := c.Login(ctx, remote.LoginRequest{Email: "ghost@example.org", Proof: wrong}); !errors.Is(err, remote.ErrRateLimited) {
		t.Fatalf("unknown email: %v", err)
	}
	// Wrong old proofs in a password change count too.
	p, _ := crypto.NewScryptParams()
	for i := 0; i < 4; i++ {
		err = b.Client.ChangePassword(ctx, remote.ChangePasswordRequest{OldProof: wrong, NewProof: wrong, NewParams: p, NewMasterKeys: []byte{1}})
	}
	if !errors.Is(err, remote.ErrRateLimited) {
		t.Fatalf("password change guessing: %v", err)
	}
}

func TestLoginRateLimitPerAddress(t *testing.T) {
	srv := remotetest.Start(t, func(c *remotetest.Config) {
		c.Options.AddrLimit = server.RateLimit{Burst: 5, Every: time.Hour}
	})
	a := srv.SignUp(t, "")
	c := srv.Dial(t)
	wrong := remotetest.RandomBytes(t, 32)
	// Spraying one guess each at many accounts from one address.
	for i := 0; i < 5; i++ {
		email := string(rune('a'+i)) + "@example.org"
		if _, err := c.Login(ctx, remote.LoginRequest{Email: email, Proof: wrong}); !errors.Is(err, remote.ErrWrongPassword) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if _, err := c.Login(ctx, remote.LoginRequest{Email: a.Email, Proof: a.Proof}); !errors.Is(err, remote.ErrRateLimited) {
		t.Fatalf("address over its limit: %v", err)
	}
	// Probing for accounts through sign-up is limited as well.
	if _, err := c.Signup(ctx, remote.SignupRequest{Email: a.Email, Proof: wrong, Params: a.Params, MasterKeys: []byte{1}}); !errors.Is(err, remote.ErrRateLimited) {
		t.Fatalf("signup from a limited address: %v", err)
	}
}
