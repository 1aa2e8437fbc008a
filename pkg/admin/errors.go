package admin

import (
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rwxnfs/rwxnfs/pkg/exports"
)

// grpcErr maps table errors to gRPC status codes.
func grpcErr(err error) error {
	if err == nil {
		return nil
	}
	switch exports.KindOf(err) {
	case exports.KindInvalid:
		return status.Error(codes.InvalidArgument, err.Error())
	case exports.KindExists:
		return status.Error(codes.AlreadyExists, err.Error())
	case exports.KindNotFound:
		return status.Error(codes.NotFound, err.Error())
	case exports.KindPrecondition:
		return status.Error(codes.FailedPrecondition, err.Error())
	case exports.KindOutOfRange:
		return status.Error(codes.OutOfRange, err.Error())
	case exports.KindAborted:
		return status.Error(codes.Aborted, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

func invalid(format string, a ...any) error {
	return status.Errorf(codes.InvalidArgument, format, a...)
}
