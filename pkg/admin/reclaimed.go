package admin

import (
	"context"
	"time"

	adminv1 "github.com/rwxnfs/rwxnfs/api/admin/v1"
)

// ListReclaimed implements the API.
func (s *Server) ListReclaimed(ctx context.Context, r *adminv1.ListReclaimedRequest) (*adminv1.ListReclaimedResponse, error) {
	rs, err := s.t.Reclaimed()
	if err != nil {
		return nil, grpcErr(err)
	}
	resp := &adminv1.ListReclaimedResponse{}
	for _, r := range rs {
		resp.Volumes = append(resp.Volumes, &adminv1.ReclaimedVolume{Name: r.Name, VolumeId: r.ID,
			ReclaimMode: reclaimMsg(r.Mode), Path: r.Path, Deleted: r.Deleted.Format(time.RFC3339),
			CapacityBytes: r.Limits.Bytes, InodeLimit: r.Limits.Inodes, HasMetadata: r.HasMeta})
	}
	return resp, nil
}

// RestoreVolume implements the API.
func (s *Server) RestoreVolume(ctx context.Context, r *adminv1.RestoreVolumeRequest) (*adminv1.RestoreVolumeResponse, error) {
	if r.GetName() == "" {
		return nil, invalid("name is required")
	}
	v, err := s.t.RestoreVolume(r.GetName(), r.GetVolumeId())
	if err != nil {
		return nil, grpcErr(err)
	}
	return &adminv1.RestoreVolumeResponse{Volume: s.volumeMsg(v)}, nil
}
