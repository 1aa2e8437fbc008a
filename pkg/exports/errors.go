package exports

import (
	"errors"
	"fmt"
)

// ErrorKind classifies lifecycle errors for the admin API.
type ErrorKind int

// Error kinds, mapped one to one to gRPC codes by the admin API.
const (
	KindInvalid      ErrorKind = iota + 1 // InvalidArgument
	KindExists                            // AlreadyExists
	KindNotFound                          // NotFound
	KindPrecondition                      // FailedPrecondition
	KindOutOfRange                        // OutOfRange
	KindAborted                           // Aborted: the same name is busy, retry
)

// Error is a lifecycle error with a kind.
type Error struct {
	Kind ErrorKind
	Msg  string
}

func (e *Error) Error() string { return e.Msg }

func errorf(k ErrorKind, format string, a ...any) error {
	return &Error{Kind: k, Msg: fmt.Sprintf(format, a...)}
}

// KindOf returns the kind of err, or 0.
func KindOf(err error) ErrorKind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	if errors.Is(err, ErrNotFound) {
		return KindNotFound
	}
	if errors.Is(err, ErrExists) {
		return KindExists
	}
	return 0
}

// ErrExists is returned (wrapped) when creating a volume that already
// exists.
var ErrExists = errors.New("exports: volume already exists")

// ErrNotFound is returned for an unknown volume.
var ErrNotFound = errors.New("exports: no such volume")
