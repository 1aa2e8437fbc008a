package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	adminv1 "github.com/rwxnfs/rwxnfs/api/admin/v1"
	"github.com/rwxnfs/rwxnfs/pkg/admin"
)

// keyValues reads key=value arguments.
func keyValues(args []string) (map[string]string, error) {
	m := make(map[string]string, len(args))
	for _, kv := range args {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%q: want key=value", kv)
		}
		m[k] = v
	}
	return m, nil
}

func pathNote(p string) string {
	if p == "" {
		return ""
	}
	return "; data kept in " + p
}

// limitOf shows a byte or inode limit: "-" is no limit.
func limitOf(n int64, bytes bool) string {
	switch {
	case n == 0:
		return "-"
	case bytes:
		return human(n)
	}
	return strconv.FormatInt(n, 10)
}

// human shows an amount of bytes: 0 is 0.
func human(n int64) string {
	const u = "KMGTPE"
	f, i := float64(n), -1
	for f >= 1024 && i < len(u)-1 {
		f /= 1024
		i++
	}
	if i < 0 {
		return strconv.FormatInt(n, 10)
	}
	return strconv.FormatFloat(f, 'f', 1, 64) + string(u[i]) + "i"
}

type printer struct {
	w    io.Writer
	json bool
	// typed is the size as the user typed it (create, expand): echoed
	// with the bytes it means.
	typed string
}

func (p *printer) proto(m proto.Message) error {
	v, err := jsonOf(m)
	if err != nil {
		return err
	}
	return p.printJSON(v)
}

func (p *printer) printJSON(v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(p.w, string(b))
	return err
}

// printList prints items as one JSON array.
func printList[M proto.Message](p *printer, items []M) error {
	all := make([]any, len(items))
	for i, m := range items {
		v, err := jsonOf(m)
		if err != nil {
			return err
		}
		all[i] = v
	}
	return p.printJSON(all)
}

// jsonOf is m's protojson form with 64-bit integers as JSON numbers, not
// the strings protojson makes of them (for JavaScript's sake): jq and
// scripts compare sizes as numbers.
func jsonOf(m proto.Message) (any, error) {
	b, err := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(m)
	if err != nil {
		return nil, err
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return nil, err
	}
	return numbers(v, m.ProtoReflect().Descriptor()), nil
}

func numbers(v any, md protoreflect.MessageDescriptor) any {
	obj, ok := v.(map[string]any)
	if !ok {
		return v
	}
	for k, val := range obj {
		fd := md.Fields().ByJSONName(k)
		if fd == nil {
			continue
		}
		if fd.IsMap() {
			fd = fd.MapValue()
			if m, ok := val.(map[string]any); ok {
				for mk, mv := range m {
					m[mk] = fieldJSON(fd, mv)
				}
			}
			continue
		}
		if l, ok := val.([]any); ok {
			for i := range l {
				l[i] = fieldJSON(fd, l[i])
			}
			continue
		}
		obj[k] = fieldJSON(fd, val)
	}
	return obj
}

func fieldJSON(fd protoreflect.FieldDescriptor, v any) any {
	switch fd.Kind() {
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind,
		protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		if s, ok := v.(string); ok {
			return json.Number(s)
		}
	case protoreflect.MessageKind:
		return numbers(v, fd.Message())
	}
	return v
}

func (p *printer) msg(m proto.Message, text string) error {
	if p.json {
		return p.proto(m)
	}
	_, err := fmt.Fprintln(p.w, text)
	return err
}

func (p *printer) volumes(vs []*adminv1.Volume) error {
	if p.json {
		return printList(p, vs)
	}
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VOLUME\tCAPACITY\tUSED\tUSE%\tINODES\tINODE LIMIT\tSQUASH\tRO\tEXPORT")
	for _, v := range vs {
		pct := "-"
		if v.CapacityBytes > 0 {
			pct = strconv.FormatInt(v.UsedBytes*100/v.CapacityBytes, 10) + "%"
		}
		used := human(v.UsedBytes)
		if !v.UsageReconciled {
			used += "*"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%v\t%s\n", v.VolumeId, limitOf(v.CapacityBytes, true), used, pct, v.UsedInodes, limitOf(v.InodeLimit, false), admin.SquashName(v.Options.GetSquash()), v.Options.GetReadOnly(), v.ExportPath)
	}
	return tw.Flush()
}

func (p *printer) volume(v *adminv1.Volume) error {
	if p.json {
		return p.proto(v)
	}
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	row := func(k string, v any) { fmt.Fprintf(tw, "%s:\t%v\n", k, v) }
	row("Volume", v.VolumeId)
	if v.RequestName != v.VolumeId {
		row("Name", v.RequestName)
	}
	row("Export", v.ExportPath)
	if !v.Present {
		row("Directory", "MISSING on the server: the volume's tree was removed or moved")
	}
	switch {
	case v.CapacityBytes == 0:
		row("Capacity", "- (no limit)")
	case p.typed != "":
		row("Capacity", fmt.Sprintf("%s (%d bytes)", p.typed, v.CapacityBytes))
	default:
		row("Capacity", fmt.Sprintf("%s (%d bytes)", human(v.CapacityBytes), v.CapacityBytes))
	}
	row("Used", fmt.Sprintf("%s (%d bytes), %d inodes; reconciled with the tree: %v", human(v.UsedBytes), v.UsedBytes, v.UsedInodes, v.UsageReconciled))
	row("Inode limit", limitOf(v.InodeLimit, false))
	row("Root", fmt.Sprintf("uid %d gid %d mode %04o", v.RootUid, v.RootGid, v.RootMode))
	o := v.Options
	row("Squash", fmt.Sprintf("%s (anonymous %d:%d)", admin.SquashName(o.GetSquash()), o.GetAnonUid(), o.GetAnonGid()))
	row("Read-only", o.GetReadOnly())
	row("Set-id bits", allowedOrOff(o.GetAllowSetId(), "cleared on files (allowSetID=true keeps them)"))
	row("Devices", allowedOrOff(o.GetAllowDevices(), "refused (allowDevices=true allows them)"))
	clients := "any"
	if len(o.GetClients()) > 0 {
		clients = strings.Join(o.GetClients(), ", ")
	}
	row("Clients", clients)
	if cs := v.ContentSource; cs != nil {
		if cs.GetSnapshotId() != "" {
			row("Source", "snapshot "+cs.GetSnapshotId())
		} else {
			row("Source", "volume "+cs.GetVolumeId())
		}
	}
	row("On delete", admin.ReclaimName(v.ReclaimMode))
	row("Created", v.Created)
	return tw.Flush()
}

func (p *printer) snapshots(ss []*adminv1.Snapshot) error {
	if p.json {
		return printList(p, ss)
	}
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SNAPSHOT\tVOLUME\tSIZE\tREADY\tCREATED")
	for _, s := range ss {
		ready := strconv.FormatBool(s.ReadyToUse)
		if s.Error != "" {
			ready = "failed: " + s.Error
		} else if !s.ReadyToUse {
			ready = "copying: " + progress(s.CopiedBytes, s.ExpectedBytes)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.SnapshotId, s.SourceVolumeId, human(s.SizeBytes), ready, s.Created)
	}
	return tw.Flush()
}

func (p *printer) capacity(c *adminv1.GetCapacityResponse) error {
	if p.json {
		return p.proto(c)
	}
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	row := func(k string, n int64) { fmt.Fprintf(tw, "%s:\t%s\t(%d bytes)\n", k, human(n), n) }
	row("Backing store", c.TotalBytes)
	row("Free", c.FreeBytes)
	row("Promised to limits", c.PromisedBytes)
	row("Copies to write", c.CopyingBytes)
	row("Available", c.AvailableBytes)
	fmt.Fprintf(tw, "Volumes:\t%d with a byte limit, %d without\n", c.LimitedVolumes, c.UnlimitedVolumes)
	fmt.Fprintf(tw, "Inodes:\t%d free of %d\n", c.FreeInodes, c.TotalInodes)
	return tw.Flush()
}

func (p *printer) info(i *adminv1.GetServerInfoResponse) error {
	if p.json {
		return p.proto(i)
	}
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	row := func(k string, v any) { fmt.Fprintf(tw, "%s:\t%v\n", k, v) }
	row("Version", i.Version)
	row("NFS address", i.NfsAddress)
	row("Locking", i.Locking)
	row("Started", i.Started)
	row("Volumes", i.Volumes)
	row("Usage reconciled", i.UsageReconciled)
	for _, w := range i.Warnings {
		row("WARNING", w)
	}
	return tw.Flush()
}

// allowedOrOff shows an export option that is off by default for safety.
func allowedOrOff(allowed bool, off string) string {
	if allowed {
		return "allowed"
	}
	return off
}

func (p *printer) locks(ls []*adminv1.Lock) error {
	if p.json {
		return printList(p, ls)
	}
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VOLUME\tPATH\tKIND\tMODE\tCLIENT\tPID\tOFFSET\tLENGTH\tHELD")
	for _, l := range ls {
		mode, length := "shared", strconv.FormatUint(l.Length, 10)
		if l.Exclusive {
			mode = "exclusive"
		}
		if l.Kind == "share" {
			mode = fmt.Sprintf("access=%d deny=%d", l.ShareAccess, l.ShareMode)
		}
		if l.Length == 0 {
			length = "EOF"
		}
		path := l.Path
		if path == "" {
			path = "(gone)"
		}
		held := "-"
		if t, err := time.Parse(time.RFC3339Nano, l.HeldSince); err == nil {
			held = time.Since(t).Round(time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", l.VolumeId, path, l.Kind, mode, l.Client, l.Svid, l.Offset, length, held)
	}
	return tw.Flush()
}

func (p *printer) lockClients(cs []*adminv1.LockClient) error {
	if p.json {
		return printList(p, cs)
	}
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CLIENT\tADDRESS\tSTATE\tMONITORED\tACTIVE")
	for _, c := range cs {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%v\t%v\n", c.Name, c.Address, c.State, c.Monitored, c.Active)
	}
	return tw.Flush()
}

func (p *printer) clients(cs []*adminv1.ClientConnection) error {
	if p.json {
		return printList(p, cs)
	}
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tVOLUMES\tSINCE\tCALLS")
	for _, c := range cs {
		vols := strings.Join(c.Volumes, ",")
		if vols == "" {
			vols = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", c.Address, vols, c.Since, c.Calls)
	}
	return tw.Flush()
}

func (p *printer) reclaimed(rs []*adminv1.ReclaimedVolume) error {
	if p.json {
		return printList(p, rs)
	}
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tVOLUME\tKEPT\tCAPACITY\tDELETED\tPATH")
	for _, r := range rs {
		capacity := limitOf(r.CapacityBytes, true)
		if !r.HasMetadata {
			capacity = "?"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, r.VolumeId, admin.ReclaimName(r.ReclaimMode), capacity, r.Deleted, r.Path)
	}
	return tw.Flush()
}

func (p *printer) copies(cs []*adminv1.Copy) error {
	if p.json {
		return printList(p, cs)
	}
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MAKING\tFROM\tPROGRESS")
	for _, c := range cs {
		fmt.Fprintf(tw, "%s/%s\t%s\t%s\n", c.Kind, c.Id, c.Source, progress(c.CopiedBytes, c.ExpectedBytes))
	}
	return tw.Flush()
}
