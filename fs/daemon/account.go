package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/anysync/anysync/crypto"
	"github.com/anysync/anysync/remote"
)

// ErrSignedIn means the home folder already has access.keys.
var ErrSignedIn = errors.New("this home folder is already signed in")

// Account says who signs up or logs in, where.
type Account struct {
	Home        string
	Server      string // host:port
	Fingerprint string // SHA256:... of the server certificate
	Email       string
	Password    []byte
	DeviceName  string
}

func (a *Account) prepare() (string, error) {
	if err := os.MkdirAll(a.Home, 0o700); err != nil {
		return "", fmt.Errorf("create home %s: %w", a.Home, err)
	}
	path := filepath.Join(a.Home, AccessKeysFile)
	if _, err := os.Stat(path); err == nil {
		return "", fmt.Errorf("%s: %w", a.Home, ErrSignedIn)
	}
	if a.DeviceName == "" {
		a.DeviceName, _ = os.Hostname()
	}
	return path, nil
}

// Signup creates an account with fresh keys and signs this home folder in.
func Signup(ctx context.Context, a Account) error {
	path, err := a.prepare()
	if err != nil {
		return err
	}
	keys, err := crypto.NewAccountKeys()
	if err != nil {
		return err
	}
	params, err := crypto.NewScryptParams()
	if err != nil {
		return err
	}
	master, err := crypto.SealMasterKeys(keys, a.Password, params)
	if err != nil {
		return err
	}
	secrets, err := crypto.DerivePasswordSecrets(a.Password, params)
	if err != nil {
		return err
	}
	client, err := remote.Dial(ctx, a.Server, a.Fingerprint)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", a.Server, err)
	}
	defer client.Close()
	s, err := client.Signup(ctx, remote.SignupRequest{Email: a.Email, Proof: secrets.LoginProof[:], Params: params,
		MasterKeys: master, AccountBoxPublicKey: keys.Box.Public, DeviceName: a.DeviceName})
	if err != nil {
		return fmt.Errorf("sign up %s: %w", a.Email, err)
	}
	return writeKeys(path, a, s, keys)
}

// Login signs this home folder in to an existing account: the password
// opens the account's master.keys that the server returns.
func Login(ctx context.Context, a Account) error {
	path, err := a.prepare()
	if err != nil {
		return err
	}
	client, err := remote.Dial(ctx, a.Server, a.Fingerprint)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", a.Server, err)
	}
	defer client.Close()
	params, err := client.PreLogin(ctx, a.Email)
	if err != nil {
		return fmt.Errorf("log in %s: %w", a.Email, err)
	}
	secrets, err := crypto.DerivePasswordSecrets(a.Password, params)
	if err != nil {
		return err
	}
	s, err := client.Login(ctx, remote.LoginRequest{Email: a.Email, Proof: secrets.LoginProof[:], DeviceName: a.DeviceName})
	if err != nil {
		return fmt.Errorf("log in %s: %w", a.Email, err)
	}
	keys, _, err := crypto.OpenMasterKeys(s.MasterKeys, a.Password)
	if err != nil {
		return fmt.Errorf("open master.keys: %w", err)
	}
	return writeKeys(path, a, s, keys)
}

func writeKeys(path string, a Account, s *remote.Session, keys *crypto.AccountKeys) error {
	ak := &crypto.AccessKeys{Server: a.Server, Fingerprint: a.Fingerprint, Email: a.Email, UserID: s.UserID,
		DeviceID: s.DeviceID, Token: s.Token, Keys: *keys}
	if err := crypto.WriteAccessKeys(path, ak); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}
