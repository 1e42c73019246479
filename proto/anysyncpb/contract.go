package anysyncpb

import (
	"crypto/sha256"
	"encoding/base64"
)

// Wire limits shared by the server and the client. docs/protocol.md lists
// them; changing one is a protocol change.
const (
	// IDSize is the size of blob and version IDs.
	IDSize = 32
	// ProofSize is the size of a login proof.
	ProofSize = 32
	// BoxKeySize is the size of a NaCl box public key.
	BoxKeySize = 32
	// SaltSize is the size of an account's scrypt salt. It is fixed so a
	// fake salt for an unknown email looks like a real one.
	SaltSize = 16
	// TokenSize is the size of an access token.
	TokenSize = 32
	// MaxMasterKeys bounds master.keys.
	MaxMasterKeys = 4 << 10
	// MaxEmail bounds an email address (RFC 5321 path limit).
	MaxEmail = 254
	// MaxDeviceName and MaxClientVersion bound the free-text fields.
	MaxDeviceName    = 128
	MaxClientVersion = 64
	// MaxCommitEntries bounds the index entries of one commit, and so the
	// size of a CommitVersion request (about 115 bytes per entry).
	MaxCommitEntries = 100_000
	// MaxHasBlobs bounds the IDs of one HasBlobs call.
	MaxHasBlobs = 100_000
	// MaxPageSize bounds ListVersions and ListPacks pages.
	MaxPageSize = 1000
	// MaxIndexPage is the largest IndexSince limit a server honours; a
	// page still holds at least one whole version.
	MaxIndexPage = MaxCommitEntries
	// MaxUploadChunk bounds the data of one UploadPack message.
	MaxUploadChunk = 1 << 20
	// MaxRange bounds one DownloadRange call.
	MaxRange = 16 << 20
	// MaxMessage is the largest message either side accepts.
	MaxMessage = MaxRange + 1<<20
	// PackNameLen is the length of a pack name: lowercase hex digits.
	PackNameLen = 64
)

// ErrorDomain is the domain of the google.rpc.ErrorInfo detail that types
// an AnySync error; Reason* are its reasons.
const ErrorDomain = "anysync"

// Error reasons.
const (
	ReasonHeadMoved       = "HEAD_MOVED"
	ReasonBadCommit       = "BAD_COMMIT"
	ReasonQuota           = "QUOTA_EXCEEDED"
	ReasonRateLimited     = "RATE_LIMITED"
	ReasonWrongPassword   = "WRONG_PASSWORD"
	ReasonAccountDisabled = "ACCOUNT_DISABLED"
	ReasonAccountExists   = "ACCOUNT_EXISTS"
	ReasonSignupClosed    = "SIGNUP_CLOSED"
	ReasonPackInUse       = "PACK_IN_USE"
	ReasonPackExists      = "PACK_EXISTS"
	ReasonShuttingDown    = "SHUTTING_DOWN"
)

// AuthHeader is the gRPC metadata key carrying "Bearer <base64 token>".
const AuthHeader = "authorization"

// Fingerprint names a certificate the way SSH names host keys:
// "SHA256:" and the unpadded standard base64 of SHA-256 over the DER bytes.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])
}
