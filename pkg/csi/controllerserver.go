package csi

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	adminv1 "github.com/rwxnfs/rwxnfs/api/admin/v1"
	"github.com/rwxnfs/rwxnfs/pkg/admin"
)

// nfsdConn is one nfsd and the admin API client that reaches it.
type nfsdConn struct {
	NFSD
	cl   adminv1.AdminClient
	conn *grpc.ClientConn
}

type controllerServer struct {
	csi.UnimplementedControllerServer
	nfsds       []*nfsdConn // in the order given
	byName      map[string]*nfsdConn
	defaultSize int64
}

func newControllerServer(cfg Config) (*controllerServer, error) {
	if len(cfg.NFSDs) == 0 {
		return nil, errors.New("the controller needs at least one --nfsd name=...,admin=...,server=...")
	}
	if cfg.AdminTokenFile == "" {
		return nil, errors.New("the controller needs --admin-token-file (nfsd's admin API bearer token)")
	}
	s := &controllerServer{byName: make(map[string]*nfsdConn), defaultSize: cfg.DefaultVolumeSize}
	if s.defaultSize <= 0 {
		s.defaultSize = 1 << 30
	}
	for _, n := range cfg.NFSDs {
		if s.byName[n.Name] != nil {
			return nil, fmt.Errorf("--nfsd name %q given twice", n.Name)
		}
		cl, conn, err := admin.Dial(admin.ClientConfig{Addr: n.Admin, TokenFile: cfg.AdminTokenFile, CACert: cfg.AdminCA, Cert: cfg.AdminCert, Key: cfg.AdminKey})
		if err != nil {
			s.close()
			return nil, fmt.Errorf("nfsd %s: %w", n.Name, err)
		}
		c := &nfsdConn{NFSD: n, cl: cl, conn: conn}
		s.nfsds = append(s.nfsds, c)
		s.byName[n.Name] = c
	}
	return s, nil
}

func (s *controllerServer) close() {
	for _, n := range s.nfsds {
		n.conn.Close()
	}
}

// probe checks that every nfsd answers its admin API.
func (s *controllerServer) probe(ctx context.Context) error {
	for _, n := range s.nfsds {
		c, cancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := n.cl.GetServerInfo(c, &adminv1.GetServerInfoRequest{})
		cancel()
		if err != nil {
			return fromAdmin(n, err)
		}
	}
	return nil
}

// fromAdmin turns an admin API error into what a CSI caller should see,
// naming the nfsd. Admin errors never carry the token.
func fromAdmin(n *nfsdConn, err error) error {
	st := status.Convert(err)
	switch st.Code() {
	case codes.Unavailable:
		return status.Errorf(codes.Unavailable, "nfsd %s (admin API %s) is unreachable: %s", n.Name, n.Admin, st.Message())
	case codes.Unauthenticated:
		return status.Errorf(codes.Unauthenticated, "nfsd %s refused the admin token (%s): --admin-token-file must hold the token nfsd was started with", n.Name, st.Message())
	case codes.Unknown, codes.Internal, codes.Unimplemented:
		return status.Errorf(codes.Internal, "nfsd %s: %s", n.Name, st.Message())
	}
	return status.Errorf(st.Code(), "nfsd %s: %s", n.Name, st.Message())
}

// nfsd returns the nfsd an ID names, if this controller manages it.
func (s *controllerServer) nfsd(id objectID) *nfsdConn { return s.byName[id.NFSD] }

// lookup resolves a CSI ID to its nfsd; ok is false for IDs this
// controller cannot have made.
func (s *controllerServer) lookup(csiID string) (objectID, *nfsdConn, bool) {
	id, ok := parseObjectID(csiID)
	if !ok {
		return id, nil, false
	}
	n := s.nfsd(id)
	return id, n, n != nil
}

// checkCapabilities refuses what an NFS file system cannot be.
func checkCapabilities(caps []*csi.VolumeCapability) error {
	for _, c := range caps {
		if c == nil {
			return errors.New("a volume capability is empty")
		}
		if c.GetBlock() != nil {
			return errors.New("block access is not supported: rwxnfs volumes are NFS file systems (use volumeMode: Filesystem)")
		}
		m := c.GetMount()
		if m == nil {
			return errors.New("a volume capability names no access type (mount)")
		}
		if fs := m.GetFsType(); fs != "" && fs != "nfs" {
			return fmt.Errorf("fs_type %q is not supported: rwxnfs volumes are NFS (leave fsType empty or set it to nfs)", fs)
		}
		if err := checkMountFlags(m.GetMountFlags()); err != nil {
			return err
		}
		switch c.GetAccessMode().GetMode() {
		case csi.VolumeCapability_AccessMode_UNKNOWN:
			return errors.New("a volume capability has no access mode")
		}
	}
	return nil
}

// checkMountFlags refuses mount options that contradict the server.
func checkMountFlags(flags []string) error {
	for _, f := range flags {
		for _, o := range strings.Split(f, ",") {
			k, v, _ := strings.Cut(strings.TrimSpace(o), "=")
			switch k {
			case "vers", "nfsvers":
				if v != "3" {
					return fmt.Errorf("mount option %s=%s: rwxnfs serves NFS version 3 only (vers=3 is set for you)", k, v)
				}
			case "proto":
				if v != "tcp" {
					return fmt.Errorf("mount option proto=%s: rwxnfs serves NFS over TCP only", v)
				}
			}
		}
	}
	return nil
}

// defaultDeadline bounds an admin call when the CO gave no deadline.
func defaultDeadline(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

func (s *controllerServer) CreateVolume(ctx context.Context, req *csi.CreateVolumeRequest) (*csi.CreateVolumeResponse, error) {
	if req.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "name is required")
	}
	if len(req.GetVolumeCapabilities()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "volume_capabilities are required")
	}
	if err := checkCapabilities(req.GetVolumeCapabilities()); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	cp, err := parseCreateParams(req.GetParameters())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if len(req.GetMutableParameters()) > 0 {
		upd, err := admin.ParseUpdate("", req.GetMutableParameters())
		if err != nil {
			return nil, status.Errorf(codes.InvalidArgument, "mutable parameters: %v", err)
		}
		applyUpdate(cp.options, &cp.reclaim, upd)
	}
	required, limit := req.GetCapacityRange().GetRequiredBytes(), req.GetCapacityRange().GetLimitBytes()
	if required < 0 || limit < 0 || (limit > 0 && required > limit) {
		return nil, status.Errorf(codes.InvalidArgument, "capacity range [%d, %d] is not a range", required, limit)
	}
	if required == 0 {
		// Every volume gets a byte limit, so its capacity is never unknown.
		required = s.defaultSize
		if limit > 0 {
			required = min(required, limit)
		}
	}
	areq := &adminv1.CreateVolumeRequest{
		Name: idForName(req.GetName()), RequiredBytes: required, LimitBytes: limit,
		Options: cp.options, ReclaimMode: cp.reclaim, RequestName: req.GetName(),
	}
	if cp.subDir != "" {
		areq.Name = cp.subDir
	}
	var n *nfsdConn
	if src := req.GetVolumeContentSource(); src != nil {
		var srcID objectID
		var ok bool
		switch {
		case src.GetSnapshot() != nil:
			srcID, n, ok = s.lookup(src.GetSnapshot().GetSnapshotId())
			if !ok {
				return nil, status.Errorf(codes.NotFound, "source snapshot %q not found", src.GetSnapshot().GetSnapshotId())
			}
			areq.ContentSource = &adminv1.ContentSource{Type: &adminv1.ContentSource_SnapshotId{SnapshotId: srcID.ID}}
		case src.GetVolume() != nil:
			srcID, n, ok = s.lookup(src.GetVolume().GetVolumeId())
			if !ok {
				return nil, status.Errorf(codes.NotFound, "source volume %q not found", src.GetVolume().GetVolumeId())
			}
			areq.ContentSource = &adminv1.ContentSource{Type: &adminv1.ContentSource_VolumeId{VolumeId: srcID.ID}}
		default:
			return nil, status.Error(codes.InvalidArgument, "volume_content_source names neither a snapshot nor a volume")
		}
		if cp.nfsd != "" && cp.nfsd != n.Name {
			return nil, status.Errorf(codes.InvalidArgument, "the content source is on nfsd %s but parameter nfsd=%s: a copy stays on its source's nfsd", n.Name, cp.nfsd)
		}
	} else if n, err = s.place(ctx, cp.nfsd, areq.Name); err != nil {
		return nil, err
	}
	// A copy may take long: the call waits while the CO's deadline
	// allows, and a retry waits for the same copy.
	cctx, cancel := defaultDeadline(ctx, 10*time.Minute)
	defer cancel()
	resp, err := n.cl.CreateVolume(cctx, areq)
	if err != nil {
		if status.Code(err) == codes.NotFound && areq.ContentSource != nil {
			return nil, status.Errorf(codes.NotFound, "content source not found on nfsd %s: %s", n.Name, status.Convert(err).Message())
		}
		return nil, fromAdmin(n, err)
	}
	logFrom(ctx).Info("volume ready", "nfsd", n.Name, "id", resp.Volume.GetVolumeId(), "capacity", resp.Volume.GetCapacityBytes(), "existed", resp.GetExisted())
	v := s.csiVolume(n, resp.Volume, cp.server)
	v.ContentSource = req.GetVolumeContentSource()
	return &csi.CreateVolumeResponse{Volume: v}, nil
}

// applyUpdate folds mutable parameters given at create into the options.
func applyUpdate(o *adminv1.VolumeOptions, reclaim *adminv1.ReclaimMode, u *adminv1.UpdateVolumeRequest) {
	if u.Squash != adminv1.Squash_SQUASH_UNSPECIFIED {
		o.Squash = u.Squash
	}
	if u.AnonUid != nil {
		o.AnonUid = u.AnonUid
	}
	if u.AnonGid != nil {
		o.AnonGid = u.AnonGid
	}
	if u.ReadOnly != nil {
		o.ReadOnly = *u.ReadOnly
	}
	if u.SetClients {
		o.Clients = u.Clients
	}
	if u.InodeLimit != nil {
		o.InodeLimit = *u.InodeLimit
	}
	if u.ReclaimMode != adminv1.ReclaimMode_RECLAIM_MODE_UNSPECIFIED {
		*reclaim = u.ReclaimMode
	}
	if u.AllowSetId != nil {
		o.AllowSetId = *u.AllowSetId
	}
	if u.AllowDevices != nil {
		o.AllowDevices = *u.AllowDevices
	}
}

// place picks the nfsd of a new volume: the one asked for, the one that
// already holds a volume of that id (a repeated request), or the one
// with the most space available.
func (s *controllerServer) place(ctx context.Context, want, id string) (*nfsdConn, error) {
	if want != "" {
		n := s.byName[want]
		if n == nil {
			return nil, status.Errorf(codes.InvalidArgument, "parameter nfsd=%s: this controller manages no nfsd of that name", want)
		}
		return n, nil
	}
	if len(s.nfsds) == 1 {
		return s.nfsds[0], nil
	}
	var best *nfsdConn
	var bestAvail int64 = -1
	var lastErr error
	for _, n := range s.nfsds {
		if _, err := n.cl.GetVolume(ctx, &adminv1.GetVolumeRequest{VolumeId: id}); err == nil {
			return n, nil
		}
		c, err := n.cl.GetCapacity(ctx, &adminv1.GetCapacityRequest{})
		if err != nil {
			lastErr = fromAdmin(n, err)
			continue
		}
		if c.AvailableBytes > bestAvail {
			best, bestAvail = n, c.AvailableBytes
		}
	}
	if best == nil {
		return nil, lastErr
	}
	return best, nil
}

// csiVolume describes an nfsd volume to the CO. The volume context is
// what a node needs to mount it, without asking the controller.
func (s *controllerServer) csiVolume(n *nfsdConn, v *adminv1.Volume, server string) *csi.Volume {
	if server == "" {
		server = n.Server
	}
	out := &csi.Volume{
		VolumeId:      objectID{NFSD: n.Name, ID: v.GetVolumeId()}.String(),
		CapacityBytes: v.GetCapacityBytes(),
		VolumeContext: map[string]string{ctxServer: server, ctxShare: v.GetExportPath(), ctxNFSD: n.Name},
	}
	switch cs := v.GetContentSource(); {
	case cs.GetSnapshotId() != "":
		out.ContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Snapshot{Snapshot: &csi.VolumeContentSource_SnapshotSource{
			SnapshotId: objectID{NFSD: n.Name, ID: cs.GetSnapshotId()}.String()}}}
	case cs.GetVolumeId() != "":
		out.ContentSource = &csi.VolumeContentSource{Type: &csi.VolumeContentSource_Volume{Volume: &csi.VolumeContentSource_VolumeSource{
			VolumeId: objectID{NFSD: n.Name, ID: cs.GetVolumeId()}.String()}}}
	}
	return out
}

// Volume context keys (what NodePublishVolume reads).
const (
	ctxServer = "server" // NFS server address
	ctxShare  = "share"  // export path: /volumes/<id>
	ctxNFSD   = "nfsd"   // the nfsd's name
)

func condition(n *nfsdConn, v *adminv1.Volume) *csi.VolumeCondition {
	if !v.GetPresent() {
		return &csi.VolumeCondition{Abnormal: true, Message: fmt.Sprintf("the volume's directory is missing on nfsd %s: it was removed or moved on the server", n.Name)}
	}
	return &csi.VolumeCondition{Message: "ok"}
}

func (s *controllerServer) DeleteVolume(ctx context.Context, req *csi.DeleteVolumeRequest) (*csi.DeleteVolumeResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume_id is required")
	}
	id, n, ok := s.lookup(req.GetVolumeId())
	if !ok {
		logFrom(ctx).Info("no such volume here: nothing to delete")
		return &csi.DeleteVolumeResponse{}, nil
	}
	// The reclaim mode (StorageClass onDelete) was stored at create.
	r, err := n.cl.DeleteVolume(ctx, &adminv1.DeleteVolumeRequest{VolumeId: id.ID})
	if err != nil {
		return nil, fromAdmin(n, err)
	}
	if r.GetPath() != "" {
		logFrom(ctx).Info("volume unexported; its data is kept on the server", "nfsd", n.Name, "path", r.GetPath())
	}
	return &csi.DeleteVolumeResponse{}, nil
}

func (s *controllerServer) ValidateVolumeCapabilities(ctx context.Context, req *csi.ValidateVolumeCapabilitiesRequest) (*csi.ValidateVolumeCapabilitiesResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume_id is required")
	}
	if len(req.GetVolumeCapabilities()) == 0 {
		return nil, status.Error(codes.InvalidArgument, "volume_capabilities are required")
	}
	if _, _, err := s.getVolume(ctx, req.GetVolumeId()); err != nil {
		return nil, err
	}
	if err := checkCapabilities(req.GetVolumeCapabilities()); err != nil {
		return &csi.ValidateVolumeCapabilitiesResponse{Message: err.Error()}, nil
	}
	return &csi.ValidateVolumeCapabilitiesResponse{Confirmed: &csi.ValidateVolumeCapabilitiesResponse_Confirmed{
		VolumeContext:      req.GetVolumeContext(),
		VolumeCapabilities: req.GetVolumeCapabilities(),
		Parameters:         req.GetParameters(),
		MutableParameters:  req.GetMutableParameters(),
	}}, nil
}

// getVolume fetches a volume by CSI ID; NotFound for IDs that cannot be ours.
func (s *controllerServer) getVolume(ctx context.Context, csiID string) (*nfsdConn, *adminv1.Volume, error) {
	id, n, ok := s.lookup(csiID)
	if !ok {
		return nil, nil, status.Errorf(codes.NotFound, "volume %q not found", csiID)
	}
	r, err := n.cl.GetVolume(ctx, &adminv1.GetVolumeRequest{VolumeId: id.ID})
	if err != nil {
		return nil, nil, fromAdmin(n, err)
	}
	return n, r.Volume, nil
}

// pageAcross pages through every nfsd in turn. A token is
// "<nfsd>/<that nfsd's token>" ("" inside: its first page).
func pageAcross[T any](ctx context.Context, s *controllerServer, token string, max int32, list func(*nfsdConn, string, int32) ([]T, string, error)) ([]T, string, error) {
	if max < 0 {
		return nil, "", status.Error(codes.InvalidArgument, "max_entries must not be negative")
	}
	start, inner := 0, ""
	if token != "" {
		name, in, ok := strings.Cut(token, "/")
		n := s.byName[name]
		if !ok || n == nil {
			return nil, "", status.Errorf(codes.Aborted, "starting_token %q is not one this controller gave", token)
		}
		for s.nfsds[start] != n {
			start++
		}
		inner = in
	}
	var out []T
	for i := start; i < len(s.nfsds); i++ {
		n := s.nfsds[i]
		for {
			want := int32(0)
			if max > 0 {
				want = max - int32(len(out))
			}
			items, next, err := list(n, inner, want)
			if err != nil {
				if status.Code(err) == codes.Aborted {
					return nil, "", status.Errorf(codes.Aborted, "starting_token %q: %s", token, status.Convert(err).Message())
				}
				return nil, "", fromAdmin(n, err)
			}
			out = append(out, items...)
			inner = next
			if max > 0 && int32(len(out)) >= max {
				switch {
				case next != "":
					return out, n.Name + "/" + next, nil
				case i+1 < len(s.nfsds):
					return out, s.nfsds[i+1].Name + "/", nil
				}
				return out, "", nil
			}
			if next == "" {
				break
			}
		}
		inner = ""
	}
	return out, "", nil
}

func (s *controllerServer) ListVolumes(ctx context.Context, req *csi.ListVolumesRequest) (*csi.ListVolumesResponse, error) {
	entries, next, err := pageAcross(ctx, s, req.GetStartingToken(), req.GetMaxEntries(), func(n *nfsdConn, tok string, max int32) ([]*csi.ListVolumesResponse_Entry, string, error) {
		r, err := n.cl.ListVolumes(ctx, &adminv1.ListVolumesRequest{StartingToken: tok, MaxEntries: max})
		if err != nil {
			return nil, "", err
		}
		var out []*csi.ListVolumesResponse_Entry
		for _, v := range r.Volumes {
			out = append(out, &csi.ListVolumesResponse_Entry{
				Volume: s.csiVolume(n, v, ""),
				Status: &csi.ListVolumesResponse_VolumeStatus{VolumeCondition: condition(n, v)},
			})
		}
		return out, r.NextToken, nil
	})
	if err != nil {
		return nil, err
	}
	return &csi.ListVolumesResponse{Entries: entries, NextToken: next}, nil
}

// GetCapacity reports what nfsd can give new volumes without promising
// more than its disk holds: free space less what existing limits may
// still take and what running copies will write (summed over nfsds; the
// largest single volume is the most one nfsd has).
func (s *controllerServer) GetCapacity(ctx context.Context, req *csi.GetCapacityRequest) (*csi.GetCapacityResponse, error) {
	for _, c := range req.GetVolumeCapabilities() {
		if err := checkCapabilities([]*csi.VolumeCapability{c}); err != nil {
			return &csi.GetCapacityResponse{}, nil // nothing can be made for it
		}
	}
	cp, err := parseCreateParams(req.GetParameters())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	var total, largest int64
	var reached int
	var lastErr error
	for _, n := range s.nfsds {
		if cp.nfsd != "" && n.Name != cp.nfsd {
			continue
		}
		c, err := n.cl.GetCapacity(ctx, &adminv1.GetCapacityRequest{})
		if err != nil {
			lastErr = fromAdmin(n, err)
			logFrom(ctx).Warn("capacity of an nfsd unknown", "nfsd", n.Name, "err", lastErr)
			continue
		}
		reached++
		total += c.AvailableBytes
		largest = max(largest, c.AvailableBytes)
	}
	if reached == 0 && lastErr != nil {
		return nil, lastErr
	}
	return &csi.GetCapacityResponse{AvailableCapacity: total, MaximumVolumeSize: wrapperspb.Int64(largest)}, nil
}

func (s *controllerServer) ControllerGetCapabilities(ctx context.Context, req *csi.ControllerGetCapabilitiesRequest) (*csi.ControllerGetCapabilitiesResponse, error) {
	var caps []*csi.ControllerServiceCapability
	for _, c := range []csi.ControllerServiceCapability_RPC_Type{
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_VOLUME,
		csi.ControllerServiceCapability_RPC_LIST_VOLUMES,
		csi.ControllerServiceCapability_RPC_GET_CAPACITY,
		csi.ControllerServiceCapability_RPC_CREATE_DELETE_SNAPSHOT,
		csi.ControllerServiceCapability_RPC_LIST_SNAPSHOTS,
		csi.ControllerServiceCapability_RPC_GET_SNAPSHOT,
		csi.ControllerServiceCapability_RPC_CLONE_VOLUME,
		csi.ControllerServiceCapability_RPC_EXPAND_VOLUME,
		csi.ControllerServiceCapability_RPC_VOLUME_CONDITION,
		csi.ControllerServiceCapability_RPC_GET_VOLUME,
		csi.ControllerServiceCapability_RPC_SINGLE_NODE_MULTI_WRITER,
		csi.ControllerServiceCapability_RPC_MODIFY_VOLUME,
	} {
		caps = append(caps, &csi.ControllerServiceCapability{Type: &csi.ControllerServiceCapability_Rpc{Rpc: &csi.ControllerServiceCapability_RPC{Type: c}}})
	}
	return &csi.ControllerGetCapabilitiesResponse{Capabilities: caps}, nil
}

func (s *controllerServer) CreateSnapshot(ctx context.Context, req *csi.CreateSnapshotRequest) (*csi.CreateSnapshotResponse, error) {
	if req.GetName() == "" {
		return nil, status.Error(codes.InvalidArgument, "name is required")
	}
	if req.GetSourceVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "source_volume_id is required")
	}
	for k := range req.GetParameters() {
		if !strings.HasPrefix(k, provisionerKeys) {
			return nil, status.Errorf(codes.InvalidArgument, "unknown snapshot class parameter %q (this driver takes none)", k)
		}
	}
	vol, n, ok := s.lookup(req.GetSourceVolumeId())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "source volume %q not found", req.GetSourceVolumeId())
	}
	r, err := n.cl.CreateSnapshot(ctx, &adminv1.CreateSnapshotRequest{Name: idForName(req.GetName()), SourceVolumeId: vol.ID})
	if err != nil {
		return nil, fromAdmin(n, err)
	}
	snap := r.Snapshot
	// nfsd copies in the background; a small volume is done at once, so
	// wait a moment rather than make the CO poll.
	for wait := time.Now().Add(2 * time.Second); !snap.GetReadyToUse() && snap.GetError() == "" && time.Now().Before(wait); {
		select {
		case <-ctx.Done():
			return nil, status.FromContextError(ctx.Err()).Err()
		case <-time.After(100 * time.Millisecond):
		}
		g, err := n.cl.GetSnapshot(ctx, &adminv1.GetSnapshotRequest{SnapshotId: snap.GetSnapshotId()})
		if err != nil {
			return nil, fromAdmin(n, err)
		}
		snap = g.Snapshot
	}
	if snap.GetError() != "" {
		return nil, status.Errorf(codes.Internal, "nfsd %s: copying the snapshot failed: %s (a repeated request retries)", n.Name, snap.GetError())
	}
	logFrom(ctx).Info("snapshot taken", "nfsd", n.Name, "id", snap.GetSnapshotId(), "ready", snap.GetReadyToUse(), "existed", r.GetExisted())
	return &csi.CreateSnapshotResponse{Snapshot: csiSnapshot(n, snap)}, nil
}

func csiSnapshot(n *nfsdConn, s *adminv1.Snapshot) *csi.Snapshot {
	out := &csi.Snapshot{
		SnapshotId:     objectID{NFSD: n.Name, ID: s.GetSnapshotId()}.String(),
		SourceVolumeId: objectID{NFSD: n.Name, ID: s.GetSourceVolumeId()}.String(),
		SizeBytes:      s.GetSizeBytes(),
		ReadyToUse:     s.GetReadyToUse(),
	}
	if t, err := time.Parse(time.RFC3339Nano, s.GetCreated()); err == nil {
		out.CreationTime = timestamppb.New(t)
	}
	return out
}

func (s *controllerServer) DeleteSnapshot(ctx context.Context, req *csi.DeleteSnapshotRequest) (*csi.DeleteSnapshotResponse, error) {
	if req.GetSnapshotId() == "" {
		return nil, status.Error(codes.InvalidArgument, "snapshot_id is required")
	}
	id, n, ok := s.lookup(req.GetSnapshotId())
	if !ok {
		return &csi.DeleteSnapshotResponse{}, nil
	}
	if _, err := n.cl.DeleteSnapshot(ctx, &adminv1.DeleteSnapshotRequest{SnapshotId: id.ID}); err != nil {
		return nil, fromAdmin(n, err)
	}
	return &csi.DeleteSnapshotResponse{}, nil
}

func (s *controllerServer) ListSnapshots(ctx context.Context, req *csi.ListSnapshotsRequest) (*csi.ListSnapshotsResponse, error) {
	var onlySnap, onlyVol string
	var only *nfsdConn
	if req.GetSnapshotId() != "" {
		id, n, ok := s.lookup(req.GetSnapshotId())
		if !ok {
			return &csi.ListSnapshotsResponse{}, nil
		}
		onlySnap, only = id.ID, n
	}
	if req.GetSourceVolumeId() != "" {
		id, n, ok := s.lookup(req.GetSourceVolumeId())
		if !ok || (only != nil && only != n) {
			return &csi.ListSnapshotsResponse{}, nil
		}
		onlyVol, only = id.ID, n
	}
	entries, next, err := pageAcross(ctx, s, req.GetStartingToken(), req.GetMaxEntries(), func(n *nfsdConn, tok string, max int32) ([]*csi.ListSnapshotsResponse_Entry, string, error) {
		if only != nil && n != only {
			return nil, "", nil
		}
		r, err := n.cl.ListSnapshots(ctx, &adminv1.ListSnapshotsRequest{SnapshotId: onlySnap, SourceVolumeId: onlyVol, StartingToken: tok, MaxEntries: max})
		if err != nil {
			return nil, "", err
		}
		var out []*csi.ListSnapshotsResponse_Entry
		for _, sn := range r.Snapshots {
			out = append(out, &csi.ListSnapshotsResponse_Entry{Snapshot: csiSnapshot(n, sn)})
		}
		return out, r.NextToken, nil
	})
	if err != nil {
		return nil, err
	}
	return &csi.ListSnapshotsResponse{Entries: entries, NextToken: next}, nil
}

func (s *controllerServer) GetSnapshot(ctx context.Context, req *csi.GetSnapshotRequest) (*csi.GetSnapshotResponse, error) {
	if req.GetSnapshotId() == "" {
		return nil, status.Error(codes.InvalidArgument, "snapshot_id is required")
	}
	id, n, ok := s.lookup(req.GetSnapshotId())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "snapshot %q not found", req.GetSnapshotId())
	}
	r, err := n.cl.GetSnapshot(ctx, &adminv1.GetSnapshotRequest{SnapshotId: id.ID})
	if err != nil {
		return nil, fromAdmin(n, err)
	}
	return &csi.GetSnapshotResponse{Snapshot: csiSnapshot(n, r.Snapshot)}, nil
}

// ControllerExpandVolume raises the volume's byte limit; mounted clients
// see the new size at once, so no node step follows.
func (s *controllerServer) ControllerExpandVolume(ctx context.Context, req *csi.ControllerExpandVolumeRequest) (*csi.ControllerExpandVolumeResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume_id is required")
	}
	cr := req.GetCapacityRange()
	if cr == nil {
		return nil, status.Error(codes.InvalidArgument, "capacity_range is required")
	}
	required, limit := cr.GetRequiredBytes(), cr.GetLimitBytes()
	if required < 0 || limit < 0 || (limit > 0 && required > limit) || (required == 0 && limit == 0) {
		return nil, status.Errorf(codes.InvalidArgument, "capacity range [%d, %d] is not a range", required, limit)
	}
	if c := req.GetVolumeCapability(); c != nil {
		if err := checkCapabilities([]*csi.VolumeCapability{c}); err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
	}
	n, v, err := s.getVolume(ctx, req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	want := required
	if want == 0 {
		want = limit
	}
	cur := v.GetCapacityBytes()
	if cur >= want {
		if limit > 0 && cur > limit {
			return nil, status.Errorf(codes.OutOfRange, "volume already holds a limit of %d bytes, above the requested limit %d: volumes cannot shrink", cur, limit)
		}
		return &csi.ControllerExpandVolumeResponse{CapacityBytes: cur}, nil
	}
	r, err := n.cl.ExpandVolume(ctx, &adminv1.ExpandVolumeRequest{VolumeId: v.GetVolumeId(), CapacityBytes: want})
	if err != nil {
		return nil, fromAdmin(n, err)
	}
	logFrom(ctx).Info("volume expanded", "nfsd", n.Name, "from", cur, "to", r.Volume.GetCapacityBytes())
	return &csi.ControllerExpandVolumeResponse{CapacityBytes: r.Volume.GetCapacityBytes()}, nil
}

func (s *controllerServer) ControllerGetVolume(ctx context.Context, req *csi.ControllerGetVolumeRequest) (*csi.ControllerGetVolumeResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume_id is required")
	}
	n, v, err := s.getVolume(ctx, req.GetVolumeId())
	if err != nil {
		return nil, err
	}
	return &csi.ControllerGetVolumeResponse{
		Volume: s.csiVolume(n, v, ""),
		Status: &csi.ControllerGetVolumeResponse_VolumeStatus{VolumeCondition: condition(n, v)},
	}, nil
}

// ControllerModifyVolume applies mutable parameters (a
// VolumeAttributesClass): squash, anonUID, anonGID, readOnly,
// allowedClients, inodeLimit, onDelete. Mounted clients see them on
// their next call.
func (s *controllerServer) ControllerModifyVolume(ctx context.Context, req *csi.ControllerModifyVolumeRequest) (*csi.ControllerModifyVolumeResponse, error) {
	if req.GetVolumeId() == "" {
		return nil, status.Error(codes.InvalidArgument, "volume_id is required")
	}
	params := make(map[string]string, len(req.GetMutableParameters()))
	for k, v := range req.GetMutableParameters() {
		if !strings.HasPrefix(k, provisionerKeys) {
			params[k] = v
		}
	}
	id, n, ok := s.lookup(req.GetVolumeId())
	if !ok {
		return nil, status.Errorf(codes.NotFound, "volume %q not found", req.GetVolumeId())
	}
	upd, err := admin.ParseUpdate(id.ID, params)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if _, err := n.cl.UpdateVolume(ctx, upd); err != nil {
		return nil, fromAdmin(n, err)
	}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	logFrom(ctx).Info("volume settings changed", "nfsd", n.Name, "keys", strings.Join(keys, ","))
	return &csi.ControllerModifyVolumeResponse{}, nil
}
