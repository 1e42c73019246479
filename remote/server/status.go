package server

import (
	"context"
	"errors"

	pb "github.com/anysync/anysync/proto/anysyncpb"
	"github.com/anysync/anysync/remote/server/meta"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// typed returns a status carrying an ErrorInfo reason, so the client can
// tell, say, "head moved" from any other failed precondition.
func typed(c codes.Code, reason, msg string) error {
	st := status.New(c, msg)
	if withInfo, err := st.WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: pb.ErrorDomain}); err == nil {
		st = withInfo
	}
	return st.Err()
}

var (
	errUnauthenticated = status.Error(codes.Unauthenticated, "missing, invalid or revoked access token")
	errWrongPassword   = typed(codes.Unauthenticated, pb.ReasonWrongPassword, "wrong email or password")
	errDisabled        = typed(codes.Unauthenticated, pb.ReasonAccountDisabled, "account disabled by the administrator")
	errShuttingDown    = typed(codes.Unavailable, pb.ReasonShuttingDown, "server shutting down")
)

// toStatus turns an internal error into what the client sees. Unknown
// errors become Internal with a generic message: storage and database
// errors may name paths or hosts the client has no business knowing.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	switch {
	case errors.Is(err, ErrInvalid):
		return status.Error(codes.InvalidArgument, err.Error())
	case errors.Is(err, meta.ErrHeadMoved):
		return typed(codes.FailedPrecondition, pb.ReasonHeadMoved, err.Error())
	case errors.Is(err, meta.ErrBadCommit):
		return typed(codes.FailedPrecondition, pb.ReasonBadCommit, err.Error())
	case errors.Is(err, meta.ErrQuota):
		return typed(codes.ResourceExhausted, pb.ReasonQuota, "storage "+err.Error())
	case errors.Is(err, meta.ErrPackInUse):
		return typed(codes.FailedPrecondition, pb.ReasonPackInUse, err.Error())
	case errors.Is(err, meta.ErrPackBusy):
		// Usually the cut-off first try of this very upload, whose
		// reservation is about to go: the client retries.
		return status.Error(codes.Unavailable, "an upload or deletion of this pack is in progress; retry")
	case errors.Is(err, meta.ErrNotFound):
		return status.Error(codes.NotFound, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, "call cancelled")
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, "deadline exceeded")
	}
	return status.Error(codes.Internal, "internal server error")
}
