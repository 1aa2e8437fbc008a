package admin

import (
	"context"
	"net/netip"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	adminv1 "github.com/rwxnfs/rwxnfs/api/admin/v1"
	"github.com/rwxnfs/rwxnfs/pkg/exports"
)

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
	req.Options.AllowSetID, req.Options.AllowDevices = o.GetAllowSetId(), o.GetAllowDevices()
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
	u.AllowSetID, u.AllowDevices = r.AllowSetId, r.AllowDevices
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

// ListVolumes implements the API. The token is the last id of the
// previous page, so pages stay correct while volumes come and go.
func (s *Server) ListVolumes(ctx context.Context, r *adminv1.ListVolumesRequest) (*adminv1.ListVolumesResponse, error) {
	vols, next, err := page(s.t.Volumes(), volumeID, r.GetStartingToken(), r.GetMaxEntries())
	if err != nil {
		return nil, err
	}
	resp := &adminv1.ListVolumesResponse{NextToken: next}
	for _, v := range vols {
		resp.Volumes = append(resp.Volumes, s.volumeMsg(v))
	}
	return resp, nil
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

			AllowSetId:   v.Options.AllowSetID,
			AllowDevices: v.Options.AllowDevices,
		},
	}
	if m.RequestName == "" {
		m.RequestName = v.ID
	}
	for _, p := range v.Options.Clients {
		m.Options.Clients = append(m.Options.Clients, p.String())
	}
	l := v.Limits()
	m.CapacityBytes, m.InodeLimit = l.Bytes, l.Inodes
	if v.Quota != nil {
		u := v.Quota.Usage()
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
