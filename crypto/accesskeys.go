package crypto

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
)

// AccessKeys are this device's credentials: where the server is, who we
// are, the device's access token and the account keys. Like an SSH private
// key the file is protected by its mode (0600), not by a password, so
// later starts need no password.
type AccessKeys struct {
	Server      string // host:port of the AnySync server
	Fingerprint string // pinned server certificate fingerprint; empty when a CA is used
	Email       string
	UserID      string
	DeviceID    string
	Token       []byte
	Keys        AccountKeys
}

// accessKeysVersion is the "version" field of the JSON encoding.
const accessKeysVersion = 1

// maxAccessKeysSize bounds what ReadAccessKeys reads; a real file is < 1 KiB.
const maxAccessKeysSize = 64 << 10

// maxTokenSize bounds the access token.
const maxTokenSize = 1024

// ErrInsecureKeyFile means access.keys can be read by other users.
var ErrInsecureKeyFile = errors.New("key file is accessible by other users")

// accessKeysJSON is the on-disk encoding. []byte fields are base64 (std,
// padded) as encoding/json writes them.
type accessKeysJSON struct {
	Version     int    `json:"version"`
	Server      string `json:"server"`
	Fingerprint string `json:"fingerprint,omitempty"`
	Email       string `json:"email"`
	UserID      string `json:"user_id"`
	DeviceID    string `json:"device_id"`
	Token       []byte `json:"token"`
	FileKey     []byte `json:"file_key"`
	AuthKey     []byte `json:"auth_key"`
	BoxPrivate  []byte `json:"box_private_key"`
	RecoveryKey []byte `json:"recovery_key"`
}

func (a *AccessKeys) validate() error {
	switch {
	case a.Server == "":
		return errors.New("server is empty")
	case a.Email == "":
		return errors.New("email is empty")
	case a.UserID == "":
		return errors.New("user ID is empty")
	case a.DeviceID == "":
		return errors.New("device ID is empty")
	case len(a.Token) == 0:
		return errors.New("token is empty")
	case len(a.Token) > maxTokenSize:
		return fmt.Errorf("token of %d bytes exceeds %d", len(a.Token), maxTokenSize)
	}
	return a.Keys.validate()
}

func encodeAccessKeys(a *AccessKeys) ([]byte, error) {
	if err := a.validate(); err != nil {
		return nil, fmt.Errorf("encode access.keys: %w", err)
	}
	out, err := json.MarshalIndent(accessKeysJSON{
		Version:     accessKeysVersion,
		Server:      a.Server,
		Fingerprint: a.Fingerprint,
		Email:       a.Email,
		UserID:      a.UserID,
		DeviceID:    a.DeviceID,
		Token:       a.Token,
		FileKey:     a.Keys.FileKey[:],
		AuthKey:     a.Keys.AuthKey[:],
		BoxPrivate:  a.Keys.Box.Private[:],
		RecoveryKey: a.Keys.Recovery[:],
	}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode access.keys: %w", err)
	}
	return append(out, '\n'), nil
}

func decodeAccessKeys(data []byte) (*AccessKeys, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var j accessKeysJSON
	if err := dec.Decode(&j); err != nil {
		return nil, fmt.Errorf("access.keys: %w: %w", ErrMalformedKeys, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("access.keys: %w: trailing data after the JSON object", ErrMalformedKeys)
	}
	if j.Version != accessKeysVersion {
		return nil, fmt.Errorf("access.keys: %w: unsupported version %d (this client reads %d)", ErrMalformedKeys, j.Version, accessKeysVersion)
	}
	a := &AccessKeys{
		Server:      j.Server,
		Fingerprint: j.Fingerprint,
		Email:       j.Email,
		UserID:      j.UserID,
		DeviceID:    j.DeviceID,
		Token:       j.Token,
	}
	for _, f := range []struct {
		name string
		src  []byte
		dst  *Key
	}{
		{"file_key", j.FileKey, &a.Keys.FileKey},
		{"auth_key", j.AuthKey, &a.Keys.AuthKey},
		{"box_private_key", j.BoxPrivate, (*Key)(&a.Keys.Box.Private)},
		{"recovery_key", j.RecoveryKey, &a.Keys.Recovery},
	} {
		if len(f.src) != KeySize {
			return nil, fmt.Errorf("access.keys: %w: %s is %d bytes, want %d", ErrMalformedKeys, f.name, len(f.src), KeySize)
		}
		copy(f.dst[:], f.src)
	}
	pub, err := boxPublicKey(&a.Keys.Box.Private)
	if err != nil {
		return nil, fmt.Errorf("access.keys: %w: %w", ErrMalformedKeys, err)
	}
	a.Keys.Box.Public = pub
	if err := a.validate(); err != nil {
		return nil, fmt.Errorf("access.keys: %w: %w", ErrMalformedKeys, err)
	}
	return a, nil
}

// WriteAccessKeys writes a to path atomically: a temporary file created
// with mode 0600 in the same directory is written, synced and renamed over
// path, then the directory is synced. A crash leaves the old file or the
// new one, never a partial one, and the secrets are never world-readable.
func WriteAccessKeys(path string, a *AccessKeys) (err error) {
	data, err := encodeAccessKeys(a)
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".access.keys-*.tmp") // mode 0600
	if err != nil {
		return fmt.Errorf("write access.keys: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write access.keys: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("write access.keys: sync: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write access.keys: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write access.keys: %w", err)
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable. Windows cannot open a directory
// for syncing, and NTFS journals the rename itself.
func syncDir(dir string) error {
	if runtime.GOOS == "windows" {
		return nil
	}
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}

// ReadAccessKeys reads and validates access.keys. Like ssh with a private
// key, it refuses a file that group or others can access (on systems with
// Unix permissions): the error matches ErrInsecureKeyFile and says how to
// fix it. A damaged file yields ErrMalformedKeys.
func ReadAccessKeys(path string) (*AccessKeys, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read access.keys: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read access.keys: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("read access.keys: %s is not a regular file", path)
	}
	if perm := fi.Mode().Perm(); runtime.GOOS != "windows" && perm&0o077 != 0 {
		return nil, fmt.Errorf("read access.keys: %w: %s has mode %04o; run: chmod 600 %s", ErrInsecureKeyFile, path, perm, path)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxAccessKeysSize+1))
	if err != nil {
		return nil, fmt.Errorf("read access.keys: %w", err)
	}
	if len(data) > maxAccessKeysSize {
		return nil, fmt.Errorf("access.keys: %w: larger than %d bytes", ErrMalformedKeys, maxAccessKeysSize)
	}
	a, err := decodeAccessKeys(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return a, nil
}
