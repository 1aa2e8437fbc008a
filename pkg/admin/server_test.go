package admin

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

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
	s, err := Start(Config{Listen: sock, TokenFile: tokenFile, Info: Info{Version: "test-version", NFSAddr: "127.0.0.1:2049"}}, tb, nil, log)
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

	req := &adminv1.CreateVolumeRequest{Name: "pvc-a", RequiredBytes: 10 << 20, Options: &adminv1.VolumeOptions{
		RootUid: 1000, RootGid: 1000, RootMode: 0o770, Squash: adminv1.Squash_SQUASH_ROOT, InodeLimit: 100, Clients: []string{"10.0.0.0/8"}}}
	r, err := cl.CreateVolume(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	v := r.Volume
	if r.Existed || v.CapacityBytes != 10<<20 || v.InodeLimit != 100 || v.RootUid != 1000 || v.RootMode != 0o770 || v.Options.Squash != adminv1.Squash_SQUASH_ROOT ||
		v.Options.Clients[0] != "10.0.0.0/8" || v.ExportPath != "/volumes/pvc-a" || !v.Present || v.ReclaimMode != adminv1.ReclaimMode_RECLAIM_MODE_DELETE {
		t.Fatalf("created %v", r)
	}
	if r, err := cl.CreateVolume(ctx, req); err != nil || !r.Existed {
		t.Fatalf("repeat: %v %v", r, err)
	}
	req.RequiredBytes = 20 << 20
	_, err = cl.CreateVolume(ctx, req)
	wantCode(t, err, codes.AlreadyExists)
	for _, bad := range []*adminv1.CreateVolumeRequest{
		{}, {Name: "a/b"}, {Name: "x", RequiredBytes: -1}, {Name: "x", RequiredBytes: 2, LimitBytes: 1},
		{Name: "x", Options: &adminv1.VolumeOptions{Squash: 17}},
		{Name: "x", Options: &adminv1.VolumeOptions{RootMode: 0o17777}},
		{Name: "x", Options: &adminv1.VolumeOptions{Clients: []string{"not-an-ip"}}},
		{Name: "x", ReclaimMode: 9},
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
	if _, err := cl.CreateSnapshot(ctx, &adminv1.CreateSnapshotRequest{Name: "snap-a", SourceVolumeId: "pvc-a"}); err != nil {
		t.Fatal(err)
	}
	s := waitReady(t, cl, "snap-a")
	if s.SizeBytes != 3<<20 || s.SizeInodes != 1 {
		t.Fatal(s)
	}
	if g, err := cl.ListSnapshots(ctx, &adminv1.ListSnapshotsRequest{SnapshotId: "snap-a"}); err != nil || len(g.Snapshots) != 1 || g.Snapshots[0].SnapshotId != "snap-a" {
		t.Fatalf("list by id: %v %v", g, err)
	}
	if g, err := cl.ListSnapshots(ctx, &adminv1.ListSnapshotsRequest{SnapshotId: "nope"}); err != nil || len(g.Snapshots) != 0 {
		t.Fatalf("list by an unknown id: %v %v", g, err)
	}
	_, err = cl.GetSnapshot(ctx, &adminv1.GetSnapshotRequest{SnapshotId: "nope"})
	wantCode(t, err, codes.NotFound)
	_, err = cl.CreateSnapshot(ctx, &adminv1.CreateSnapshotRequest{Name: "snap-b", SourceVolumeId: "nope"})
	wantCode(t, err, codes.NotFound)
	_, err = cl.CreateVolume(ctx, &adminv1.CreateVolumeRequest{Name: "small", RequiredBytes: 1 << 20, ContentSource: &adminv1.ContentSource{Type: &adminv1.ContentSource_SnapshotId{SnapshotId: "snap-a"}}})
	wantCode(t, err, codes.OutOfRange)
	rs, err := cl.CreateVolume(ctx, &adminv1.CreateVolumeRequest{Name: "restored", RequiredBytes: 10 << 20, ContentSource: &adminv1.ContentSource{Type: &adminv1.ContentSource_SnapshotId{SnapshotId: "snap-a"}}})
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

// waitReady polls a snapshot until its copy is done.
func waitReady(t *testing.T, cl adminv1.AdminClient, id string) *adminv1.Snapshot {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		g, err := cl.GetSnapshot(context.Background(), &adminv1.GetSnapshotRequest{SnapshotId: id})
		if err != nil {
			t.Fatal(err)
		}
		if g.Snapshot.Error != "" {
			t.Fatalf("snapshot %s failed: %s", id, g.Snapshot.Error)
		}
		if g.Snapshot.ReadyToUse {
			return g.Snapshot
		}
	}
	t.Fatalf("snapshot %s not ready in 30s", id)
	return nil
}

// The calls the CSI controller needs beyond create and delete: update of
// export options, the stored reclaim mode, capacity and server info.
func TestAdminUpdateCapacityInfo(t *testing.T) {
	_, tb, _, sock := startAdmin(t)
	cl := client(t, sock, testToken)
	ctx := context.Background()
	if _, err := cl.CreateVolume(ctx, &adminv1.CreateVolumeRequest{Name: "v", RequiredBytes: 1 << 20, LimitBytes: 4 << 20,
		ReclaimMode: adminv1.ReclaimMode_RECLAIM_MODE_RETAIN, RequestName: "pvc-123"}); err != nil {
		t.Fatal(err)
	}
	// Repeats: any capacity in range, same name; another name is refused.
	r, err := cl.CreateVolume(ctx, &adminv1.CreateVolumeRequest{Name: "v", LimitBytes: 2 << 20, ReclaimMode: adminv1.ReclaimMode_RECLAIM_MODE_RETAIN, RequestName: "pvc-123"})
	if err != nil || !r.Existed || r.Volume.CapacityBytes != 1<<20 || r.Volume.RequestName != "pvc-123" {
		t.Fatalf("compatible repeat: %v %v", r, err)
	}
	_, err = cl.CreateVolume(ctx, &adminv1.CreateVolumeRequest{Name: "v", RequiredBytes: 1 << 20, ReclaimMode: adminv1.ReclaimMode_RECLAIM_MODE_RETAIN, RequestName: "pvc-999"})
	wantCode(t, err, codes.AlreadyExists)

	u, err := cl.UpdateVolume(ctx, &adminv1.UpdateVolumeRequest{VolumeId: "v", Squash: adminv1.Squash_SQUASH_ALL, ReadOnly: proto.Bool(true),
		SetClients: true, Clients: []string{"10.9.0.0/16"}, InodeLimit: proto.Int64(100)})
	if err != nil {
		t.Fatal(err)
	}
	o := u.Volume.Options
	if o.Squash != adminv1.Squash_SQUASH_ALL || !o.ReadOnly || len(o.Clients) != 1 || o.Clients[0] != "10.9.0.0/16" || u.Volume.InodeLimit != 100 ||
		u.Volume.ReclaimMode != adminv1.ReclaimMode_RECLAIM_MODE_RETAIN {
		t.Fatalf("updated: %v", u.Volume)
	}
	if !tb.MustVolume("v").Options.ReadOnly {
		t.Fatal("the table does not serve the update")
	}
	u, err = cl.UpdateVolume(ctx, &adminv1.UpdateVolumeRequest{VolumeId: "v", SetClients: true})
	if err != nil || len(u.Volume.Options.Clients) != 0 || !u.Volume.Options.ReadOnly {
		t.Fatalf("clearing the allow-list: %v %v", u, err)
	}
	for _, bad := range []*adminv1.UpdateVolumeRequest{
		{}, {VolumeId: "v", Clients: []string{"10.0.0.1"}}, {VolumeId: "v", SetClients: true, Clients: []string{"x"}},
		{VolumeId: "v", InodeLimit: proto.Int64(-1)}, {VolumeId: "v", Squash: 42},
	} {
		_, err := cl.UpdateVolume(ctx, bad)
		wantCode(t, err, codes.InvalidArgument)
	}
	_, err = cl.UpdateVolume(ctx, &adminv1.UpdateVolumeRequest{VolumeId: "nope"})
	wantCode(t, err, codes.NotFound)

	c, err := cl.GetCapacity(ctx, &adminv1.GetCapacityRequest{})
	if err != nil || c.TotalBytes <= 0 || c.FreeBytes <= 0 || c.PromisedBytes != 1<<20 || c.LimitedVolumes != 1 ||
		c.AvailableBytes != max(0, c.FreeBytes-c.PromisedBytes) || c.TotalInodes <= 0 {
		t.Fatalf("capacity: %v %v", c, err)
	}
	info, err := cl.GetServerInfo(ctx, &adminv1.GetServerInfoRequest{})
	if err != nil || info.Volumes != 1 || info.ExportPrefix != "/volumes/" || info.Version != "test-version" || info.NfsAddress != "127.0.0.1:2049" {
		t.Fatalf("info: %v %v", info, err)
	}

	// The stored mode applies to a delete that names none.
	d, err := cl.DeleteVolume(ctx, &adminv1.DeleteVolumeRequest{VolumeId: "v"})
	if err != nil || !strings.HasSuffix(d.Path, "/retained/v") {
		t.Fatalf("delete with the stored mode: %v %v", d, err)
	}
}

func TestGRPCErrorCodes(t *testing.T) {
	for kind, code := range map[exports.ErrorKind]codes.Code{
		exports.KindInvalid: codes.InvalidArgument, exports.KindExists: codes.AlreadyExists, exports.KindNotFound: codes.NotFound,
		exports.KindPrecondition: codes.FailedPrecondition, exports.KindOutOfRange: codes.OutOfRange, exports.KindAborted: codes.Aborted,
	} {
		if got := status.Code(grpcErr(&exports.Error{Kind: kind, Msg: "x"})); got != code {
			t.Errorf("kind %d: %v, want %v", kind, got, code)
		}
	}
	if got := status.Code(grpcErr(errors.New("disk on fire"))); got != codes.Internal {
		t.Errorf("plain error: %v", got)
	}
}
