package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	adminv1 "github.com/rwxnfs/rwxnfs/api/admin/v1"
	"github.com/rwxnfs/rwxnfs/pkg/admin"
)

const adminUsage = `usage: nfsd admin [flags] <command> [args]

commands:
  list                                  volumes with usage and limits
  show <volume>                         one volume
  create <volume> <size> [key=value...] size like 10Gi, 500M, 0 (no limit);
                                        keys: uid gid mode squash anonUID anonGID
                                        readOnly clients inodeLimit onDelete
                                        from-snapshot=<id> from-volume=<id>
  expand <volume> <size>
  update <volume> key=value...          keys: squash anonUID anonGID readOnly
                                        clients inodeLimit onDelete
  delete <volume> [delete|retain|archive]
                                        default: the volume's onDelete mode
  snapshot create <snapshot> <volume>   copies in the background (-wait: until ready)
  snapshot show <snapshot>
  snapshot delete <snapshot>
  snapshot list [volume]
  capacity                              backing store size, free, promised to limits
  info                                  the server's version, address, state
  locks list [volume=<id>] [client=<host>]
                                        NLM locks, queued requests and shares
  locks clients                         client hosts the lock manager knows
  locks release <client>                force-release a dead client's locks

flags:
`

// runAdmin is "nfsd admin ...": a client of the admin API.
func runAdmin(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("nfsd admin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "unix:/run/rwxnfs/admin.sock", `admin API address: "unix:/path.sock" or "host:port"`)
	tokenFile := fs.String("token-file", "/etc/rwxnfs/admin-token", "file holding the bearer token")
	output := fs.String("o", "table", "output: table or json")
	ca := fs.String("tls-ca", "", "CA of the server's certificate (PEM): use TLS")
	cert := fs.String("tls-cert", "", "client certificate (PEM) for mTLS")
	key := fs.String("tls-key", "", "client key (PEM) for mTLS")
	timeout := fs.Duration("timeout", 10*time.Minute, "call timeout (copies of large volumes take long)")
	wait := fs.Bool("wait", true, "snapshot create: wait until the snapshot is ready")
	fs.Usage = func() { fmt.Fprint(stderr, adminUsage); fs.PrintDefaults() }
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	token, err := os.ReadFile(*tokenFile)
	if err != nil {
		fmt.Fprintf(stderr, "nfsd admin: %v\n", err)
		return 1
	}
	cl, conn, err := admin.Dial(admin.ClientConfig{Addr: *addr, Token: strings.TrimSpace(string(token)), CACert: *ca, Cert: *cert, Key: *key})
	if err != nil {
		fmt.Fprintf(stderr, "nfsd admin: %v\n", err)
		return 1
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	out := &printer{w: stdout, json: *output == "json", wait: *wait}
	if err := adminCommand(ctx, cl, out, fs.Args()); err != nil {
		fmt.Fprintf(stderr, "nfsd admin: %v\n", err)
		if errors.Is(err, errUsage) {
			fs.Usage()
			return 2
		}
		return 1
	}
	return 0
}

var errUsage = errors.New("bad arguments")

func adminCommand(ctx context.Context, cl adminv1.AdminClient, out *printer, a []string) error {
	need := func(n int) error {
		if len(a) < n {
			return errUsage
		}
		return nil
	}
	switch a[0] {
	case "list":
		var all []*adminv1.Volume
		token := ""
		for {
			r, err := cl.ListVolumes(ctx, &adminv1.ListVolumesRequest{StartingToken: token})
			if err != nil {
				return err
			}
			all = append(all, r.Volumes...)
			if token = r.NextToken; token == "" {
				break
			}
		}
		return out.volumes(all)
	case "show":
		if err := need(2); err != nil {
			return err
		}
		r, err := cl.GetVolume(ctx, &adminv1.GetVolumeRequest{VolumeId: a[1]})
		if err != nil {
			return err
		}
		return out.volume(r.Volume)
	case "create":
		if err := need(3); err != nil {
			return err
		}
		size, err := admin.ParseSize(a[2])
		if err != nil {
			return err
		}
		// The size is exact: a repeat with another size is AlreadyExists.
		req := &adminv1.CreateVolumeRequest{Name: a[1], RequiredBytes: size, LimitBytes: size}
		params, err := keyValues(a[3:])
		if err != nil {
			return err
		}
		if v, ok := params["from-snapshot"]; ok {
			req.ContentSource = &adminv1.ContentSource{Type: &adminv1.ContentSource_SnapshotId{SnapshotId: v}}
			delete(params, "from-snapshot")
		}
		if v, ok := params["from-volume"]; ok {
			req.ContentSource = &adminv1.ContentSource{Type: &adminv1.ContentSource_VolumeId{VolumeId: v}}
			delete(params, "from-volume")
		}
		if req.Options, req.ReclaimMode, err = admin.ParseCreate(params); err != nil {
			return err
		}
		r, err := cl.CreateVolume(ctx, req)
		if err != nil {
			return err
		}
		return out.volume(r.Volume)
	case "expand":
		if err := need(3); err != nil {
			return err
		}
		size, err := admin.ParseSize(a[2])
		if err != nil {
			return err
		}
		r, err := cl.ExpandVolume(ctx, &adminv1.ExpandVolumeRequest{VolumeId: a[1], CapacityBytes: size})
		if err != nil {
			return err
		}
		return out.volume(r.Volume)
	case "update":
		if err := need(3); err != nil {
			return err
		}
		params, err := keyValues(a[2:])
		if err != nil {
			return err
		}
		req, err := admin.ParseUpdate(a[1], params)
		if err != nil {
			return err
		}
		r, err := cl.UpdateVolume(ctx, req)
		if err != nil {
			return err
		}
		return out.volume(r.Volume)
	case "capacity":
		r, err := cl.GetCapacity(ctx, &adminv1.GetCapacityRequest{})
		if err != nil {
			return err
		}
		return out.capacity(r)
	case "info":
		r, err := cl.GetServerInfo(ctx, &adminv1.GetServerInfoRequest{})
		if err != nil {
			return err
		}
		return out.info(r)
	case "delete":
		if err := need(2); err != nil {
			return err
		}
		mode := adminv1.ReclaimMode_RECLAIM_MODE_UNSPECIFIED
		if len(a) > 2 {
			m, err := admin.ParseReclaim(a[2])
			if err != nil {
				return err
			}
			mode = m
		}
		r, err := cl.DeleteVolume(ctx, &adminv1.DeleteVolumeRequest{VolumeId: a[1], ReclaimMode: mode})
		if err != nil {
			return err
		}
		return out.msg(r, "deleted "+a[1]+pathNote(r.Path))
	case "snapshot":
		if err := need(2); err != nil {
			return err
		}
		switch a[1] {
		case "create":
			if err := need(4); err != nil {
				return err
			}
			r, err := cl.CreateSnapshot(ctx, &adminv1.CreateSnapshotRequest{Name: a[2], SourceVolumeId: a[3]})
			if err != nil {
				return err
			}
			snap := r.Snapshot
			for out.wait && !snap.ReadyToUse && snap.Error == "" {
				select {
				case <-ctx.Done():
					return fmt.Errorf("snapshot %s is not ready yet: %w", a[2], ctx.Err())
				case <-time.After(200 * time.Millisecond):
				}
				g, err := cl.GetSnapshot(ctx, &adminv1.GetSnapshotRequest{SnapshotId: a[2]})
				if err != nil {
					return err
				}
				snap = g.Snapshot
			}
			if snap.Error != "" {
				return fmt.Errorf("snapshot %s failed: %s (repeat the command to retry)", a[2], snap.Error)
			}
			return out.snapshots([]*adminv1.Snapshot{snap})
		case "show":
			if err := need(3); err != nil {
				return err
			}
			r, err := cl.GetSnapshot(ctx, &adminv1.GetSnapshotRequest{SnapshotId: a[2]})
			if err != nil {
				return err
			}
			return out.snapshots([]*adminv1.Snapshot{r.Snapshot})
		case "delete":
			if err := need(3); err != nil {
				return err
			}
			r, err := cl.DeleteSnapshot(ctx, &adminv1.DeleteSnapshotRequest{SnapshotId: a[2]})
			if err != nil {
				return err
			}
			return out.msg(r, "deleted snapshot "+a[2])
		case "list":
			req := &adminv1.ListSnapshotsRequest{}
			if len(a) > 2 {
				req.SourceVolumeId = a[2]
			}
			var all []*adminv1.Snapshot
			for {
				r, err := cl.ListSnapshots(ctx, req)
				if err != nil {
					return err
				}
				all = append(all, r.Snapshots...)
				if req.StartingToken = r.NextToken; r.NextToken == "" {
					break
				}
			}
			return out.snapshots(all)
		}
	case "locks":
		if err := need(2); err != nil {
			return err
		}
		return locksCommand(ctx, cl, out, a[1:])
	}
	return errUsage
}

func locksCommand(ctx context.Context, cl adminv1.AdminClient, out *printer, a []string) error {
	switch a[0] {
	case "list":
		req := &adminv1.ListLocksRequest{}
		for _, kv := range a[1:] {
			k, v, _ := strings.Cut(kv, "=")
			switch k {
			case "volume":
				req.VolumeId = v
			case "client":
				req.Client = v
			default:
				return fmt.Errorf("%q: want volume=<id> or client=<host>", kv)
			}
		}
		r, err := cl.ListLocks(ctx, req)
		if err != nil {
			return err
		}
		return out.locks(r.Locks)
	case "clients":
		r, err := cl.ListLockClients(ctx, &adminv1.ListLockClientsRequest{})
		if err != nil {
			return err
		}
		return out.lockClients(r.Clients)
	case "release":
		if len(a) != 2 {
			return errUsage
		}
		r, err := cl.ReleaseClientLocks(ctx, &adminv1.ReleaseClientLocksRequest{Client: a[1]})
		if err != nil {
			return err
		}
		return out.msg(r, fmt.Sprintf("released %d locks, queued requests and shares of %s", r.Released, a[1]))
	}
	return errUsage
}

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
