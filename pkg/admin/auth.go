package admin

import (
	"context"
	"crypto/subtle"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

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
