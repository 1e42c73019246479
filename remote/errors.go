package remote

import (
	"errors"

	pb "github.com/anysync/anysync/proto/anysyncpb"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Errors of the client, matched with errors.Is. Every error a call returns
// wraps one of them (or a context error).
var (
	// ErrUnauthenticated: the token is missing, forged, revoked, or the
	// account is disabled. Log in again.
	ErrUnauthenticated = errors.New("not authenticated")
	// ErrWrongPassword: the login proof (or old proof) did not match.
	ErrWrongPassword = errors.New("wrong email or password")
	// ErrAccountDisabled: the administrator disabled the account. It also
	// matches ErrUnauthenticated.
	ErrAccountDisabled = errors.New("account disabled")
	// ErrRateLimited: too many failed attempts; wait before trying again.
	ErrRateLimited = errors.New("too many failed attempts")
	// ErrAccountExists: sign-up with an email that has an account.
	ErrAccountExists = errors.New("account already exists")
	// ErrSignupClosed: the server accepts no new accounts.
	ErrSignupClosed = errors.New("sign-up closed")
	// ErrHeadMoved: Commit's expected head is stale; merge and retry.
	ErrHeadMoved = errors.New("head moved")
	// ErrBadCommit: a commit named data the server does not hold (a pack
	// not uploaded, a range outside it, an unindexed version blob) or a
	// parent that is not the head.
	ErrBadCommit = errors.New("commit refers to data not stored")
	// ErrQuota: the upload would exceed the account's storage quota.
	ErrQuota = errors.New("storage quota exceeded")
	// ErrPackInUse: DeletePack of a pack the index refers to.
	ErrPackInUse = errors.New("pack in use")
	// ErrPackExists: a pack of that name exists with another size.
	ErrPackExists = errors.New("pack exists")
	// ErrNotFound: no such pack or device in this account.
	ErrNotFound = errors.New("not found")
	// ErrOutOfRange: a range past the end of a pack.
	ErrOutOfRange = errors.New("range outside pack")
	// ErrInvalid: the server (or this client) refused a malformed request.
	ErrInvalid = errors.New("invalid request")
	// ErrUnavailable: the server could not be reached in time, after
	// retries.
	ErrUnavailable = errors.New("server unavailable")
	// ErrFingerprintMismatch: the server's certificate is not the pinned
	// one.
	ErrFingerprintMismatch = errors.New("server certificate fingerprint mismatch")
	// ErrUntrustedCertificate: with WithCAFile, the server's certificate
	// does not verify against the CA for the server's name.
	ErrUntrustedCertificate = errors.New("server certificate not trusted")
	// ErrBadResponse: the server's answer broke the protocol.
	ErrBadResponse = errors.New("malformed server response")
	// ErrServer: any other server-side failure.
	ErrServer = errors.New("server error")
)

// Error is a failed call: the operation, the server's message, and the
// sentinels it matches.
type Error struct {
	Op     string
	Code   codes.Code
	Reason string // the ErrorInfo reason, if the server typed the error
	Msg    string
	kinds  []error
}

func (e *Error) Error() string {
	if e.Msg == "" {
		return e.Op + ": " + e.kinds[0].Error()
	}
	return e.Op + ": " + e.Msg
}

// Unwrap returns the sentinels e matches.
func (e *Error) Unwrap() []error { return e.kinds }

// reason returns the AnySync ErrorInfo reason of a status, if any.
func reason(st *status.Status) string {
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.GetDomain() == pb.ErrorDomain {
			return info.GetReason()
		}
	}
	return ""
}

var reasonKinds = map[string][]error{
	pb.ReasonHeadMoved:       {ErrHeadMoved},
	pb.ReasonBadCommit:       {ErrBadCommit},
	pb.ReasonQuota:           {ErrQuota},
	pb.ReasonRateLimited:     {ErrRateLimited},
	pb.ReasonWrongPassword:   {ErrWrongPassword},
	pb.ReasonAccountDisabled: {ErrAccountDisabled, ErrUnauthenticated},
	pb.ReasonAccountExists:   {ErrAccountExists},
	pb.ReasonSignupClosed:    {ErrSignupClosed},
	pb.ReasonPackInUse:       {ErrPackInUse},
	pb.ReasonPackExists:      {ErrPackExists},
	pb.ReasonShuttingDown:    {ErrUnavailable},
}

var codeKinds = map[codes.Code]error{
	codes.Unauthenticated:   ErrUnauthenticated,
	codes.NotFound:          ErrNotFound,
	codes.OutOfRange:        ErrOutOfRange,
	codes.InvalidArgument:   ErrInvalid,
	codes.Unavailable:       ErrUnavailable,
	codes.DeadlineExceeded:  ErrUnavailable,
	codes.ResourceExhausted: ErrUnavailable,
	codes.AlreadyExists:     ErrPackExists,
}

// mapError turns a gRPC error into an *Error. Context errors of the
// caller's own context pass through unchanged.
func mapError(op string, err error) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return err
	}
	st, ok := status.FromError(err)
	if !ok {
		if errors.Is(err, ErrBadResponse) || errors.Is(err, ErrInvalid) {
			return err
		}
		return &Error{Op: op, Code: codes.Unknown, Msg: err.Error(), kinds: []error{ErrServer, err}}
	}
	out := &Error{Op: op, Code: st.Code(), Reason: reason(st), Msg: st.Message()}
	if kinds, ok := reasonKinds[out.Reason]; ok {
		out.kinds = kinds
	} else if k, ok := codeKinds[st.Code()]; ok {
		out.kinds = []error{k}
	} else {
		out.kinds = []error{ErrServer}
	}
	return out
}

// transient reports whether a failed call may succeed if tried again.
func transient(err error) bool {
	st, ok := status.FromError(err)
	if !ok {
		return false
	}
	switch st.Code() {
	case codes.Unavailable:
		// Includes a server shutting down: the next process will answer.
		return true
	case codes.DeadlineExceeded:
		return true
	case codes.ResourceExhausted:
		// Quota and rate limits are answers, not congestion.
		return reason(st) == ""
	}
	return false
}
