package admin

import (
	"context"
	"sort"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	adminv1 "github.com/rwxnfs/rwxnfs/api/admin/v1"
)

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
		UsageReconciled: reconciled, ExportPrefix: "/volumes/", Warnings: s.warnings,
	}, nil
}

// ListClients implements the API.
func (s *Server) ListClients(ctx context.Context, r *adminv1.ListClientsRequest) (*adminv1.ListClientsResponse, error) {
	cs := s.clients()
	sort.Slice(cs, func(i, j int) bool { return cs[i].Since.Before(cs[j].Since) })
	resp := &adminv1.ListClientsResponse{}
	for _, c := range cs {
		resp.Clients = append(resp.Clients, &adminv1.ClientConnection{Address: c.Address,
			Since: c.Since.UTC().Format(time.RFC3339), Calls: c.Calls, Volumes: c.Volumes})
	}
	return resp, nil
}
