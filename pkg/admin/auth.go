package admin

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/rwxnfs/rwxnfs/internal/secret"
)

// readToken reads the bearer token every call must present; the API
// does not start without one, nor with one shorter than 16 characters,
// nor from a file group or others may read or write.
func readToken(path string) ([]byte, error) {
	if path == "" {
		return nil, errors.New("the admin API needs a bearer token file (--admin-token-file)")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("admin token: %w", err)
	}
	if err := secret.Private(path, "admin token file"); err != nil {
		return nil, err
	}
	token := strings.TrimSpace(string(raw))
	if len(token) < 16 {
		return nil, fmt.Errorf("admin token in %s is shorter than 16 characters", path)
	}
	return []byte(token), nil
}

// EnsureToken writes a new random token to path (mode 0600) unless the
// file exists; created says whether it did.
func EnsureToken(path string) (created bool, err error) {
	if _, err := os.Stat(path); err == nil {
		return false, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return false, fmt.Errorf("admin token: %w", err)
	}
	b := make([]byte, 24)
	rand.Read(b)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return false, fmt.Errorf("admin token: %w", err)
	}
	_, err = fmt.Fprintln(f, hex.EncodeToString(b))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return false, fmt.Errorf("admin token: %w", err)
	}
	return true, nil
}

// authenticate refuses calls without the bearer token, in constant time,
// and logs who tried.
func (s *Server) authenticate(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	got := ""
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		for _, v := range md.Get("authorization") {
			if t, ok := strings.CutPrefix(v, "Bearer "); ok {
				got = t
			}
		}
	}
	if got == "" || subtle.ConstantTimeCompare([]byte(got), s.token) != 1 {
		from := "unknown"
		if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
			from = p.Addr.String()
		}
		reason := "wrong token"
		if got == "" {
			reason = "no bearer token"
		}
		s.log.Warn("admin call refused", "method", info.FullMethod, "peer", from, "reason", reason)
		return nil, status.Error(codes.Unauthenticated, "admin API: "+reason)
	}
	start := time.Now()
	resp, err := h(ctx, req)
	s.log.Info("admin call", "method", info.FullMethod, "code", status.Code(err).String(), "took", time.Since(start).Round(time.Microsecond))
	return resp, err
}
