package admin

import (
	"fmt"
	"math/big"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	adminv1 "github.com/rwxnfs/rwxnfs/api/admin/v1"
)

// Volume settings as key=value text, the form StorageClass parameters
// and `nfsd admin create|update` arguments take, parsed into the API's
// typed messages. Callers strip their own keys first (the CSI driver:
// server, subDir and csi.storage.k8s.io/*). Keys are case-sensitive.

// ParamError is a bad parameter: its message names the key and what it
// accepts.
type ParamError struct{ Msg string }

func (e *ParamError) Error() string { return e.Msg }

func paramErr(format string, a ...any) error { return &ParamError{Msg: fmt.Sprintf(format, a...)} }

// CreateKeys are the keys ParseCreate accepts.
var createKeys = []string{"uid", "gid", "mode", "squash", "anonUID", "anonGID", "readOnly", "allowedClients", "clients", "inodeLimit", "onDelete", "allowSetID", "allowDevices"}

// UpdateKeys are the keys ParseUpdate accepts (what may change after
// create: not the root's owner and mode).
var updateKeys = []string{"squash", "anonUID", "anonGID", "readOnly", "allowedClients", "clients", "inodeLimit", "onDelete", "allowSetID", "allowDevices"}

// CreateKeys lists the keys ParseCreate accepts.
func CreateKeys() []string { return append([]string(nil), createKeys...) }

// UpdateKeys lists the keys ParseUpdate accepts.
func UpdateKeys() []string { return append([]string(nil), updateKeys...) }

// ParseCreate turns key=value settings into a new volume's options and
// reclaim mode. Accepted: uid, gid (decimal), mode (octal, up to 07777)
// of the volume root; squash (none|root|all); anonUID, anonGID;
// readOnly (true|false); allowedClients or clients (comma-separated
// CIDRs or addresses); inodeLimit (non-negative); onDelete
// (delete|retain|archive); allowSetID and allowDevices (true|false: keep
// set-id bits clients set on files; let root clients make device nodes).
func ParseCreate(p map[string]string) (*adminv1.VolumeOptions, adminv1.ReclaimMode, error) {
	o := &adminv1.VolumeOptions{}
	var reclaim adminv1.ReclaimMode
	for _, k := range sortedKeys(p) {
		v := p[k]
		var err error
		switch k {
		case "uid":
			o.RootUid, err = parseID(k, v)
		case "gid":
			o.RootGid, err = parseID(k, v)
		case "mode":
			var n uint64
			n, err = strconv.ParseUint(strings.TrimPrefix(v, "0o"), 8, 32)
			if err != nil || n&^0o7777 != 0 {
				err = paramErr("parameter mode=%q: want octal permission bits up to 07777, e.g. 0770", v)
			}
			o.RootMode = uint32(n)
		case "squash":
			o.Squash, err = ParseSquash(v)
		case "anonUID":
			o.AnonUid, err = parseOptID(k, v)
		case "anonGID":
			o.AnonGid, err = parseOptID(k, v)
		case "readOnly":
			o.ReadOnly, err = parseBool(k, v)
		case "allowedClients", "clients":
			o.Clients, err = parseClients(k, v)
		case "inodeLimit":
			o.InodeLimit, err = parseCount(k, v)
		case "onDelete":
			reclaim, err = ParseReclaim(v)
		case "allowSetID":
			o.AllowSetId, err = parseBool(k, v)
		case "allowDevices":
			o.AllowDevices, err = parseBool(k, v)
		default:
			err = paramErr("unknown parameter %q (accepted: %s)", k, strings.Join(createKeys, ", "))
		}
		if err != nil {
			return nil, 0, err
		}
	}
	if p["allowedClients"] != "" && p["clients"] != "" {
		return nil, 0, paramErr("parameters allowedClients and clients are the same setting: give one")
	}
	return o, reclaim, nil
}

// ParseUpdate turns key=value settings into an update of volume id; a
// key that cannot change after create is refused by name.
func ParseUpdate(id string, p map[string]string) (*adminv1.UpdateVolumeRequest, error) {
	r := &adminv1.UpdateVolumeRequest{VolumeId: id}
	for _, k := range sortedKeys(p) {
		v := p[k]
		var err error
		switch k {
		case "squash":
			r.Squash, err = ParseSquash(v)
		case "anonUID":
			r.AnonUid, err = parseOptID(k, v)
		case "anonGID":
			r.AnonGid, err = parseOptID(k, v)
		case "readOnly":
			var b bool
			b, err = parseBool(k, v)
			r.ReadOnly = &b
		case "allowedClients", "clients":
			r.SetClients = true
			r.Clients, err = parseClients(k, v)
		case "inodeLimit":
			var n int64
			n, err = parseCount(k, v)
			r.InodeLimit = &n
		case "onDelete":
			r.ReclaimMode, err = ParseReclaim(v)
		case "allowSetID":
			var b bool
			b, err = parseBool(k, v)
			r.AllowSetId = &b
		case "allowDevices":
			var b bool
			b, err = parseBool(k, v)
			r.AllowDevices = &b
		case "uid", "gid", "mode":
			err = paramErr("parameter %s cannot change after the volume is made (it set the root's owner and mode; change them through a mount)", k)
		default:
			err = paramErr("unknown parameter %q (these can change: %s)", k, strings.Join(updateKeys, ", "))
		}
		if err != nil {
			return nil, err
		}
	}
	return r, nil
}

// ParseSquash reads none, root or all.
func ParseSquash(v string) (adminv1.Squash, error) {
	switch v {
	case "none":
		return adminv1.Squash_SQUASH_NONE, nil
	case "root":
		return adminv1.Squash_SQUASH_ROOT, nil
	case "all":
		return adminv1.Squash_SQUASH_ALL, nil
	}
	return 0, paramErr("parameter squash=%q: want none, root or all", v)
}

// SquashName is the text form of s (none for unspecified).
func SquashName(s adminv1.Squash) string {
	switch s {
	case adminv1.Squash_SQUASH_ROOT:
		return "root"
	case adminv1.Squash_SQUASH_ALL:
		return "all"
	}
	return "none"
}

// ParseReclaim reads delete, retain or archive.
func ParseReclaim(v string) (adminv1.ReclaimMode, error) {
	switch v {
	case "delete":
		return adminv1.ReclaimMode_RECLAIM_MODE_DELETE, nil
	case "retain":
		return adminv1.ReclaimMode_RECLAIM_MODE_RETAIN, nil
	case "archive":
		return adminv1.ReclaimMode_RECLAIM_MODE_ARCHIVE, nil
	}
	return 0, paramErr("onDelete=%q: want delete, retain or archive", v)
}

// ReclaimName is the text form of m (delete for unspecified).
func ReclaimName(m adminv1.ReclaimMode) string {
	switch m {
	case adminv1.ReclaimMode_RECLAIM_MODE_RETAIN:
		return "retain"
	case adminv1.ReclaimMode_RECLAIM_MODE_ARCHIVE:
		return "archive"
	}
	return "delete"
}

func sortedKeys(p map[string]string) []string {
	keys := make([]string, 0, len(p))
	for k := range p {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func parseID(k, v string) (uint32, error) {
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return 0, paramErr("parameter %s=%q: want a decimal number from 0 to 4294967295", k, v)
	}
	return uint32(n), nil
}

func parseOptID(k, v string) (*uint32, error) {
	n, err := parseID(k, v)
	return &n, err
}

func parseBool(k, v string) (bool, error) {
	switch v {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, paramErr("parameter %s=%q: want true or false", k, v)
}

func parseCount(k, v string) (int64, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, paramErr("parameter %s=%q: want a non-negative number (0: no limit)", k, v)
	}
	return n, nil
}

// parseClients checks each CIDR or address here, so the message names
// the parameter; the server normalises them.
func parseClients(k, v string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		var err error
		if strings.Contains(f, "/") {
			_, err = netip.ParsePrefix(f)
		} else {
			_, err = netip.ParseAddr(f)
		}
		if err != nil {
			return nil, paramErr("parameter %s: %q is not an address or CIDR (e.g. 10.0.0.0/8, 192.168.1.7)", k, f)
		}
		out = append(out, f)
	}
	return out, nil
}

// ParseSize reads a size as people type it: a whole or decimal number
// with an optional unit, in any case, with or without a trailing B:
// Ki Mi Gi Ti Pi (KiB …) are powers of 1024, K M G T P (KB …) powers of
// 1000; "1.5Gi", "10G", "10GB", "500mi", "4096". A fraction of a byte is
// rounded up.
func ParseSize(s string) (int64, error) {
	bad := func(why string) (int64, error) {
		return 0, fmt.Errorf("size %q: %s; want a number with an optional unit: Ki Mi Gi Ti Pi (powers of 1024) or K M G T P (powers of 1000), e.g. 1.5Gi, 10G", s, why)
	}
	num := strings.TrimSpace(s)
	unit := strings.TrimLeft(num, "0123456789.")
	num = num[:len(num)-len(unit)]
	u := strings.ToLower(strings.TrimSpace(unit))
	if u != "b" {
		u = strings.TrimSuffix(u, "b")
	}
	mult := map[string]int64{"": 1, "b": 1,
		"k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12, "p": 1e15,
		"ki": 1 << 10, "mi": 1 << 20, "gi": 1 << 30, "ti": 1 << 40, "pi": 1 << 50}[u]
	if mult == 0 {
		return bad(fmt.Sprintf("unknown unit %q", unit))
	}
	whole, frac, _ := strings.Cut(num, ".")
	if whole == "" && frac == "" || strings.Contains(frac, ".") || len(frac) > 18 {
		return bad("not a number")
	}
	n, err := strconv.ParseInt("0"+whole, 10, 64)
	if err != nil || n > (1<<62)/mult {
		return bad("too large")
	}
	n *= mult
	if frac != "" {
		// frac/10^len(frac) of mult, exactly, rounded up.
		f, _ := strconv.ParseInt(frac, 10, 64)
		r := new(big.Int).Mul(big.NewInt(f), big.NewInt(mult))
		den := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(frac))), nil)
		q, m := new(big.Int).QuoRem(r, den, new(big.Int))
		if m.Sign() > 0 {
			q.Add(q, big.NewInt(1))
		}
		n += q.Int64()
	}
	return n, nil
}
