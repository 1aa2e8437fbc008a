package admin

import (
	"context"
	"sort"
	"time"

	adminv1 "github.com/rwxnfs/rwxnfs/api/admin/v1"
	"github.com/rwxnfs/rwxnfs/pkg/exports"
)

// CreateSnapshot implements the API.
func (s *Server) CreateSnapshot(ctx context.Context, r *adminv1.CreateSnapshotRequest) (*adminv1.CreateSnapshotResponse, error) {
	if r.GetName() == "" || r.GetSourceVolumeId() == "" {
		return nil, invalid("name and source_volume_id are required")
	}
	snap, existed, err := s.t.CreateSnapshot(r.GetName(), r.GetSourceVolumeId())
	if err != nil {
		return nil, grpcErr(err)
	}
	return &adminv1.CreateSnapshotResponse{Snapshot: s.snapshotMsg(snap), Existed: existed}, nil
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
	return &adminv1.GetSnapshotResponse{Snapshot: s.snapshotMsg(snap)}, nil
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
	snaps, next, err := page(snaps, snapshotID, r.GetStartingToken(), r.GetMaxEntries())
	if err != nil {
		return nil, err
	}
	resp := &adminv1.ListSnapshotsResponse{NextToken: next}
	for _, sn := range snaps {
		resp.Snapshots = append(resp.Snapshots, s.snapshotMsg(sn))
	}
	return resp, nil
}

func (srv *Server) snapshotMsg(s *exports.Snapshot) *adminv1.Snapshot {
	m := &adminv1.Snapshot{
		SnapshotId:     s.ID,
		SourceVolumeId: s.Source,
		SizeBytes:      s.Usage.Bytes,
		SizeInodes:     s.Usage.Inodes,
		Created:        s.Created.Format(time.RFC3339Nano),
		ReadyToUse:     !s.Pending,
		Error:          s.Error,
	}
	if s.Pending {
		for _, c := range srv.t.Copies() {
			if c.Kind == "snapshot" && c.ID == s.ID {
				m.CopiedBytes, m.ExpectedBytes = c.Written, c.Expected
			}
		}
	}
	return m
}

// ListCopies implements the API.
func (srv *Server) ListCopies(ctx context.Context, r *adminv1.ListCopiesRequest) (*adminv1.ListCopiesResponse, error) {
	resp := &adminv1.ListCopiesResponse{}
	for _, c := range srv.t.Copies() {
		resp.Copies = append(resp.Copies, &adminv1.Copy{Kind: c.Kind, Id: c.ID, Source: c.Source, CopiedBytes: c.Written, ExpectedBytes: c.Expected})
	}
	return resp, nil
}
