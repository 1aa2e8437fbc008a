package admin

import (
	"errors"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rwxnfs/rwxnfs/pkg/exports"
)

func TestGRPCErrorCodes(t *testing.T) {
	for kind, code := range map[exports.ErrorKind]codes.Code{
		exports.KindInvalid: codes.InvalidArgument, exports.KindExists: codes.AlreadyExists, exports.KindNotFound: codes.NotFound,
		exports.KindPrecondition: codes.FailedPrecondition, exports.KindOutOfRange: codes.OutOfRange, exports.KindAborted: codes.Aborted,
	} {
		if got := status.Code(grpcErr(&exports.Error{Kind: kind, Msg: "x"})); got != code {
			t.Errorf("kind %d: %v, want %v", kind, got, code)
		}
	}
	if got := status.Code(grpcErr(errors.New("disk on fire"))); got != codes.Internal {
		t.Errorf("plain error: %v", got)
	}
}
