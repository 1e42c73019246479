package remote

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/anysync/anysync/crypto"
	pb "github.com/anysync/anysync/proto/anysyncpb"
)

// Params are an account's scrypt parameters.
type Params = crypto.ScryptParams

// Session is what signing up or logging in yields for this device.
type Session struct {
	UserID     string
	DeviceID   string
	Token      []byte // the access token: keep it like an SSH key
	MasterKeys []byte // the account's master.keys, opaque here
}

// SignupRequest creates an account. The server keeps only a verifier of
// Proof.
type SignupRequest struct {
	Email               string
	Proof               []byte
	Params              Params
	MasterKeys          []byte
	AccountBoxPublicKey [32]byte
	DeviceName          string
}

// LoginRequest logs a new device in.
type LoginRequest struct {
	Email      string
	Proof      []byte
	DeviceName string
}

// ChangePasswordRequest replaces the password-derived credentials.
type ChangePasswordRequest struct {
	OldProof      []byte
	NewProof      []byte
	NewParams     Params
	NewMasterKeys []byte
}

// Device is a logged-in device of the account.
type Device struct {
	ID            string
	Name          string
	ClientVersion string
	Created       time.Time
	LastSeen      time.Time
	Current       bool // the device making the call
}

func paramsPB(p Params) *pb.ScryptParams {
	return &pb.ScryptParams{N: uint32(p.N), R: uint32(p.R), P: uint32(p.P), Salt: p.Salt}
}

// ParamsFromPB checks scrypt parameters sent by a server: a hostile server
// must not make the client spend gigabytes, or a cheap proof.
func ParamsFromPB(p *pb.ScryptParams) (Params, error) {
	if p == nil {
		return Params{}, fmt.Errorf("%w: no scrypt parameters", ErrBadResponse)
	}
	const maxInt32 = 1<<31 - 1
	if p.GetN() > maxInt32 || p.GetR() > maxInt32 || p.GetP() > maxInt32 {
		return Params{}, fmt.Errorf("%w: scrypt parameters out of range", ErrBadResponse)
	}
	out := Params{N: int(p.GetN()), R: int(p.GetR()), P: int(p.GetP()), Salt: append([]byte(nil), p.GetSalt()...)}
	if err := out.Validate(); err != nil {
		return Params{}, fmt.Errorf("%w: %w", ErrBadResponse, err)
	}
	return out, nil
}

// PreLogin returns the scrypt parameters and salt of an account. An email
// without an account gets plausible made-up ones, so the answer says
// nothing about whether it exists.
func (c *Client) PreLogin(ctx context.Context, email string) (Params, error) {
	var out Params
	err := c.do(ctx, "pre-login", c.opts.callTimeout, func(ctx context.Context, _ int) error {
		resp, err := c.api.PreLogin(ctx, &pb.PreLoginRequest{Email: email})
		if err != nil {
			return err
		}
		out, err = ParamsFromPB(resp.GetParams())
		return err
	})
	return out, err
}

// SessionFromResponse checks a login answer and opens its token with the
// device's box key.
func SessionFromResponse(resp *pb.LoginResponse, kp *crypto.BoxKeyPair) (*Session, error) {
	if !validHex(resp.GetUserId(), 32) || !validHex(resp.GetDeviceId(), 32) {
		return nil, fmt.Errorf("%w: bad user or device ID", ErrBadResponse)
	}
	if n := len(resp.GetMasterKeys()); n == 0 || n > pb.MaxMasterKeys {
		return nil, fmt.Errorf("%w: master.keys of %d bytes", ErrBadResponse, n)
	}
	token, err := crypto.OpenToken(resp.GetSealedToken(), kp)
	if err != nil {
		return nil, fmt.Errorf("%w: access token: %w", ErrBadResponse, err)
	}
	if len(token) != pb.TokenSize {
		return nil, fmt.Errorf("%w: access token of %d bytes", ErrBadResponse, len(token))
	}
	return &Session{
		UserID: resp.GetUserId(), DeviceID: resp.GetDeviceId(),
		Token: token, MasterKeys: append([]byte(nil), resp.GetMasterKeys()...),
	}, nil
}

func validHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// Signup creates an account and logs this device in. A retry that finds
// the account already there (the first try's answer was lost) logs in
// with the same proof instead.
func (c *Client) Signup(ctx context.Context, r SignupRequest) (*Session, error) {
	kp, err := crypto.NewBoxKeyPair()
	if err != nil {
		return nil, err
	}
	req := &pb.SignupRequest{
		ClientVersion: c.opts.clientVersion, Email: r.Email, Proof: r.Proof, Params: paramsPB(r.Params),
		MasterKeys: r.MasterKeys, AccountBoxPublicKey: r.AccountBoxPublicKey[:],
		DeviceBoxPublicKey: kp.Public[:], DeviceName: r.DeviceName,
	}
	var s *Session
	retried := false
	err = c.do(ctx, "sign up", c.opts.callTimeout, func(ctx context.Context, try int) error {
		retried = try > 1
		resp, err := c.api.Signup(ctx, req)
		if err != nil {
			return err
		}
		s, err = SessionFromResponse(resp, kp)
		return err
	})
	if retried && errors.Is(err, ErrAccountExists) {
		return c.Login(ctx, LoginRequest{Email: r.Email, Proof: r.Proof, DeviceName: r.DeviceName})
	}
	return s, err
}

// Login logs this device in with a fresh box key pair: the server seals
// the new access token to it, so only this process can read the token.
func (c *Client) Login(ctx context.Context, r LoginRequest) (*Session, error) {
	kp, err := crypto.NewBoxKeyPair()
	if err != nil {
		return nil, err
	}
	req := &pb.LoginRequest{
		ClientVersion: c.opts.clientVersion, Email: r.Email, DeviceBoxPublicKey: kp.Public[:],
		Proof: r.Proof, DeviceName: r.DeviceName,
	}
	var s *Session
	err = c.do(ctx, "log in", c.opts.callTimeout, func(ctx context.Context, _ int) error {
		resp, err := c.api.Login(ctx, req)
		if err != nil {
			return err
		}
		s, err = SessionFromResponse(resp, kp)
		return err
	})
	return s, err
}

// Logout revokes this client's own token.
func (c *Client) Logout(ctx context.Context) error {
	return c.do(ctx, "log out", c.opts.callTimeout, func(ctx context.Context, _ int) error {
		_, err := c.api.Logout(ctx, &pb.LogoutRequest{})
		return err
	})
}

// Devices lists the account's logged-in devices.
func (c *Client) Devices(ctx context.Context) ([]Device, error) {
	var out []Device
	err := c.do(ctx, "list devices", c.opts.callTimeout, func(ctx context.Context, _ int) error {
		resp, err := c.api.ListDevices(ctx, &pb.ListDevicesRequest{})
		if err != nil {
			return err
		}
		out = make([]Device, len(resp.GetDevices()))
		for i, d := range resp.GetDevices() {
			out[i] = Device{
				ID: d.GetId(), Name: d.GetName(), ClientVersion: d.GetClientVersion(),
				Created: time.UnixMilli(d.GetCreatedUnixMs()), LastSeen: time.UnixMilli(d.GetLastSeenUnixMs()),
				Current: d.GetCurrent(),
			}
		}
		return nil
	})
	return out, err
}

// RevokeDevice revokes a device of the account; its token stops working
// at once.
func (c *Client) RevokeDevice(ctx context.Context, id string) error {
	return c.do(ctx, "revoke device", c.opts.callTimeout, func(ctx context.Context, _ int) error {
		_, err := c.api.RevokeDevice(ctx, &pb.RevokeDeviceRequest{DeviceId: id})
		return err
	})
}

// ChangePassword replaces the account's proof verifier, scrypt parameters
// and master.keys, proving the old password.
func (c *Client) ChangePassword(ctx context.Context, r ChangePasswordRequest) error {
	req := &pb.ChangePasswordRequest{
		OldProof: r.OldProof, NewProof: r.NewProof, NewParams: paramsPB(r.NewParams), NewMasterKeys: r.NewMasterKeys,
	}
	return c.do(ctx, "change password", c.opts.callTimeout, func(ctx context.Context, _ int) error {
		_, err := c.api.ChangePassword(ctx, req)
		return err
	})
}

// Usage returns the bytes the account stores and its quota (0: none).
func (c *Client) Usage(ctx context.Context) (used, quota int64, err error) {
	err = c.do(ctx, "usage", c.opts.callTimeout, func(ctx context.Context, _ int) error {
		resp, err := c.api.GetUsage(ctx, &pb.GetUsageRequest{})
		if err != nil {
			return err
		}
		used, quota = int64(min(resp.GetUsedBytes(), 1<<63-1)), int64(min(resp.GetQuotaBytes(), 1<<63-1))
		return nil
	})
	return used, quota, err
}
