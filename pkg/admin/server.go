// Package admin serves the admin gRPC API (api/admin/v1) over an
// exports.Table: volume and snapshot lifecycle, usage and limits; and the
// lock manager's locks and clients.
package admin

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	adminv1 "github.com/rwxnfs/rwxnfs/api/admin/v1"
	"github.com/rwxnfs/rwxnfs/pkg/exports"
)

// Config configures the admin listener.
type Config struct {
	// Listen is "unix:/path/to.sock" or a TCP "host:port".
	Listen string
	// TokenFile holds the bearer token every call must present.
	TokenFile string
	// TLS: a server certificate and key; with ClientCA, clients must
	// present a certificate it signed (mTLS). All empty: no TLS (use a
	// unix socket or loopback).
	TLSCert, TLSKey, ClientCA string
}

// Server is a running admin API.
type Server struct {
	adminv1.UnimplementedAdminServer
	t     *exports.Table
	locks LockManager // nil: nfsd serves no locking
	log   *slog.Logger
	token []byte
	grpc  *grpc.Server
	lis   net.Listener
	done  chan struct{}
}

// Start listens and serves the admin API over t and, unless it is nil,
// the lock manager locks.
func Start(cfg Config, t *exports.Table, locks LockManager, log *slog.Logger) (*Server, error) {
	if cfg.TokenFile == "" {
		return nil, errors.New("the admin API needs a bearer token file (--admin-token-file)")
	}
	raw, err := os.ReadFile(cfg.TokenFile)
	if err != nil {
		return nil, fmt.Errorf("admin token: %w", err)
	}
	token := strings.TrimSpace(string(raw))
	if len(token) < 16 {
		return nil, fmt.Errorf("admin token in %s is shorter than 16 characters", cfg.TokenFile)
	}
	s := &Server{t: t, locks: locks, log: log, token: []byte(token), done: make(chan struct{})}
	opts := []grpc.ServerOption{grpc.UnaryInterceptor(s.authenticate)}
	if cfg.TLSCert != "" || cfg.TLSKey != "" || cfg.ClientCA != "" {
		tc, err := tlsConfig(cfg)
		if err != nil {
			return nil, err
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(tc)))
	}
	network, addr := "tcp", cfg.Listen
	if p, ok := strings.CutPrefix(cfg.Listen, "unix:"); ok {
		network, addr = "unix", p
		// A socket left by a previous run would make listen fail.
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&os.ModeSocket != 0 {
			os.Remove(p)
		}
	}
	s.lis, err = net.Listen(network, addr)
	if err != nil {
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	if network == "unix" {
		os.Chmod(addr, 0o600)
	}
	s.grpc = grpc.NewServer(opts...)
	adminv1.RegisterAdminServer(s.grpc, s)
	go func() {
		defer close(s.done)
		if err := s.grpc.Serve(s.lis); err != nil {
			log.Error("admin API stopped", "err", err)
		}
	}()
	log.Info("admin API serving", "listen", s.lis.Addr().String(), "tls", cfg.TLSCert != "", "mtls", cfg.ClientCA != "")
	return s, nil
}

func tlsConfig(cfg Config) (*tls.Config, error) {
	if cfg.TLSCert == "" || cfg.TLSKey == "" {
		return nil, errors.New("admin TLS needs both --admin-tls-cert and --admin-tls-key")
	}
	cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	if err != nil {
		return nil, fmt.Errorf("admin TLS: %w", err)
	}
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if cfg.ClientCA != "" {
		pem, err := os.ReadFile(cfg.ClientCA)
		if err != nil {
			return nil, fmt.Errorf("admin client CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("admin client CA %s holds no PEM certificate", cfg.ClientCA)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// Addr is the listener's address.
func (s *Server) Addr() net.Addr { return s.lis.Addr() }

// Stop stops serving, letting calls in flight finish until ctx ends.
func (s *Server) Stop(ctx context.Context) {
	stopped := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
		s.grpc.Stop()
	}
	<-s.done
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
	}
	return status.Error(codes.Internal, err.Error())
}

func invalid(format string, a ...any) error {
	return status.Errorf(codes.InvalidArgument, format, a...)
}

// parseParams turns StorageClass-style parameters into a request.
func parseParams(req *exports.CreateRequest, p map[string]string) error {
	req.Options = exports.DefaultOptions()
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	u32 := func(k, v string, base int) (uint32, error) {
		n, err := strconv.ParseUint(v, base, 32)
		if err != nil {
			return 0, invalid("parameter %s=%q: not a number", k, v)
		}
		return uint32(n), nil
	}
	var err error
	for _, k := range keys {
		v := p[k]
		switch k {
		case "uid":
			req.Root.UID, err = u32(k, v, 10)
		case "gid":
			req.Root.GID, err = u32(k, v, 10)
		case "mode":
			req.Root.Mode, err = u32(k, v, 8)
			if err == nil && req.Root.Mode&^0o7777 != 0 {
				err = invalid("parameter mode=%q: beyond 07777", v)
			}
		case "anonUID":
			req.Options.AnonUID, err = u32(k, v, 10)
		case "anonGID":
			req.Options.AnonGID, err = u32(k, v, 10)
		case "squash":
			req.Options.Squash = exports.Squash(v)
		case "readOnly":
			req.Options.ReadOnly, err = strconv.ParseBool(v)
			if err != nil {
				err = invalid("parameter readOnly=%q: want true or false", v)
			}
		case "clients":
			var pfx []netip.Prefix
			pfx, err = exports.ParseClients(v)
			if err != nil {
				err = invalid("parameter clients: %v", err)
			}
			req.Options.Clients = pfx
		case "inodeLimit":
			req.InodeLimit, err = strconv.ParseInt(v, 10, 64)
			if err != nil || req.InodeLimit < 0 {
				err = invalid("parameter inodeLimit=%q: want a non-negative number", v)
			}
		default:
			err = invalid("unknown parameter %q (known: uid, gid, mode, squash, anonUID, anonGID, readOnly, clients, inodeLimit)", k)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// CreateVolume implements the API.
func (s *Server) CreateVolume(ctx context.Context, r *adminv1.CreateVolumeRequest) (*adminv1.CreateVolumeResponse, error) {
	if r.GetName() == "" {
		return nil, invalid("name is required")
	}
	if r.GetCapacityBytes() < 0 {
		return nil, invalid("capacity_bytes must not be negative")
	}
	req := exports.CreateRequest{ID: r.GetName(), Capacity: r.GetCapacityBytes()}
	if err := parseParams(&req, r.GetParameters()); err != nil {
		return nil, err
	}
	if cs := r.GetContentSource(); cs != nil {
		switch {
		case cs.GetSnapshotId() != "":
			req.Source = &exports.Source{Snapshot: cs.GetSnapshotId()}
		case cs.GetVolumeId() != "":
			req.Source = &exports.Source{Volume: cs.GetVolumeId()}
		default:
			return nil, invalid("content_source names neither a snapshot nor a volume")
		}
	}
	v, existed, err := s.t.CreateVolume(req)
	if err != nil {
		return nil, grpcErr(err)
	}
	return &adminv1.CreateVolumeResponse{Volume: volumeMsg(v), Existed: existed}, nil
}

// DeleteVolume implements the API.
func (s *Server) DeleteVolume(ctx context.Context, r *adminv1.DeleteVolumeRequest) (*adminv1.DeleteVolumeResponse, error) {
	if r.GetVolumeId() == "" {
		return nil, invalid("volume_id is required")
	}
	var mode exports.ReclaimMode
	switch r.GetReclaimMode() {
	case adminv1.ReclaimMode_RECLAIM_MODE_UNSPECIFIED, adminv1.ReclaimMode_RECLAIM_MODE_DELETE:
		mode = exports.ReclaimDelete
	case adminv1.ReclaimMode_RECLAIM_MODE_RETAIN:
		mode = exports.ReclaimRetain
	case adminv1.ReclaimMode_RECLAIM_MODE_ARCHIVE:
		mode = exports.ReclaimArchive
	default:
		return nil, invalid("unknown reclaim_mode %d", r.GetReclaimMode())
	}
	res, err := s.t.DeleteVolume(r.GetVolumeId(), mode)
	if exports.KindOf(err) == exports.KindNotFound {
		return &adminv1.DeleteVolumeResponse{}, nil // already gone: CSI wants success
	}
	if err != nil {
		return nil, grpcErr(err)
	}
	return &adminv1.DeleteVolumeResponse{Path: res.Path}, nil
}

// ExpandVolume implements the API.
func (s *Server) ExpandVolume(ctx context.Context, r *adminv1.ExpandVolumeRequest) (*adminv1.ExpandVolumeResponse, error) {
	if r.GetVolumeId() == "" {
		return nil, invalid("volume_id is required")
	}
	v, err := s.t.ExpandVolume(r.GetVolumeId(), r.GetCapacityBytes())
	if err != nil {
		return nil, grpcErr(err)
	}
	return &adminv1.ExpandVolumeResponse{Volume: volumeMsg(v)}, nil
}

// GetVolume implements the API.
func (s *Server) GetVolume(ctx context.Context, r *adminv1.GetVolumeRequest) (*adminv1.GetVolumeResponse, error) {
	if r.GetVolumeId() == "" {
		return nil, invalid("volume_id is required")
	}
	v, ok := s.t.Volume(r.GetVolumeId())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "volume %s not found", r.GetVolumeId())
	}
	return &adminv1.GetVolumeResponse{Volume: volumeMsg(v)}, nil
}

const defaultPage = 1000

// page picks the entries after token (exclusive, by id), at most max.
func page(ids []string, token string, max int32) (lo, hi int, next string, err error) {
	if max < 0 {
		return 0, 0, "", invalid("max_entries must not be negative")
	}
	if max == 0 {
		max = defaultPage
	}
	if token != "" {
		if exports.ValidateID(token) != nil {
			return 0, 0, "", status.Errorf(codes.Aborted, "invalid starting_token %q", token)
		}
		lo = sort.SearchStrings(ids, token)
		if lo < len(ids) && ids[lo] == token {
			lo++
		}
	}
	hi = min(len(ids), lo+int(max))
	if hi < len(ids) {
		next = ids[hi-1]
	}
	return lo, hi, next, nil
}

// ListVolumes implements the API. The token is the last id of the
// previous page, so pages stay correct while volumes come and go.
func (s *Server) ListVolumes(ctx context.Context, r *adminv1.ListVolumesRequest) (*adminv1.ListVolumesResponse, error) {
	vols := s.t.Volumes()
	ids := make([]string, len(vols))
	for i, v := range vols {
		ids[i] = v.ID
	}
	lo, hi, next, err := page(ids, r.GetStartingToken(), r.GetMaxEntries())
	if err != nil {
		return nil, err
	}
	resp := &adminv1.ListVolumesResponse{NextToken: next}
	for _, v := range vols[lo:hi] {
		resp.Volumes = append(resp.Volumes, volumeMsg(v))
	}
	return resp, nil
}

// CreateSnapshot implements the API.
func (s *Server) CreateSnapshot(ctx context.Context, r *adminv1.CreateSnapshotRequest) (*adminv1.CreateSnapshotResponse, error) {
	if r.GetName() == "" || r.GetSourceVolumeId() == "" {
		return nil, invalid("name and source_volume_id are required")
	}
	snap, existed, err := s.t.CreateSnapshot(r.GetName(), r.GetSourceVolumeId())
	if err != nil {
		return nil, grpcErr(err)
	}
	return &adminv1.CreateSnapshotResponse{Snapshot: snapshotMsg(snap), Existed: existed}, nil
}

// DeleteSnapshot implements the API.
func (s *Server) DeleteSnapshot(ctx context.Context, r *adminv1.DeleteSnapshotRequest) (*adminv1.DeleteSnapshotResponse, error) {
	if r.GetSnapshotId() == "" {
		return nil, invalid("snapshot_id is required")
	}
	err := s.t.DeleteSnapshot(r.GetSnapshotId())
	if err != nil && exports.KindOf(err) != exports.KindNotFound {
		return nil, grpcErr(err)
	}
	return &adminv1.DeleteSnapshotResponse{}, nil
}

// ListSnapshots implements the API.
func (s *Server) ListSnapshots(ctx context.Context, r *adminv1.ListSnapshotsRequest) (*adminv1.ListSnapshotsResponse, error) {
	snaps, err := s.t.Snapshots(r.GetSourceVolumeId())
	if err != nil {
		return nil, grpcErr(err)
	}
	sort.Slice(snaps, func(i, j int) bool { return snaps[i].ID < snaps[j].ID })
	ids := make([]string, len(snaps))
	for i, sn := range snaps {
		ids[i] = sn.ID
	}
	lo, hi, next, err := page(ids, r.GetStartingToken(), r.GetMaxEntries())
	if err != nil {
		return nil, err
	}
	resp := &adminv1.ListSnapshotsResponse{NextToken: next}
	for _, sn := range snaps[lo:hi] {
		resp.Snapshots = append(resp.Snapshots, snapshotMsg(sn))
	}
	return resp, nil
}

func volumeMsg(v *exports.Volume) *adminv1.Volume {
	m := &adminv1.Volume{
		VolumeId:   v.ID,
		ExportPath: v.Path(),
		Created:    v.Created.Format(time.RFC3339Nano),
		RootUid:    v.RootAttrs.UID,
		RootGid:    v.RootAttrs.GID,
		RootMode:   v.RootAttrs.Mode,
		Options: &adminv1.ExportOptions{
			Squash:   string(v.Options.Squash),
			AnonUid:  v.Options.AnonUID,
			AnonGid:  v.Options.AnonGID,
			ReadOnly: v.Options.ReadOnly,
		},
	}
	for _, p := range v.Options.Clients {
		m.Options.Clients = append(m.Options.Clients, p.String())
	}
	if v.Quota != nil {
		// The accountant's limits, not v.Limits: they are read atomically.
		l, u := v.Quota.Limits(), v.Quota.Usage()
		m.CapacityBytes, m.InodeLimit = l.Bytes, l.Inodes
		m.UsedBytes, m.UsedInodes, m.UsageReconciled = u.Bytes, u.Inodes, v.Quota.Reconciled()
	}
	if src := v.Source; src != nil {
		if src.Snapshot != "" {
			m.ContentSource = &adminv1.ContentSource{Type: &adminv1.ContentSource_SnapshotId{SnapshotId: src.Snapshot}}
		} else {
			m.ContentSource = &adminv1.ContentSource{Type: &adminv1.ContentSource_VolumeId{VolumeId: src.Volume}}
		}
	}
	return m
}

func snapshotMsg(s *exports.Snapshot) *adminv1.Snapshot {
	return &adminv1.Snapshot{
		SnapshotId:     s.ID,
		SourceVolumeId: s.Source,
		SizeBytes:      s.Usage.Bytes,
		Created:        s.Created.Format(time.RFC3339Nano),
		ReadyToUse:     true,
	}
}
