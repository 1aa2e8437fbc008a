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
	// Info describes the serving nfsd, for GetServerInfo.
	Info Info
}

// Info is what GetServerInfo reports about the daemon besides its volumes.
type Info struct {
	Version string
	NFSAddr string // the NFS/MOUNT listener's address
	Locking bool
	Started time.Time
}

// Server is a running admin API.
type Server struct {
	adminv1.UnimplementedAdminServer
	t     *exports.Table
	locks LockManager // nil: nfsd serves no locking
	log   *slog.Logger
	token []byte
	info  Info
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
	s := &Server{t: t, locks: locks, log: log, token: []byte(token), info: cfg.Info, done: make(chan struct{})}
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
	case exports.KindAborted:
		return status.Error(codes.Aborted, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

func invalid(format string, a ...any) error {
	return status.Errorf(codes.InvalidArgument, format, a...)
}

func squashOf(s adminv1.Squash) (exports.Squash, error) {
	switch s {
	case adminv1.Squash_SQUASH_UNSPECIFIED, adminv1.Squash_SQUASH_NONE:
		return exports.SquashNone, nil
	case adminv1.Squash_SQUASH_ROOT:
		return exports.SquashRoot, nil
	case adminv1.Squash_SQUASH_ALL:
		return exports.SquashAll, nil
	}
	return "", invalid("unknown squash %d", s)
}

func squashMsg(s exports.Squash) adminv1.Squash {
	switch s {
	case exports.SquashRoot:
		return adminv1.Squash_SQUASH_ROOT
	case exports.SquashAll:
		return adminv1.Squash_SQUASH_ALL
	}
	return adminv1.Squash_SQUASH_NONE
}

func reclaimOf(m adminv1.ReclaimMode) (exports.ReclaimMode, error) {
	switch m {
	case adminv1.ReclaimMode_RECLAIM_MODE_UNSPECIFIED:
		return "", nil
	case adminv1.ReclaimMode_RECLAIM_MODE_DELETE:
		return exports.ReclaimDelete, nil
	case adminv1.ReclaimMode_RECLAIM_MODE_RETAIN:
		return exports.ReclaimRetain, nil
	case adminv1.ReclaimMode_RECLAIM_MODE_ARCHIVE:
		return exports.ReclaimArchive, nil
	}
	return "", invalid("unknown reclaim_mode %d", m)
}

func reclaimMsg(m exports.ReclaimMode) adminv1.ReclaimMode {
	switch m {
	case exports.ReclaimRetain:
		return adminv1.ReclaimMode_RECLAIM_MODE_RETAIN
	case exports.ReclaimArchive:
		return adminv1.ReclaimMode_RECLAIM_MODE_ARCHIVE
	}
	return adminv1.ReclaimMode_RECLAIM_MODE_DELETE
}

func clientsOf(cs []string) ([]netip.Prefix, error) {
	pfx, err := exports.ParseClients(strings.Join(cs, ","))
	if err != nil {
		return nil, invalid("clients: %v", err)
	}
	return pfx, nil
}

// createRequest turns the typed options of a request into the table's.
func createRequest(r *adminv1.CreateVolumeRequest) (exports.CreateRequest, error) {
	req := exports.CreateRequest{
		ID:         r.GetName(),
		Name:       r.GetRequestName(),
		Capacity:   exports.CapacityRange{Required: r.GetRequiredBytes(), Limit: r.GetLimitBytes()},
		Options:    exports.DefaultOptions(),
		InodeLimit: r.GetOptions().GetInodeLimit(),
	}
	o := r.GetOptions()
	if o == nil {
		o = &adminv1.VolumeOptions{}
	}
	req.Root = exports.RootAttrs{UID: o.GetRootUid(), GID: o.GetRootGid(), Mode: o.GetRootMode()}
	var err error
	if req.Options.Squash, err = squashOf(o.GetSquash()); err != nil {
		return req, err
	}
	if o.AnonUid != nil {
		req.Options.AnonUID = o.GetAnonUid()
	}
	if o.AnonGid != nil {
		req.Options.AnonGID = o.GetAnonGid()
	}
	req.Options.ReadOnly = o.GetReadOnly()
	if req.Options.Clients, err = clientsOf(o.GetClients()); err != nil {
		return req, err
	}
	if req.Reclaim, err = reclaimOf(r.GetReclaimMode()); err != nil {
		return req, err
	}
	if cs := r.GetContentSource(); cs != nil {
		switch {
		case cs.GetSnapshotId() != "":
			req.Source = &exports.Source{Snapshot: cs.GetSnapshotId()}
		case cs.GetVolumeId() != "":
			req.Source = &exports.Source{Volume: cs.GetVolumeId()}
		default:
			return req, invalid("content_source names neither a snapshot nor a volume")
		}
	}
	return req, nil
}

// CreateVolume implements the API.
func (s *Server) CreateVolume(ctx context.Context, r *adminv1.CreateVolumeRequest) (*adminv1.CreateVolumeResponse, error) {
	if r.GetName() == "" {
		return nil, invalid("name is required")
	}
	req, err := createRequest(r)
	if err != nil {
		return nil, err
	}
	v, existed, err := s.t.CreateVolume(ctx, req)
	if err != nil {
		return nil, grpcErr(err)
	}
	return &adminv1.CreateVolumeResponse{Volume: s.volumeMsg(v), Existed: existed}, nil
}

// DeleteVolume implements the API.
func (s *Server) DeleteVolume(ctx context.Context, r *adminv1.DeleteVolumeRequest) (*adminv1.DeleteVolumeResponse, error) {
	if r.GetVolumeId() == "" {
		return nil, invalid("volume_id is required")
	}
	mode, err := reclaimOf(r.GetReclaimMode())
	if err != nil {
		return nil, err
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
	return &adminv1.ExpandVolumeResponse{Volume: s.volumeMsg(v)}, nil
}

// UpdateVolume implements the API.
func (s *Server) UpdateVolume(ctx context.Context, r *adminv1.UpdateVolumeRequest) (*adminv1.UpdateVolumeResponse, error) {
	if r.GetVolumeId() == "" {
		return nil, invalid("volume_id is required")
	}
	var u exports.VolumeUpdate
	if r.GetSquash() != adminv1.Squash_SQUASH_UNSPECIFIED {
		sq, err := squashOf(r.GetSquash())
		if err != nil {
			return nil, err
		}
		u.Squash = &sq
	}
	u.AnonUID, u.AnonGID, u.ReadOnly, u.InodeLimit = r.AnonUid, r.AnonGid, r.ReadOnly, r.InodeLimit
	if r.GetSetClients() {
		pfx, err := clientsOf(r.GetClients())
		if err != nil {
			return nil, err
		}
		u.Clients = &pfx
	} else if len(r.GetClients()) > 0 {
		return nil, invalid("clients given without set_clients")
	}
	if r.GetReclaimMode() != adminv1.ReclaimMode_RECLAIM_MODE_UNSPECIFIED {
		m, err := reclaimOf(r.GetReclaimMode())
		if err != nil {
			return nil, err
		}
		u.Reclaim = &m
	}
	v, err := s.t.UpdateVolume(r.GetVolumeId(), u)
	if err != nil {
		return nil, grpcErr(err)
	}
	return &adminv1.UpdateVolumeResponse{Volume: s.volumeMsg(v)}, nil
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
	return &adminv1.GetVolumeResponse{Volume: s.volumeMsg(v)}, nil
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
		resp.Volumes = append(resp.Volumes, s.volumeMsg(v))
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

// GetSnapshot implements the API.
func (s *Server) GetSnapshot(ctx context.Context, r *adminv1.GetSnapshotRequest) (*adminv1.GetSnapshotResponse, error) {
	if r.GetSnapshotId() == "" {
		return nil, invalid("snapshot_id is required")
	}
	snap, err := s.t.Snapshot(r.GetSnapshotId())
	if err != nil {
		return nil, grpcErr(err)
	}
	return &adminv1.GetSnapshotResponse{Snapshot: snapshotMsg(snap)}, nil
}

// ListSnapshots implements the API.
func (s *Server) ListSnapshots(ctx context.Context, r *adminv1.ListSnapshotsRequest) (*adminv1.ListSnapshotsResponse, error) {
	var snaps []*exports.Snapshot
	if id := r.GetSnapshotId(); id != "" {
		snap, err := s.t.Snapshot(id)
		switch {
		case exports.KindOf(err) == exports.KindNotFound:
		case err != nil:
			return nil, grpcErr(err)
		case r.GetSourceVolumeId() == "" || snap.Source == r.GetSourceVolumeId():
			snaps = append(snaps, snap)
		}
	} else {
		var err error
		if snaps, err = s.t.Snapshots(r.GetSourceVolumeId()); err != nil {
			return nil, grpcErr(err)
		}
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

// GetCapacity implements the API.
func (s *Server) GetCapacity(ctx context.Context, r *adminv1.GetCapacityRequest) (*adminv1.GetCapacityResponse, error) {
	c, err := s.t.Capacity()
	if err != nil {
		return nil, status.Errorf(codes.Internal, "measuring the backing file system: %v", err)
	}
	return &adminv1.GetCapacityResponse{
		TotalBytes: c.Total, FreeBytes: c.Free, PromisedBytes: c.Promised, CopyingBytes: c.Copying,
		AvailableBytes: c.Available, LimitedVolumes: int64(c.Limited), UnlimitedVolumes: int64(c.Unlimited),
		TotalInodes: c.TotalInodes, FreeInodes: c.FreeInodes,
	}, nil
}

// GetServerInfo implements the API.
func (s *Server) GetServerInfo(ctx context.Context, r *adminv1.GetServerInfoRequest) (*adminv1.GetServerInfoResponse, error) {
	vols := s.t.Volumes()
	reconciled := true
	for _, v := range vols {
		reconciled = reconciled && v.Quota.Reconciled()
	}
	return &adminv1.GetServerInfoResponse{
		Version: s.info.Version, NfsAddress: s.info.NFSAddr, Locking: s.info.Locking,
		Started: s.info.Started.UTC().Format(time.RFC3339Nano), Volumes: int64(len(vols)),
		UsageReconciled: reconciled, ExportPrefix: "/volumes/",
	}, nil
}

func (s *Server) volumeMsg(v *exports.Volume) *adminv1.Volume {
	m := &adminv1.Volume{
		VolumeId:    v.ID,
		ExportPath:  v.Path(),
		Created:     v.Created.Format(time.RFC3339Nano),
		RootUid:     v.RootAttrs.UID,
		RootGid:     v.RootAttrs.GID,
		RootMode:    v.RootAttrs.Mode,
		ReclaimMode: reclaimMsg(v.Reclaim),
		RequestName: v.Name,
		Present:     s.t.Present(v),
		Options: &adminv1.ExportOptions{
			Squash:   squashMsg(v.Options.Squash),
			AnonUid:  v.Options.AnonUID,
			AnonGid:  v.Options.AnonGID,
			ReadOnly: v.Options.ReadOnly,
		},
	}
	if m.RequestName == "" {
		m.RequestName = v.ID
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
		SizeInodes:     s.Usage.Inodes,
		Created:        s.Created.Format(time.RFC3339Nano),
		ReadyToUse:     !s.Pending,
		Error:          s.Error,
	}
}
