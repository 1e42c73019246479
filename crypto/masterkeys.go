package crypto

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
)

// master.keys layout (docs/format.md):
//
//	header:  "ASMK" | version=1 | log2(N) u8 | r u32be | p u32be | saltLen u8 | salt
//	wrap 1:  nonce(12) | AES-256-GCM(payload) under the password wrap key,
//	         AD = header | 0x01
//	wrap 2:  nonce(12) | AES-256-GCM(payload) under the recovery wrap key,
//	         AD = header | wrap 1 | 0x02
//
// The recovery wrap authenticates every byte before it, and opening with
// the password also opens the recovery wrap (its key is in the payload), so
// either way a change to any byte of the file is an error. The wrap IDs keep
// the two wraps from being swapped.
const (
	masterKeysMagic   = "ASMK"
	masterKeysVersion = 1
	masterFixedHeader = len(masterKeysMagic) + 1 + 1 + 4 + 4 + 1
	masterWrapSize    = NonceSize + accountPayloadSize + TagSize

	wrapIDPassword byte = 1
	wrapIDRecovery byte = 2
)

// ErrMalformedKeys means a key file (master.keys or access.keys) is not
// well formed: wrong magic, unknown version, bad length or parameters.
var ErrMalformedKeys = errors.New("malformed key file")

// ErrWrongPassword means master.keys did not open with the password given.
// A corrupted password wrap looks the same: AES-GCM cannot tell them apart.
var ErrWrongPassword = errors.New("wrong password")

// ErrWrongRecoveryKey means master.keys did not open with the recovery key.
var ErrWrongRecoveryKey = errors.New("wrong recovery key")

// masterFile is a structurally valid, not yet decrypted master.keys.
type masterFile struct {
	params   ScryptParams
	header   []byte
	password []byte // nonce || ciphertext
	recovery []byte // nonce || ciphertext
}

func parseMasterKeys(file []byte) (*masterFile, error) {
	if len(file) < masterFixedHeader {
		return nil, fmt.Errorf("master.keys: %w: %d bytes is too short", ErrMalformedKeys, len(file))
	}
	if string(file[:4]) != masterKeysMagic {
		return nil, fmt.Errorf("master.keys: %w: bad magic %q", ErrMalformedKeys, file[:4])
	}
	if v := file[4]; v != masterKeysVersion {
		return nil, fmt.Errorf("master.keys: %w: unsupported version %d (this client reads %d)", ErrMalformedKeys, v, masterKeysVersion)
	}
	logN := file[5]
	r := binary.BigEndian.Uint32(file[6:10])
	p := binary.BigEndian.Uint32(file[10:14])
	saltLen := int(file[14])
	if logN < 1 || logN > 30 || r > maxScryptNR || p > maxScryptP {
		return nil, fmt.Errorf("master.keys: %w: scrypt log2(N)=%d r=%d p=%d out of range", ErrMalformedKeys, logN, r, p)
	}
	headerLen := masterFixedHeader + saltLen
	if want := headerLen + 2*masterWrapSize; len(file) != want {
		return nil, fmt.Errorf("master.keys: %w: %d bytes, want %d", ErrMalformedKeys, len(file), want)
	}
	params := ScryptParams{
		N:    1 << logN,
		R:    int(r),
		P:    int(p),
		Salt: append([]byte(nil), file[masterFixedHeader:headerLen]...),
	}
	if err := params.Validate(); err != nil {
		return nil, fmt.Errorf("master.keys: %w: %w", ErrMalformedKeys, err)
	}
	return &masterFile{
		params:   params,
		header:   file[:headerLen],
		password: file[headerLen : headerLen+masterWrapSize],
		recovery: file[headerLen+masterWrapSize:],
	}, nil
}

// encodeMasterHeader returns the header for p, which must be valid.
func encodeMasterHeader(p ScryptParams) []byte {
	h := make([]byte, 0, masterFixedHeader+len(p.Salt))
	h = append(h, masterKeysMagic...)
	h = append(h, masterKeysVersion, byte(bits.Len(uint(p.N))-1))
	h = binary.BigEndian.AppendUint32(h, uint32(p.R))
	h = binary.BigEndian.AppendUint32(h, uint32(p.P))
	h = append(h, byte(len(p.Salt)))
	return append(h, p.Salt...)
}

func wrapAEAD(key Key) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key[:])
	if err != nil {
		return nil, fmt.Errorf("aes: %w", err)
	}
	return cipher.NewGCM(block)
}

// wrapAD is header || prior || wrapID, where prior is the password wrap
// when sealing the recovery wrap and empty otherwise.
func wrapAD(header, prior []byte, wrapID byte) []byte {
	ad := make([]byte, 0, len(header)+len(prior)+1)
	ad = append(ad, header...)
	ad = append(ad, prior...)
	return append(ad, wrapID)
}

// sealWrap appends nonce || AES-GCM(payload) to dst.
func sealWrap(dst []byte, key Key, payload, ad []byte) ([]byte, error) {
	aead, err := wrapAEAD(key)
	if err != nil {
		return nil, err
	}
	var nonce [NonceSize]byte
	if _, err := rand.Read(nonce[:]); err != nil {
		return nil, fmt.Errorf("read nonce: %w", err)
	}
	dst = append(dst, nonce[:]...)
	return aead.Seal(dst, nonce[:], payload, ad), nil
}

// openWrap returns the payload, or ErrAuth if the wrap does not open.
func openWrap(key Key, wrap, ad []byte) ([]byte, error) {
	aead, err := wrapAEAD(key)
	if err != nil {
		return nil, err
	}
	out, err := aead.Open(nil, wrap[:NonceSize], wrap[NonceSize:], ad)
	if err != nil {
		return nil, ErrAuth
	}
	return out, nil
}

func recoveryWrapKey(recovery Key) Key { return Derive(recovery, purposeRecoveryWrap, nil) }

// SealMasterKeys encrypts keys into a new master.keys: once under the
// password (scrypt with p) and once under the recovery key.
func SealMasterKeys(keys *AccountKeys, password []byte, p ScryptParams) ([]byte, error) {
	file, _, err := sealMasterKeys(keys, password, p)
	return file, err
}

func sealMasterKeys(keys *AccountKeys, password []byte, p ScryptParams) ([]byte, *PasswordSecrets, error) {
	if err := keys.validate(); err != nil {
		return nil, nil, fmt.Errorf("seal master.keys: %w", err)
	}
	secrets, err := DerivePasswordSecrets(password, p)
	if err != nil {
		return nil, nil, fmt.Errorf("seal master.keys: %w", err)
	}
	header := encodeMasterHeader(p)
	payload := keys.marshal()
	defer clear(payload)
	file := make([]byte, 0, len(header)+2*masterWrapSize)
	file = append(file, header...)
	if file, err = sealWrap(file, secrets.WrapKey, payload, wrapAD(header, nil, wrapIDPassword)); err != nil {
		return nil, nil, fmt.Errorf("seal master.keys: %w", err)
	}
	passwordWrap := file[len(header):]
	if file, err = sealWrap(file, recoveryWrapKey(keys.Recovery), payload, wrapAD(header, passwordWrap, wrapIDRecovery)); err != nil {
		return nil, nil, fmt.Errorf("seal master.keys: %w", err)
	}
	return file, secrets, nil
}

// ParseMasterKeysParams returns the scrypt parameters stored in master.keys,
// after checking the file's structure. Errors match ErrMalformedKeys.
func ParseMasterKeysParams(file []byte) (ScryptParams, error) {
	mf, err := parseMasterKeys(file)
	if err != nil {
		return ScryptParams{}, err
	}
	return mf.params, nil
}

// OpenMasterKeys decrypts master.keys with the password. It also returns
// the password's secrets, whose LoginProof logs this device in.
func OpenMasterKeys(file, password []byte) (*AccountKeys, *PasswordSecrets, error) {
	mf, err := parseMasterKeys(file)
	if err != nil {
		return nil, nil, err
	}
	if len(password) == 0 {
		return nil, nil, fmt.Errorf("open master.keys: %w", ErrWrongPassword)
	}
	secrets, err := DerivePasswordSecrets(password, mf.params)
	if err != nil {
		return nil, nil, fmt.Errorf("open master.keys: %w", err)
	}
	payload, err := openWrap(secrets.WrapKey, mf.password, wrapAD(mf.header, nil, wrapIDPassword))
	if err != nil {
		if errors.Is(err, ErrAuth) {
			return nil, nil, fmt.Errorf("open master.keys: %w", ErrWrongPassword)
		}
		return nil, nil, fmt.Errorf("open master.keys: %w", err)
	}
	defer clear(payload)
	keys, err := unmarshalAccountKeys(payload)
	if err != nil {
		return nil, nil, fmt.Errorf("master.keys: %w: %w", ErrMalformedKeys, err)
	}
	// Check the recovery wrap too, so a damaged one is found now rather
	// than on the day the user needs it.
	rec, err := mf.openRecovery(keys.Recovery)
	if err != nil {
		return nil, nil, fmt.Errorf("master.keys: %w: the recovery wrap does not open with the recovery key inside (%w)", ErrMalformedKeys, err)
	}
	if *rec != *keys {
		return nil, nil, fmt.Errorf("master.keys: %w: the two wraps hold different keys", ErrMalformedKeys)
	}
	return keys, secrets, nil
}

// OpenMasterKeysWithRecovery decrypts master.keys with the printed recovery
// key (see FormatRecoveryKey), for a user who lost the password. Set a new
// password afterwards with SealMasterKeys.
func OpenMasterKeysWithRecovery(file []byte, recovery string) (*AccountKeys, error) {
	rk, err := ParseRecoveryKey(recovery)
	if err != nil {
		return nil, err
	}
	mf, err := parseMasterKeys(file)
	if err != nil {
		return nil, err
	}
	return mf.openRecovery(rk)
}

// openRecovery opens the recovery wrap with the recovery key rk.
func (mf *masterFile) openRecovery(rk Key) (*AccountKeys, error) {
	payload, err := openWrap(recoveryWrapKey(rk), mf.recovery, wrapAD(mf.header, mf.password, wrapIDRecovery))
	if err != nil {
		if errors.Is(err, ErrAuth) {
			return nil, fmt.Errorf("open master.keys: %w", ErrWrongRecoveryKey)
		}
		return nil, fmt.Errorf("open master.keys: %w", err)
	}
	defer clear(payload)
	keys, err := unmarshalAccountKeys(payload)
	if err != nil {
		return nil, fmt.Errorf("master.keys: %w: %w", ErrMalformedKeys, err)
	}
	if keys.Recovery != rk {
		return nil, fmt.Errorf("master.keys: %w: recovery wrap holds another recovery key", ErrMalformedKeys)
	}
	return keys, nil
}

// RewrapMasterKeys changes the password of master.keys: same keys, same
// scrypt cost, a fresh salt, and a recovery wrap that still opens with the
// same recovery key. It returns the new file and the new password's secrets
// (the server must store the new proof's verifier). No data is re-encrypted.
func RewrapMasterKeys(file, oldPassword, newPassword []byte) ([]byte, *PasswordSecrets, error) {
	keys, _, err := OpenMasterKeys(file, oldPassword)
	if err != nil {
		return nil, nil, err
	}
	old, err := ParseMasterKeysParams(file)
	if err != nil {
		return nil, nil, err
	}
	p, err := NewScryptParams()
	if err != nil {
		return nil, nil, err
	}
	p.N, p.R, p.P = old.N, old.R, old.P
	return sealMasterKeys(keys, newPassword, p)
}
