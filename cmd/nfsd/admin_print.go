package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

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

func human(n int64) string {
	if n == 0 {
		return "-"
	}
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
	wait bool // snapshot create waits for the copy
}

func (p *printer) proto(m proto.Message) error {
	b, err := protojson.MarshalOptions{Multiline: true, EmitUnpopulated: true}.Marshal(m)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(p.w, string(b))
	return err
}

// printList prints items as one JSON array of protojson objects.
func printList[M proto.Message](p *printer, items []M) error {
	raw := make([]json.RawMessage, len(items))
	for i, m := range items {
		b, err := protojson.MarshalOptions{EmitUnpopulated: true}.Marshal(m)
		if err != nil {
			return err
		}
		raw[i] = b
	}
	b, _ := json.MarshalIndent(raw, "", "  ")
	_, err := fmt.Fprintln(p.w, string(b))
	return err
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%v\t%s\n", v.VolumeId, human(v.CapacityBytes), used, pct, v.UsedInodes, human(v.InodeLimit), admin.SquashName(v.Options.GetSquash()), v.Options.GetReadOnly(), v.ExportPath)
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
	row("Capacity", fmt.Sprintf("%s (%d bytes)", human(v.CapacityBytes), v.CapacityBytes))
	row("Used", fmt.Sprintf("%s (%d bytes), %d inodes; reconciled with the tree: %v", human(v.UsedBytes), v.UsedBytes, v.UsedInodes, v.UsageReconciled))
	row("Inode limit", human(v.InodeLimit))
	row("Root", fmt.Sprintf("uid %d gid %d mode %04o", v.RootUid, v.RootGid, v.RootMode))
	o := v.Options
	row("Squash", fmt.Sprintf("%s (anonymous %d:%d)", admin.SquashName(o.GetSquash()), o.GetAnonUid(), o.GetAnonGid()))
	row("Read-only", o.GetReadOnly())
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
			ready = "copying"
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
	return tw.Flush()
}

func (p *printer) locks(ls []*adminv1.Lock) error {
	if p.json {
		return printList(p, ls)
	}
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VOLUME\tPATH\tKIND\tMODE\tCLIENT\tPID\tOFFSET\tLENGTH")
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
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", l.VolumeId, path, l.Kind, mode, l.Client, l.Svid, l.Offset, length)
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
