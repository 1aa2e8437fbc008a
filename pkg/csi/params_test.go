package csi

import (
	"errors"
	"strings"
	"testing"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	adminv1 "github.com/rwxnfs/rwxnfs/api/admin/v1"
)

func TestParseCreateParams(t *testing.T) {
	cp, err := parseCreateParams(map[string]string{
		"server": "nfs.storage.svc", "nfsd": "main", "subDir": "${pvc.metadata.namespace}-${pvc.metadata.name}",
		"uid": "1000", "gid": "1000", "mode": "0770", "squash": "root", "inodeLimit": "1000", "allowedClients": "10.0.0.0/8", "onDelete": "retain",
		metaPVCName: "data", metaPVCNamespace: "team-a", metaPVName: "pvc-123", "csi.storage.k8s.io/provisioner-secret-name": "x",
	})
	if err != nil {
		t.Fatal(err)
	}
	want := &adminv1.VolumeOptions{RootUid: 1000, RootGid: 1000, RootMode: 0o770, Squash: adminv1.Squash_SQUASH_ROOT, InodeLimit: 1000, Clients: []string{"10.0.0.0/8"}}
	if cp.server != "nfs.storage.svc" || cp.nfsd != "main" || cp.subDir != "team-a-data" || !proto.Equal(cp.options, want) || cp.reclaim != adminv1.ReclaimMode_RECLAIM_MODE_RETAIN {
		t.Fatalf("got %+v %v", cp, cp.options)
	}
	// Only csi-provisioner's keys: the defaults.
	cp, err = parseCreateParams(map[string]string{metaPVCName: "a", metaPVName: "b"})
	if err != nil || cp.subDir != "" || !proto.Equal(cp.options, &adminv1.VolumeOptions{}) {
		t.Fatalf("provisioner keys only: %+v %v", cp, err)
	}
	for _, c := range []struct {
		p    map[string]string
		want string
	}{
		{map[string]string{"colour": "blue"}, `unknown parameter "colour" (accepted: uid, gid, mode, squash, anonUID, anonGID, readOnly, allowedClients, clients, inodeLimit, onDelete, allowSetID, allowDevices); this driver also reads server, subDir and nfsd`},
		{map[string]string{"squash": "maybe"}, `squash="maybe": want none, root or all`},
		{map[string]string{"onDelete": "shred"}, "want delete, retain or archive"},
		{map[string]string{"server": ""}, "parameter server"},
		{map[string]string{"server": "a/b"}, "parameter server"},
		{map[string]string{"nfsd": "Not_A_Name"}, "parameter nfsd"},
		{map[string]string{"subDir": "${pvc.metadata.name}"}, "run csi-provisioner with --extra-create-metadata"},
		{map[string]string{"subDir": "${pvc.metadata.uid}", metaPVCName: "a"}, "unknown variable ${pvc.metadata.uid} (known: ${pv.metadata.name}, ${pvc.metadata.namespace}, ${pvc.metadata.name})"},
		{map[string]string{"subDir": "${pvc.metadata.namespace}/${pvc.metadata.name}", metaPVCName: "a", metaPVCNamespace: "b"}, `gives "b/a", which cannot name a volume`},
		{map[string]string{"subDir": "$HOME"}, "a $ that is not a ${variable}"},
	} {
		if _, err := parseCreateParams(c.p); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v\nwant it to contain %q", c.p, err, c.want)
		}
	}
}

func TestRenderSubDir(t *testing.T) {
	p := map[string]string{metaPVCName: "data", metaPVCNamespace: "ns", metaPVName: "pvc-9"}
	for tmpl, want := range map[string]string{
		"static":              "static",
		"${pv.metadata.name}": "pvc-9",
		"${pvc.metadata.namespace}.${pvc.metadata.name}": "ns.data",
		"x-${pvc.metadata.name}-${pvc.metadata.name}":    "x-data-data",
	} {
		if got, err := renderSubDir(tmpl, p); err != nil || got != want {
			t.Errorf("%q: %q %v, want %q", tmpl, got, err, want)
		}
	}
}

func TestIDs(t *testing.T) {
	for _, name := range []string{"pvc-1234", "a", strings.Repeat("x", maxIDLen)} {
		if got := idForName(name); got != name {
			t.Errorf("%q maps to %q, want itself", name, got)
		}
	}
	seen := map[string]string{}
	for _, name := range []string{"sanity Node Service 0CF0B5F0", "sanity/Node", "-leading", strings.Repeat("y", maxIDLen+1), "ümlaut", "..", ""} {
		id := idForName(name)
		if !validID.MatchString(id) || len(id) > maxIDLen {
			t.Errorf("%q maps to the invalid id %q", name, id)
		}
		if id != idForName(name) {
			t.Errorf("%q maps to different ids", name)
		}
		if other, dup := seen[id]; dup {
			t.Errorf("%q and %q map to %q", name, other, id)
		}
		seen[id] = name
		full := objectID{NFSD: "some-nfsd-name", ID: id}.String()
		if len(full) > 128 {
			t.Errorf("%q: CSI ID %q is longer than 128 bytes", name, full)
		}
		if back, ok := parseObjectID(full); !ok || back.ID != id {
			t.Errorf("%q does not parse back: %+v %v", full, back, ok)
		}
	}
	for _, bad := range []string{"", "noslash", "/x", "n/", "N/x", "n/a/b", "n/.x"} {
		if _, ok := parseObjectID(bad); ok {
			t.Errorf("%q parsed as an ID", bad)
		}
	}
}

func TestParseNFSD(t *testing.T) {
	n, err := ParseNFSD("name=main,admin=unix:/run/rwxnfs/admin.sock,server=10.0.0.5")
	if err != nil || n != (NFSD{Name: "main", Admin: "unix:/run/rwxnfs/admin.sock", Server: "10.0.0.5"}) {
		t.Fatalf("%+v %v", n, err)
	}
	for _, bad := range []string{"", "name=main", "name=main,admin=x", "name=Main,admin=x,server=y", "name=m,admin=x,server=y,colour=z", "name=m,admin=x,server=y/z", "junk"} {
		if _, err := ParseNFSD(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestCapabilityChecks(t *testing.T) {
	mountCap := func(fs string, flags ...string) *csi.VolumeCapability {
		return &csi.VolumeCapability{
			AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{FsType: fs, MountFlags: flags}},
			AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER},
		}
	}
	for _, ok := range []*csi.VolumeCapability{mountCap(""), mountCap("nfs"), mountCap("", "nolock,hard", "vers=3", "proto=tcp")} {
		if err := checkCapabilities([]*csi.VolumeCapability{ok}); err != nil {
			t.Errorf("%v: %v", ok, err)
		}
	}
	block := &csi.VolumeCapability{AccessType: &csi.VolumeCapability_Block{Block: &csi.VolumeCapability_BlockVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_SINGLE_NODE_WRITER}}
	noMode := mountCap("")
	noMode.AccessMode = nil
	for c, want := range map[*csi.VolumeCapability]string{
		block: "block access is not supported", mountCap("ext4"): `fs_type "ext4"`, mountCap("", "vers=4.1"): "NFS version 3 only",
		mountCap("", "hard,nfsvers=4"): "NFS version 3 only", mountCap("", "proto=udp"): "TCP only", noMode: "no access mode",
	} {
		if err := checkCapabilities([]*csi.VolumeCapability{c}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%v: %v, want %q", c, err, want)
		}
	}
}

func TestParseMountOpts(t *testing.T) {
	for in, want := range map[string]mountOpts{
		"":                          {locking: true},
		"nolock":                    {},
		"hard,local_lock=all":       {},
		"local_lock=flock":          {locking: true},
		"port=2050,mountport=2051":  {port: 2050, mountPort: 2051, locking: true},
		"nolock,lock":               {locking: true},
		"rsize=1048576,timeo=600,x": {locking: true},
	} {
		if got := parseMountOpts([]string{in}); got != want {
			t.Errorf("%q: %+v, want %+v", in, got, want)
		}
	}
}

// Errors from the admin API reach the CO with the nfsd named and a code
// it acts on; the mount's failures likewise.
func TestErrorMapping(t *testing.T) {
	n := &nfsdConn{NFSD: NFSD{Name: "main", Admin: "unix:/run/a.sock"}}
	for in, want := range map[codes.Code]codes.Code{
		codes.Unavailable: codes.Unavailable, codes.Unauthenticated: codes.Unauthenticated, codes.Unknown: codes.Internal,
		codes.AlreadyExists: codes.AlreadyExists, codes.OutOfRange: codes.OutOfRange, codes.Aborted: codes.Aborted,
		codes.FailedPrecondition: codes.FailedPrecondition, codes.NotFound: codes.NotFound, codes.InvalidArgument: codes.InvalidArgument,
	} {
		err := fromAdmin(n, status.Error(in, "boom"))
		if status.Code(err) != want || !strings.Contains(err.Error(), "nfsd main") {
			t.Errorf("%v: %v, want %v naming the nfsd", in, err, want)
		}
	}
	if err := fromAdmin(n, status.Error(codes.Unauthenticated, "wrong token")); !strings.Contains(err.Error(), "--admin-token-file") {
		t.Errorf("token refusal: %v", err)
	}
	for out, want := range map[string]codes.Code{
		"mount.nfs: access denied by server while mounting 10.0.0.1:/volumes/x":                                   codes.FailedPrecondition,
		"mount.nfs: Connection timed out":                                                                         codes.Unavailable,
		"mount: wrong fs type, bad option, bad superblock ... you might need a /sbin/mount.<type> helper program": codes.FailedPrecondition,
		"mount.nfs: rpc.statd is not running but is required for remote locking":                                  codes.FailedPrecondition,
		"something else": codes.Internal,
	} {
		err := mountError("s:/v", "/t", errors.New(out))
		if status.Code(err) != want || !strings.Contains(err.Error(), out) {
			t.Errorf("%q: %v, want %v quoting the output", out, err, want)
		}
	}
}
