package admin

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	adminv1 "github.com/rwxnfs/rwxnfs/api/admin/v1"
	"github.com/rwxnfs/rwxnfs/pkg/exports"
)

const testToken = "s3cret-token-for-tests-0123456789"

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuf) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// startAdmin serves a real table over a real gRPC listener on a unix
// socket.
func startAdmin(t *testing.T) (*Server, *exports.Table, *syncBuf, string) {
	t.Helper()
	dir := t.TempDir()
	logs := &syncBuf{}
	log := slog.New(slog.NewTextHandler(logs, nil))
	tb, err := exports.Open(exports.Config{Root: filepath.Join(dir, "root"), Log: log})
	if err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(dir, "token")
	os.WriteFile(tokenFile, []byte(testToken+"\n"), 0o600)
	sock := "unix:" + filepath.Join(dir, "admin.sock")
	s, err := Start(Config{Listen: sock, TokenFile: tokenFile}, tb, nil, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.Stop(ctx)
		tb.Close()
	})
	return s, tb, logs, sock
}

func client(t *testing.T, addr, token string) adminv1.AdminClient {
	t.Helper()
	cl, conn, err := Dial(ClientConfig{Addr: addr, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return cl
}

func wantCode(t *testing.T, err error, c codes.Code) {
	t.Helper()
	if status.Code(err) != c {
		t.Fatalf("got %v, want %v", err, c)
	}
}

func TestAdminAuth(t *testing.T) {
	_, _, logs, sock := startAdmin(t)
	ctx := context.Background()
	_, err := client(t, sock, "").ListVolumes(ctx, &adminv1.ListVolumesRequest{})
	wantCode(t, err, codes.Unauthenticated)
	_, err = client(t, sock, "wrong-token-wrong-token").CreateVolume(ctx, &adminv1.CreateVolumeRequest{Name: "x"})
	wantCode(t, err, codes.Unauthenticated)
	if !strings.Contains(logs.String(), "admin call refused") || !strings.Contains(logs.String(), "reason=\"wrong token\"") {
		t.Fatalf("refusals not logged:\n%s", logs)
	}
	if _, err := client(t, sock, testToken).ListVolumes(ctx, &adminv1.ListVolumesRequest{}); err != nil {
		t.Fatal(err)
	}
	// Without a token file the API does not start.
	if _, err := Start(Config{Listen: "127.0.0.1:0"}, nil, nil, slog.Default()); err == nil {
		t.Fatal("started without a token")
	}
}

func TestAdminLifecycle(t *testing.T) {
	_, tb, _, sock := startAdmin(t)
	cl := client(t, sock, testToken)
	ctx := context.Background()

	req := &adminv1.CreateVolumeRequest{Name: "pvc-a", CapacityBytes: 10 << 20, Parameters: map[string]string{"uid": "1000", "gid": "1000", "mode": "0770", "squash": "root", "inodeLimit": "100", "clients": "10.0.0.0/8"}}
	r, err := cl.CreateVolume(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	v := r.Volume
	if r.Existed || v.CapacityBytes != 10<<20 || v.InodeLimit != 100 || v.RootUid != 1000 || v.RootMode != 0o770 || v.Options.Squash != "root" || v.Options.Clients[0] != "10.0.0.0/8" || v.ExportPath != "/volumes/pvc-a" {
		t.Fatalf("created %v", r)
	}
	if r, err := cl.CreateVolume(ctx, req); err != nil || !r.Existed {
		t.Fatalf("repeat: %v %v", r, err)
	}
	req.CapacityBytes = 20 << 20
	_, err = cl.CreateVolume(ctx, req)
	wantCode(t, err, codes.AlreadyExists)
	for _, bad := range []*adminv1.CreateVolumeRequest{
		{}, {Name: "a/b"}, {Name: "x", CapacityBytes: -1},
		{Name: "x", Parameters: map[string]string{"colour": "blue"}},
		{Name: "x", Parameters: map[string]string{"uid": "root"}},
		{Name: "x", Parameters: map[string]string{"squash": "some"}},
		{Name: "x", Parameters: map[string]string{"clients": "not-an-ip"}},
		{Name: "x", ContentSource: &adminv1.ContentSource{}},
	} {
		_, err := cl.CreateVolume(ctx, bad)
		wantCode(t, err, codes.InvalidArgument)
	}
	_, err = cl.GetVolume(ctx, &adminv1.GetVolumeRequest{VolumeId: "nope"})
	wantCode(t, err, codes.NotFound)

	// Usage shows in GetVolume.
	os.WriteFile(filepath.Join(tb.MustVolume("pvc-a").Dir(), "f"), bytes.Repeat([]byte{1}, 3<<20), 0o644)
	if err := tb.Reconcile(tb.MustVolume("pvc-a")); err != nil {
		t.Fatal(err)
	}
	g, err := cl.GetVolume(ctx, &adminv1.GetVolumeRequest{VolumeId: "pvc-a"})
	if err != nil || g.Volume.UsedBytes != 3<<20 || g.Volume.UsedInodes != 1 || !g.Volume.UsageReconciled {
		t.Fatalf("get: %v %v", g, err)
	}
	_, err = cl.ExpandVolume(ctx, &adminv1.ExpandVolumeRequest{VolumeId: "pvc-a", CapacityBytes: 1 << 20})
	wantCode(t, err, codes.FailedPrecondition)
	e, err := cl.ExpandVolume(ctx, &adminv1.ExpandVolumeRequest{VolumeId: "pvc-a", CapacityBytes: 50 << 20})
	if err != nil || e.Volume.CapacityBytes != 50<<20 {
		t.Fatal(e, err)
	}
	_, err = cl.ExpandVolume(ctx, &adminv1.ExpandVolumeRequest{VolumeId: "nope", CapacityBytes: 1})
	wantCode(t, err, codes.NotFound)

	// Snapshots and volumes made from them.
	s, err := cl.CreateSnapshot(ctx, &adminv1.CreateSnapshotRequest{Name: "snap-a", SourceVolumeId: "pvc-a"})
	if err != nil || s.Snapshot.SizeBytes != 3<<20 || !s.Snapshot.ReadyToUse {
		t.Fatal(s, err)
	}
	_, err = cl.CreateSnapshot(ctx, &adminv1.CreateSnapshotRequest{Name: "snap-b", SourceVolumeId: "nope"})
	wantCode(t, err, codes.NotFound)
	_, err = cl.CreateVolume(ctx, &adminv1.CreateVolumeRequest{Name: "small", CapacityBytes: 1 << 20, ContentSource: &adminv1.ContentSource{Type: &adminv1.ContentSource_SnapshotId{SnapshotId: "snap-a"}}})
	wantCode(t, err, codes.OutOfRange)
	rs, err := cl.CreateVolume(ctx, &adminv1.CreateVolumeRequest{Name: "restored", CapacityBytes: 10 << 20, ContentSource: &adminv1.ContentSource{Type: &adminv1.ContentSource_SnapshotId{SnapshotId: "snap-a"}}})
	if err != nil || rs.Volume.UsedBytes != 3<<20 || rs.Volume.ContentSource.GetSnapshotId() != "snap-a" {
		t.Fatal(rs, err)
	}
	cv, err := cl.CreateVolume(ctx, &adminv1.CreateVolumeRequest{Name: "cloned", ContentSource: &adminv1.ContentSource{Type: &adminv1.ContentSource_VolumeId{VolumeId: "pvc-a"}}})
	if err != nil || cv.Volume.UsedBytes != 3<<20 {
		t.Fatal(cv, err)
	}
	ls, err := cl.ListSnapshots(ctx, &adminv1.ListSnapshotsRequest{SourceVolumeId: "pvc-a"})
	if err != nil || len(ls.Snapshots) != 1 {
		t.Fatal(ls, err)
	}
	if _, err := cl.DeleteSnapshot(ctx, &adminv1.DeleteSnapshotRequest{SnapshotId: "snap-a"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.DeleteSnapshot(ctx, &adminv1.DeleteSnapshotRequest{SnapshotId: "snap-a"}); err != nil {
		t.Fatalf("deleting a deleted snapshot: %v", err)
	}

	// Paginated listing.
	for _, id := range []string{"v1", "v2", "v3", "v4"} {
		if _, err := cl.CreateVolume(ctx, &adminv1.CreateVolumeRequest{Name: id}); err != nil {
			t.Fatal(err)
		}
	}
	var ids []string
	token := ""
	pages := 0
	for {
		l, err := cl.ListVolumes(ctx, &adminv1.ListVolumesRequest{MaxEntries: 2, StartingToken: token})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, v := range l.Volumes {
			ids = append(ids, v.VolumeId)
		}
		if token = l.NextToken; token == "" {
			break
		}
	}
	if got := strings.Join(ids, ","); got != "cloned,pvc-a,restored,v1,v2,v3,v4" || pages != 4 {
		t.Fatalf("listed %s in %d pages", got, pages)
	}
	_, err = cl.ListVolumes(ctx, &adminv1.ListVolumesRequest{MaxEntries: -1})
	wantCode(t, err, codes.InvalidArgument)

	// Deletion modes; deleting an unknown volume succeeds.
	d, err := cl.DeleteVolume(ctx, &adminv1.DeleteVolumeRequest{VolumeId: "v1", ReclaimMode: adminv1.ReclaimMode_RECLAIM_MODE_RETAIN})
	if err != nil || !strings.HasSuffix(d.Path, "/retained/v1") {
		t.Fatal(d, err)
	}
	d, err = cl.DeleteVolume(ctx, &adminv1.DeleteVolumeRequest{VolumeId: "v2", ReclaimMode: adminv1.ReclaimMode_RECLAIM_MODE_ARCHIVE})
	if err != nil || !strings.Contains(d.Path, "/archive/v2-") {
		t.Fatal(d, err)
	}
	if _, err := cl.DeleteVolume(ctx, &adminv1.DeleteVolumeRequest{VolumeId: "v3"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cl.DeleteVolume(ctx, &adminv1.DeleteVolumeRequest{VolumeId: "v3"}); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	_, err = cl.GetVolume(ctx, &adminv1.GetVolumeRequest{VolumeId: "v3"})
	wantCode(t, err, codes.NotFound)
}
