package admin

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	adminv1 "github.com/rwxnfs/rwxnfs/api/admin/v1"
	"github.com/rwxnfs/rwxnfs/pkg/locking"
)

// LockManager is the lock manager's side the admin API shows and acts
// on; *locking.Service implements it.
type LockManager interface {
	Locks(volume, client string) []locking.Entry
	Clients() []locking.ClientInfo
	ReleaseClient(name string) int
}

func (s *Server) lockManager() (LockManager, error) {
	if s.locks == nil {
		return nil, status.Error(codes.FailedPrecondition, "nfsd serves no lock manager (--no-locking)")
	}
	return s.locks, nil
}

// ListLocks implements the API.
func (s *Server) ListLocks(ctx context.Context, r *adminv1.ListLocksRequest) (*adminv1.ListLocksResponse, error) {
	lm, err := s.lockManager()
	if err != nil {
		return nil, err
	}
	resp := &adminv1.ListLocksResponse{}
	paths := map[string]string{}
	for _, e := range lm.Locks(r.GetVolumeId(), r.GetClient()) {
		p, seen := paths[e.File]
		if !seen {
			p = s.pathOf([]byte(e.File))
			paths[e.File] = p
		}
		resp.Locks = append(resp.Locks, &adminv1.Lock{
			VolumeId:    e.Volume,
			Path:        p,
			FileHandle:  []byte(e.File),
			Kind:        e.Kind.String(),
			Client:      e.Owner.Caller,
			Svid:        e.Owner.Svid,
			OwnerHandle: []byte(e.Owner.OH),
			Exclusive:   e.Exclusive,
			Offset:      e.Range.Start,
			Length:      e.Range.Len(),
			ShareMode:   e.ShareMode,
			ShareAccess: e.ShareAccess,
			HeldSince:   heldSince(e.Since),
		})
	}
	return resp, nil
}

// pathOf finds where a locked file is now, relative to its volume, for
// operators: through the node's descriptor, so it follows renames. ""
// when the file is gone or is not a volume's.
func (s *Server) pathOf(fh []byte) string {
	n, err := s.t.Resolve(fh)
	if err != nil {
		return ""
	}
	defer s.t.Release(n)
	p, err := os.Readlink(fmt.Sprintf("/proc/self/fd/%d", n.FD()))
	if err != nil {
		return ""
	}
	rel, ok := strings.CutPrefix(p, n.Vol.Dir())
	if !ok {
		return ""
	}
	if rel == "" {
		return "/"
	}
	return rel
}

// ListLockClients implements the API.
func (s *Server) ListLockClients(ctx context.Context, r *adminv1.ListLockClientsRequest) (*adminv1.ListLockClientsResponse, error) {
	lm, err := s.lockManager()
	if err != nil {
		return nil, err
	}
	resp := &adminv1.ListLockClientsResponse{}
	for _, c := range lm.Clients() {
		resp.Clients = append(resp.Clients, &adminv1.LockClient{
			Name: c.Name, Address: c.Addr, State: c.State, Monitored: c.Monitored, Active: c.Active,
		})
	}
	return resp, nil
}

// ReleaseClientLocks implements the API.
func (s *Server) ReleaseClientLocks(ctx context.Context, r *adminv1.ReleaseClientLocksRequest) (*adminv1.ReleaseClientLocksResponse, error) {
	if r.GetClient() == "" {
		return nil, invalid("client is required")
	}
	lm, err := s.lockManager()
	if err != nil {
		return nil, err
	}
	n := lm.ReleaseClient(r.GetClient())
	s.log.Warn("admin released a client's locks", "client", r.GetClient(), "released", n)
	return &adminv1.ReleaseClientLocksResponse{Released: int32(n)}, nil
}

func heldSince(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
