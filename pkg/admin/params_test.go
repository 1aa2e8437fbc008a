package admin

import (
	"errors"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	adminv1 "github.com/rwxnfs/rwxnfs/api/admin/v1"
)

func TestParseCreate(t *testing.T) {
	o, m, err := ParseCreate(map[string]string{"uid": "1000", "gid": "2000", "mode": "2770", "squash": "root", "anonUID": "7",
		"anonGID": "8", "readOnly": "true", "allowedClients": "10.0.0.0/8, 192.168.1.7", "inodeLimit": "5000", "onDelete": "archive", "allowSetID": "true", "allowDevices": "false"})
	if err != nil {
		t.Fatal(err)
	}
	u7, u8 := uint32(7), uint32(8)
	want := &adminv1.VolumeOptions{RootUid: 1000, RootGid: 2000, RootMode: 0o2770, Squash: adminv1.Squash_SQUASH_ROOT, AnonUid: &u7,
		AnonGid: &u8, ReadOnly: true, Clients: []string{"10.0.0.0/8", "192.168.1.7"}, InodeLimit: 5000, AllowSetId: true}
	if !proto.Equal(o, want) || m != adminv1.ReclaimMode_RECLAIM_MODE_ARCHIVE {
		t.Fatalf("got %v %v\nwant %v", o, m, want)
	}
	if o, m, err := ParseCreate(nil); err != nil || !proto.Equal(o, &adminv1.VolumeOptions{}) || m != 0 {
		t.Fatalf("empty: %v %v %v", o, m, err)
	}
	for _, c := range []struct {
		p    map[string]string
		want string // in the error: the key and what it accepts
	}{
		{map[string]string{"colour": "blue"}, `unknown parameter "colour" (accepted: uid, gid, mode`},
		{map[string]string{"uid": "root"}, `uid="root": want a decimal number`},
		{map[string]string{"gid": "-1"}, `gid="-1"`},
		{map[string]string{"mode": "0999"}, `mode="0999": want octal`},
		{map[string]string{"mode": "17777"}, `up to 07777`},
		{map[string]string{"squash": "some"}, `squash="some": want none, root or all`},
		{map[string]string{"readOnly": "yes"}, `readOnly="yes": want true or false`},
		{map[string]string{"allowDevices": "1"}, `allowDevices="1": want true or false`},
		{map[string]string{"allowedClients": "10.0.0.0/8,nowhere"}, `allowedClients: "nowhere" is not an address or CIDR`},
		{map[string]string{"inodeLimit": "-5"}, `inodeLimit="-5": want a non-negative number`},
		{map[string]string{"onDelete": "shred"}, `onDelete="shred": want delete, retain or archive`},
		{map[string]string{"clients": "10.0.0.1", "allowedClients": "10.0.0.2"}, "give one"},
	} {
		_, _, err := ParseCreate(c.p)
		var pe *ParamError
		if !errors.As(err, &pe) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: %v, want a ParamError containing %q", c.p, err, c.want)
		}
	}
}

func TestParseUpdate(t *testing.T) {
	r, err := ParseUpdate("v", map[string]string{"readOnly": "false", "allowedClients": "", "inodeLimit": "0", "onDelete": "retain", "squash": "all", "allowDevices": "true"})
	if err != nil {
		t.Fatal(err)
	}
	if r.VolumeId != "v" || r.ReadOnly == nil || *r.ReadOnly || !r.SetClients || len(r.Clients) != 0 || r.InodeLimit == nil || *r.InodeLimit != 0 ||
		r.ReclaimMode != adminv1.ReclaimMode_RECLAIM_MODE_RETAIN || r.Squash != adminv1.Squash_SQUASH_ALL || r.AnonUid != nil ||
		r.AllowDevices == nil || !*r.AllowDevices || r.AllowSetId != nil {
		t.Fatalf("got %v", r)
	}
	for k, want := range map[string]string{"uid": "cannot change after the volume is made", "mode": "cannot change", "size": `unknown parameter "size" (these can change: squash`} {
		if _, err := ParseUpdate("v", map[string]string{k: "1"}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want %q", k, err, want)
		}
	}
}
