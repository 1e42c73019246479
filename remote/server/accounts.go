package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"time"

	"github.com/anysync/anysync/crypto"
	pb "github.com/anysync/anysync/proto/anysyncpb"
	"github.com/anysync/anysync/remote/server/meta"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// PreLogin returns an account's scrypt parameters. An unknown email gets a
// salt that is stable (an HMAC of the email under the server secret) and
// the parameters new accounts use, so the answer does not tell whether the
// account exists.
func (s *Service) PreLogin(ctx context.Context, req *pb.PreLoginRequest) (*pb.PreLoginResponse, error) {
	email, err := NormalizeEmail(req.GetEmail())
	if err != nil {
		return nil, err
	}
	infoFrom(ctx).set(func(c *callInfo) { c.account = s.emailTag(email) })
	// Computed for every call so known and unknown emails cost the same.
	fake := s.keyed("anysync fake salt", email)[:pb.SaltSize]
	p := &pb.ScryptParams{N: uint32(s.opts.FakeN), R: uint32(s.opts.FakeR), P: uint32(s.opts.FakeP), Salt: fake}
	u, err := s.meta.UserByEmail(ctx, email)
	switch {
	case err == nil:
		cp := u.Credentials.Params
		p = &pb.ScryptParams{N: uint32(cp.N), R: uint32(cp.R), P: uint32(cp.P), Salt: cp.Salt}
	case !errors.Is(err, meta.ErrNotFound):
		return nil, err
	}
	return &pb.PreLoginResponse{Params: p}, nil
}

// rateLimited refuses an attempt while the account or the address has used
// up its failures.
func (s *Service) rateLimited(email, addr string, now time.Time) error {
	wait := s.addrLimit.blocked(addr, now)
	if email != "" {
		wait = max(wait, s.accountLimit.blocked(email, now))
	}
	if wait <= 0 {
		return nil
	}
	return typed(codes.ResourceExhausted, pb.ReasonRateLimited,
		fmt.Sprintf("too many failed attempts; try again in %s", wait.Round(time.Second)))
}

func (s *Service) failed(email, addr string, now time.Time) {
	s.addrLimit.fail(addr, now)
	if email != "" {
		s.accountLimit.fail(email, now)
	}
}

// newDevice creates a device with a fresh token and seals the token to the
// device's box key: only that device can read it.
func (s *Service) newDevice(userID, name, version string, box *[32]byte, now time.Time) (meta.Device, []byte, error) {
	id, err := newID()
	if err != nil {
		return meta.Device{}, nil, err
	}
	token := make([]byte, pb.TokenSize)
	if _, err := rand.Read(token); err != nil {
		return meta.Device{}, nil, fmt.Errorf("random token: %w", err)
	}
	sealed, err := crypto.SealToken(token, box)
	if err != nil {
		return meta.Device{}, nil, err
	}
	d := meta.Device{
		ID: id, UserID: userID, Name: name, ClientVersion: version,
		TokenHash: crypto.TokenHash(token), Created: now, LastSeen: now,
	}
	return d, sealed, nil
}

// Signup creates an account and logs its first device in.
func (s *Service) Signup(ctx context.Context, req *pb.SignupRequest) (*pb.LoginResponse, error) {
	if s.opts.SignupClosed {
		return nil, typed(codes.PermissionDenied, pb.ReasonSignupClosed, "this server does not accept new accounts")
	}
	a, err := validateSignup(req)
	if err != nil {
		return nil, err
	}
	infoFrom(ctx).set(func(c *callInfo) { c.account = s.emailTag(a.email) })
	now, addr := time.Now(), peerHost(ctx)
	if err := s.rateLimited("", addr, now); err != nil {
		return nil, err
	}
	uid, err := newID()
	if err != nil {
		return nil, err
	}
	d, sealed, err := s.newDevice(uid, a.deviceName, a.clientVersion, &a.deviceBox, now)
	if err != nil {
		return nil, err
	}
	u := meta.User{
		ID:    uid,
		Email: a.email,
		Credentials: meta.Credentials{
			Verifier:   crypto.ProofVerifier(a.proof),
			Params:     a.params,
			MasterKeys: a.masterKeys,
		},
		BoxPublicKey: a.accountBox,
		Quota:        s.opts.DefaultQuota,
		Created:      now,
	}
	err = s.meta.CreateUser(ctx, u, d)
	if errors.Is(err, meta.ErrExists) {
		// Probing for accounts through sign-up counts as a failure.
		s.failed("", addr, now)
		return nil, typed(codes.AlreadyExists, pb.ReasonAccountExists, "an account with this email already exists")
	}
	if err != nil {
		return nil, err
	}
	infoFrom(ctx).set(func(c *callInfo) { c.user, c.device = uid, d.ID })
	return &pb.LoginResponse{UserId: uid, DeviceId: d.ID, SealedToken: sealed, MasterKeys: a.masterKeys}, nil
}

// Login checks a proof and registers a new device. Unknown emails and
// wrong proofs get the same answer after the same work.
func (s *Service) Login(ctx context.Context, req *pb.LoginRequest) (*pb.LoginResponse, error) {
	a, err := validateLogin(req)
	if err != nil {
		return nil, err
	}
	infoFrom(ctx).set(func(c *callInfo) { c.account = s.emailTag(a.email) })
	now, addr := time.Now(), peerHost(ctx)
	if err := s.rateLimited(a.email, addr, now); err != nil {
		return nil, err
	}
	u, err := s.meta.UserByEmail(ctx, a.email)
	known := err == nil
	if err != nil && !errors.Is(err, meta.ErrNotFound) {
		return nil, err
	}
	want := u.Credentials.Verifier
	if !known {
		copy(want[:], s.keyed("anysync fake verifier", a.email))
	}
	got := crypto.ProofVerifier(a.proof)
	if !crypto.Equal(got[:], want[:]) || !known {
		s.failed(a.email, addr, now)
		return nil, errWrongPassword
	}
	if u.Disabled {
		return nil, errDisabled
	}
	d, sealed, err := s.newDevice(u.ID, a.deviceName, a.clientVersion, &a.deviceBox, now)
	if err != nil {
		return nil, err
	}
	if err := s.meta.AddDevice(ctx, d); err != nil {
		return nil, err
	}
	infoFrom(ctx).set(func(c *callInfo) { c.user, c.device = u.ID, d.ID })
	return &pb.LoginResponse{UserId: u.ID, DeviceId: d.ID, SealedToken: sealed, MasterKeys: u.Credentials.MasterKeys}, nil
}

// Logout revokes the caller's own token.
func (s *Service) Logout(ctx context.Context, _ *pb.LogoutRequest) (*pb.LogoutResponse, error) {
	id, err := identityFrom(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.meta.RevokeDevice(ctx, id.userID, id.deviceID); err != nil {
		return nil, err
	}
	s.watchers.revoke(id.userID, id.deviceID)
	return &pb.LogoutResponse{}, nil
}

// ListDevices lists the caller's account's live devices.
func (s *Service) ListDevices(ctx context.Context, _ *pb.ListDevicesRequest) (*pb.ListDevicesResponse, error) {
	id, err := identityFrom(ctx)
	if err != nil {
		return nil, err
	}
	ds, err := s.meta.Devices(ctx, id.userID)
	if err != nil {
		return nil, err
	}
	out := &pb.ListDevicesResponse{Devices: make([]*pb.Device, len(ds))}
	for i, d := range ds {
		out.Devices[i] = &pb.Device{
			Id: d.ID, Name: d.Name, ClientVersion: d.ClientVersion,
			CreatedUnixMs: d.Created.UnixMilli(), LastSeenUnixMs: d.LastSeen.UnixMilli(),
			Current: d.ID == id.deviceID,
		}
	}
	return out, nil
}

// RevokeDevice revokes a device of the caller's account; its token stops
// working at once and its Watch stream ends.
func (s *Service) RevokeDevice(ctx context.Context, req *pb.RevokeDeviceRequest) (*pb.RevokeDeviceResponse, error) {
	id, err := identityFrom(ctx)
	if err != nil {
		return nil, err
	}
	if err := validateDeviceID(req.GetDeviceId()); err != nil {
		return nil, err
	}
	if err := s.meta.RevokeDevice(ctx, id.userID, req.GetDeviceId()); err != nil {
		return nil, err
	}
	s.watchers.revoke(id.userID, req.GetDeviceId())
	return &pb.RevokeDeviceResponse{}, nil
}

// ChangePassword replaces the verifier, scrypt parameters and master.keys
// after checking the old proof. Device tokens stay valid: they are not
// derived from the password.
func (s *Service) ChangePassword(ctx context.Context, req *pb.ChangePasswordRequest) (*pb.ChangePasswordResponse, error) {
	id, err := identityFrom(ctx)
	if err != nil {
		return nil, err
	}
	a, err := validateChangePassword(req)
	if err != nil {
		return nil, err
	}
	u, err := s.meta.UserByID(ctx, id.userID)
	if err != nil {
		return nil, err
	}
	now, addr := time.Now(), peerHost(ctx)
	if err := s.rateLimited(u.Email, addr, now); err != nil {
		return nil, err
	}
	old := crypto.ProofVerifier(a.oldProof)
	if !crypto.Equal(old[:], u.Credentials.Verifier[:]) {
		// A retry whose first try went through (its answer was lost)
		// already holds the new credentials: that is a success.
		newV := crypto.ProofVerifier(a.newProof)
		if crypto.Equal(newV[:], u.Credentials.Verifier[:]) && crypto.Equal(a.masterKeys, u.Credentials.MasterKeys) {
			return &pb.ChangePasswordResponse{}, nil
		}
		s.failed(u.Email, addr, now)
		return nil, errWrongPassword
	}
	err = s.meta.UpdateCredentials(ctx, id.userID, old, meta.Credentials{
		Verifier: crypto.ProofVerifier(a.newProof), Params: a.params, MasterKeys: a.masterKeys,
	})
	if errors.Is(err, meta.ErrConflict) {
		return nil, status.Error(codes.Aborted, "the password was changed concurrently; log in again")
	}
	if err != nil {
		return nil, err
	}
	return &pb.ChangePasswordResponse{}, nil
}

// GetUsage reports the caller's stored bytes and quota.
func (s *Service) GetUsage(ctx context.Context, _ *pb.GetUsageRequest) (*pb.GetUsageResponse, error) {
	id, err := identityFrom(ctx)
	if err != nil {
		return nil, err
	}
	u, err := s.meta.UserByID(ctx, id.userID)
	if err != nil {
		return nil, err
	}
	return &pb.GetUsageResponse{UsedBytes: uint64(max(u.Used, 0)), QuotaBytes: uint64(max(u.Quota, 0))}, nil
}
