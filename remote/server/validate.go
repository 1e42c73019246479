package server

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/anysync/anysync/crypto"
	pb "github.com/anysync/anysync/proto/anysyncpb"
	"github.com/anysync/anysync/remote/server/meta"
)

// ErrInvalid is wrapped by every validation error; the service answers it
// with InvalidArgument.
var ErrInvalid = errors.New("invalid request")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// NormalizeEmail lowercases and trims an email address and checks that it
// is plausible: one '@' between non-empty parts, printable, bounded.
func NormalizeEmail(s string) (string, error) {
	// Checked before lowercasing, which would turn bad bytes into U+FFFD.
	if !utf8.ValidString(s) {
		return "", invalid("email is not valid UTF-8")
	}
	e := strings.ToLower(strings.TrimSpace(s))
	if e == "" {
		return "", invalid("email is empty")
	}
	if len(e) > pb.MaxEmail {
		return "", invalid("email is longer than %d bytes", pb.MaxEmail)
	}
	for _, r := range e {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return "", invalid("email contains a space or control character")
		}
	}
	at := strings.IndexByte(e, '@')
	if at <= 0 || at == len(e)-1 || strings.Count(e, "@") != 1 {
		return "", invalid("email must look like name@domain")
	}
	return e, nil
}

// ValidateParams checks scrypt parameters with the client's own bounds
// (crypto.ScryptParams.Validate: bounded memory and work, a floor on cost)
// and requires a salt of exactly SaltSize bytes, so fake salts for unknown
// emails look like real ones.
func ValidateParams(p *pb.ScryptParams) (meta.Params, error) {
	if p == nil {
		return meta.Params{}, invalid("scrypt parameters missing")
	}
	const maxInt32 = 1<<31 - 1
	if p.GetN() > maxInt32 || p.GetR() > maxInt32 || p.GetP() > maxInt32 {
		return meta.Params{}, invalid("scrypt parameters out of range")
	}
	cp := crypto.ScryptParams{N: int(p.GetN()), R: int(p.GetR()), P: int(p.GetP()), Salt: p.GetSalt()}
	if err := cp.Validate(); err != nil {
		return meta.Params{}, invalid("%v", err)
	}
	if len(cp.Salt) != pb.SaltSize {
		return meta.Params{}, invalid("salt must be %d bytes, got %d", pb.SaltSize, len(cp.Salt))
	}
	return meta.Params{N: cp.N, R: cp.R, P: cp.P, Salt: append([]byte(nil), cp.Salt...)}, nil
}

func checkText(what, s string, maxLen int) error {
	if len(s) > maxLen {
		return invalid("%s is longer than %d bytes", what, maxLen)
	}
	if !utf8.ValidString(s) {
		return invalid("%s is not valid UTF-8", what)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return invalid("%s contains a control character", what)
		}
	}
	return nil
}

func checkLen(what string, b []byte, n int) error {
	if len(b) != n {
		return invalid("%s must be %d bytes, got %d", what, n, len(b))
	}
	return nil
}

func checkMasterKeys(b []byte) error {
	if len(b) == 0 || len(b) > pb.MaxMasterKeys {
		return invalid("master.keys must be 1 to %d bytes, got %d", pb.MaxMasterKeys, len(b))
	}
	return nil
}

// ValidHexID reports whether s is n lowercase hex digits.
func ValidHexID(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ValidPackName reports whether s is a pack name: 64 lowercase hex digits.
func ValidPackName(s string) bool { return ValidHexID(s, pb.PackNameLen) }

func checkPackName(s string) error {
	if !ValidPackName(s) {
		return invalid("pack name must be %d lowercase hex digits", pb.PackNameLen)
	}
	return nil
}

func parseID(what string, b []byte) (crypto.ID, error) {
	var id crypto.ID
	if len(b) != pb.IDSize {
		return id, invalid("%s must be %d bytes, got %d", what, pb.IDSize, len(b))
	}
	copy(id[:], b)
	if id.IsZero() {
		return id, invalid("%s is all zero", what)
	}
	return id, nil
}

// signupArgs is a validated SignupRequest.
type signupArgs struct {
	email         string
	proof         []byte
	params        meta.Params
	masterKeys    []byte
	accountBox    []byte
	deviceBox     [32]byte
	deviceName    string
	clientVersion string
}

// ValidateSignup checks every field of a SignupRequest.
func validateSignup(req *pb.SignupRequest) (signupArgs, error) {
	var a signupArgs
	var err error
	if a.email, err = NormalizeEmail(req.GetEmail()); err != nil {
		return a, err
	}
	if err := checkLen("proof", req.GetProof(), pb.ProofSize); err != nil {
		return a, err
	}
	if a.params, err = ValidateParams(req.GetParams()); err != nil {
		return a, err
	}
	if err := checkMasterKeys(req.GetMasterKeys()); err != nil {
		return a, err
	}
	if err := checkLen("account box public key", req.GetAccountBoxPublicKey(), pb.BoxKeySize); err != nil {
		return a, err
	}
	if err := checkLen("device box public key", req.GetDeviceBoxPublicKey(), pb.BoxKeySize); err != nil {
		return a, err
	}
	if err := checkText("device name", req.GetDeviceName(), pb.MaxDeviceName); err != nil {
		return a, err
	}
	if err := checkText("client version", req.GetClientVersion(), pb.MaxClientVersion); err != nil {
		return a, err
	}
	a.proof = req.GetProof()
	a.masterKeys = req.GetMasterKeys()
	a.accountBox = req.GetAccountBoxPublicKey()
	copy(a.deviceBox[:], req.GetDeviceBoxPublicKey())
	a.deviceName = req.GetDeviceName()
	a.clientVersion = req.GetClientVersion()
	return a, nil
}

// loginArgs is a validated LoginRequest.
type loginArgs struct {
	email         string
	proof         []byte
	deviceBox     [32]byte
	deviceName    string
	clientVersion string
}

func validateLogin(req *pb.LoginRequest) (loginArgs, error) {
	var a loginArgs
	var err error
	if a.email, err = NormalizeEmail(req.GetEmail()); err != nil {
		return a, err
	}
	if err := checkLen("proof", req.GetProof(), pb.ProofSize); err != nil {
		return a, err
	}
	if err := checkLen("device box public key", req.GetDeviceBoxPublicKey(), pb.BoxKeySize); err != nil {
		return a, err
	}
	if err := checkText("device name", req.GetDeviceName(), pb.MaxDeviceName); err != nil {
		return a, err
	}
	if err := checkText("client version", req.GetClientVersion(), pb.MaxClientVersion); err != nil {
		return a, err
	}
	a.proof = req.GetProof()
	copy(a.deviceBox[:], req.GetDeviceBoxPublicKey())
	a.deviceName = req.GetDeviceName()
	a.clientVersion = req.GetClientVersion()
	return a, nil
}

// changePasswordArgs is a validated ChangePasswordRequest.
type changePasswordArgs struct {
	oldProof   []byte
	newProof   []byte
	params     meta.Params
	masterKeys []byte
}

func validateChangePassword(req *pb.ChangePasswordRequest) (changePasswordArgs, error) {
	var a changePasswordArgs
	var err error
	if err := checkLen("old proof", req.GetOldProof(), pb.ProofSize); err != nil {
		return a, err
	}
	if err := checkLen("new proof", req.GetNewProof(), pb.ProofSize); err != nil {
		return a, err
	}
	if a.params, err = ValidateParams(req.GetNewParams()); err != nil {
		return a, err
	}
	if err := checkMasterKeys(req.GetNewMasterKeys()); err != nil {
		return a, err
	}
	a.oldProof, a.newProof, a.masterKeys = req.GetOldProof(), req.GetNewProof(), req.GetNewMasterKeys()
	return a, nil
}

func validateDeviceID(id string) error {
	if !ValidHexID(id, 32) {
		return invalid("device ID must be 32 lowercase hex digits")
	}
	return nil
}

// pageLimit turns a requested page size into one the server honours.
func pageLimit(req uint32, maxLimit int) int {
	if req == 0 || int64(req) > int64(maxLimit) {
		return maxLimit
	}
	return int(req)
}

func parseIndexEntry(e *pb.IndexEntry) (meta.IndexEntry, error) {
	id, err := parseID("blob ID", e.GetBlobId())
	if err != nil {
		return meta.IndexEntry{}, err
	}
	if err := checkPackName(e.GetPack()); err != nil {
		return meta.IndexEntry{}, err
	}
	if e.GetLength() == 0 {
		return meta.IndexEntry{}, invalid("blob %s has length 0", id.Short())
	}
	if uint64(e.GetOffset())+uint64(e.GetLength()) > 1<<32-1 {
		return meta.IndexEntry{}, invalid("blob %s ends past 4 GiB", id.Short())
	}
	return meta.IndexEntry{Blob: id, Pack: e.GetPack(), Offset: e.GetOffset(), Length: e.GetLength()}, nil
}

func validateCommit(req *pb.CommitVersionRequest) (meta.Commit, error) {
	var c meta.Commit
	var err error
	c.ExpectedSeq = req.GetExpectedSeq()
	if c.Version, err = parseID("version ID", req.GetVersionId()); err != nil {
		return c, err
	}
	if c.ExpectedSeq == 0 {
		if len(req.GetParentId()) != 0 {
			return c, invalid("the first version has no parent")
		}
	} else if c.Parent, err = parseID("parent ID", req.GetParentId()); err != nil {
		return c, err
	}
	if len(req.GetEntries()) > pb.MaxCommitEntries {
		return c, invalid("%d index entries, at most %d per commit", len(req.GetEntries()), pb.MaxCommitEntries)
	}
	c.Entries = make([]meta.IndexEntry, len(req.GetEntries()))
	for i, e := range req.GetEntries() {
		if c.Entries[i], err = parseIndexEntry(e); err != nil {
			return c, err
		}
	}
	return c, nil
}

func validateHasBlobs(req *pb.HasBlobsRequest) ([]crypto.ID, error) {
	if len(req.GetBlobIds()) > pb.MaxHasBlobs {
		return nil, invalid("%d blob IDs, at most %d per call", len(req.GetBlobIds()), pb.MaxHasBlobs)
	}
	ids := make([]crypto.ID, len(req.GetBlobIds()))
	for i, b := range req.GetBlobIds() {
		id, err := parseID("blob ID", b)
		if err != nil {
			return nil, err
		}
		ids[i] = id
	}
	return ids, nil
}

func validateUploadHeader(h *pb.UploadPackHeader, maxPack int64) error {
	if h == nil {
		return invalid("an upload must start with a header")
	}
	if err := checkPackName(h.GetName()); err != nil {
		return err
	}
	if h.GetSize() == 0 || h.GetSize() > uint64(maxPack) {
		return invalid("pack size %d must be in [1, %d]", h.GetSize(), maxPack)
	}
	return nil
}

func validateDownload(req *pb.DownloadRangeRequest) error {
	if err := checkPackName(req.GetPack()); err != nil {
		return err
	}
	if req.GetLength() == 0 || req.GetLength() > pb.MaxRange {
		return invalid("range length %d must be in [1, %d]", req.GetLength(), pb.MaxRange)
	}
	if req.GetOffset() > 1<<62 {
		return invalid("range offset %d is out of bounds", req.GetOffset())
	}
	return nil
}

func validateListPacks(req *pb.ListPacksRequest) error {
	if req.GetAfter() != "" {
		return checkPackName(req.GetAfter())
	}
	return nil
}
