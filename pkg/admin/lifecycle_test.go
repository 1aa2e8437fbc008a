package admin

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	adminv1 "github.com/rwxnfs/rwxnfs/api/admin/v1"
)

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
	if o.AllowSetId || o.AllowDevices {
		t.Fatalf("set-id bits or devices allowed by default: %v", o)
	}
	u, err = cl.UpdateVolume(ctx, &adminv1.UpdateVolumeRequest{VolumeId: "v", AllowSetId: proto.Bool(true), AllowDevices: proto.Bool(true)})
	if err != nil || !u.Volume.Options.AllowSetId || !u.Volume.Options.AllowDevices || !tb.MustVolume("v").Options.AllowDevices {
		t.Fatalf("allowing set-id bits and devices: %v %v", u, err)
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
