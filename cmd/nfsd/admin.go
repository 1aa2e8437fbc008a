package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	adminv1 "github.com/rwxnfs/rwxnfs/api/admin/v1"
	"github.com/rwxnfs/rwxnfs/pkg/admin"
)

// adminCLI is "nfsd admin …": a client of a running server's admin API.
// Arguments are checked before the server is called, so a usage error
// (exit 2) never changed anything.
type adminCLI struct {
	stdout, stderr        io.Writer
	addr, tokenFile, root string
	output                string
	ca, cert, key         string
	timeout               time.Duration
	typed                 string // the size argument, echoed as typed
}

const adminLong = `Drive a running nfsd through its admin gRPC API: volumes with quotas,
snapshots and clones, capacity, locks.

The server must run with --admin-listen. By default both sides meet at
` + admin.DefaultAddr + ` and the token nfsd generates in
<root>/state/admin-token (--root, default ./nfsd-data, as for "nfsd
serve"); --token-file names another. A token is at least 16 characters
in a file that only its owner may read; whitespace around it is ignored.
Over TCP give the address with --addr (TLS: --tls-ca, mTLS: --tls-cert,
--tls-key).

Sizes are bytes or a number with a unit, as typed: 1.5Gi, 10G, 10GB,
500mi (Ki Mi Gi Ti Pi are powers of 1024; K M G T P, with or without B,
powers of 1000; case does not matter). "-" means no limit; 0 is zero.`

const adminExample = `  nfsd admin list
  nfsd admin create web 10Gi uid=33 gid=33 mode=0750
  nfsd admin expand web 20Gi
  nfsd admin show web -o json
  nfsd admin --addr 10.0.0.5:9103 --token-file ./token --tls-ca ca.pem list`

func newAdminCmd(stdout, stderr io.Writer) *cobra.Command {
	a := &adminCLI{stdout: stdout, stderr: stderr}
	c := groupCmd("admin", "Manage a running server's volumes, snapshots and locks", adminLong, adminExample,
		a.listCmd(), a.showCmd(), a.createCmd(), a.expandCmd(), a.updateCmd(), a.deleteCmd(),
		a.snapshotCmd(), a.capacityCmd(), a.infoCmd(), a.clientsCmd(), a.locksCmd(), a.deletedCmd(), a.restoreCmd(), a.copiesCmd())
	f := c.PersistentFlags()
	f.StringVar(&a.addr, "addr", admin.DefaultAddr, `admin API address: "unix:/path.sock" or "host:port"`)
	f.StringVar(&a.tokenFile, "token-file", "", "file holding the bearer token (default: --root's state/admin-token)")
	f.StringVar(&a.root, "root", "./nfsd-data", "the server's --root, where the token it generated is found")
	f.StringVarP(&a.output, "output", "o", "table", "output: table or json")
	f.StringVar(&a.ca, "tls-ca", "", "CA of the server's certificate (PEM): use TLS")
	f.StringVar(&a.cert, "tls-cert", "", "client certificate (PEM) for mTLS")
	f.StringVar(&a.key, "tls-key", "", "client key (PEM) for mTLS")
	f.DurationVar(&a.timeout, "timeout", 10*time.Minute, "call timeout (copies of large volumes take long)")
	return c
}

// call dials the API and runs fn with the printer the flags ask for.
func (a *adminCLI) call(fn func(ctx context.Context, cl adminv1.AdminClient, out *printer) error) error {
	if a.output != "table" && a.output != "json" {
		return usagef("-o %q: want table or json", a.output)
	}
	if a.timeout <= 0 {
		return usagef("--timeout %v: want more than 0", a.timeout)
	}
	tokenFile := a.tokenFile
	if tokenFile == "" {
		tokenFile = admin.TokenPath(a.root)
	}
	token, err := os.ReadFile(tokenFile)
	if err != nil {
		if os.IsNotExist(err) && a.tokenFile == "" {
			return fmt.Errorf("no admin token at %s: start the server with --admin-listen (it writes the token into its --root), or give --root or --token-file", tokenFile)
		}
		return fmt.Errorf("admin token: %w", err)
	}
	cl, conn, err := admin.Dial(admin.ClientConfig{Addr: a.addr, Token: strings.TrimSpace(string(token)), CACert: a.ca, Cert: a.cert, Key: a.key})
	if err != nil {
		return err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), a.timeout)
	defer cancel()
	err = fn(ctx, cl, &printer{w: a.stdout, json: a.output == "json", typed: a.typed})
	if err != nil && strings.HasPrefix(a.addr, "unix:") && isUnavailable(err) {
		p := strings.TrimPrefix(a.addr, "unix:")
		if _, serr := os.Stat(p); serr != nil {
			return fmt.Errorf("no admin API at %s: is nfsd running with --admin-listen %s? (%w)", a.addr, a.addr, err)
		}
	}
	return err
}

// args checks the count of positional arguments, naming what is missing
// or the first word too many.
func args(names ...string) cobra.PositionalArgs {
	return argsRange(len(names), len(names), names...)
}

// argsRange: at least min, at most max (-1: any) arguments; names name
// them in order.
func argsRange(min, max int, names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		if len(a) < min {
			return usagef("missing %s", strings.Join(names[len(a):min], " "))
		}
		if max >= 0 && len(a) > max {
			return usagef("unexpected argument %q", a[max])
		}
		return nil
	}
}

func (a *adminCLI) listCmd() *cobra.Command {
	return &cobra.Command{
		Use: "list", Short: "List volumes with usage and limits",
		Long:    "List every volume: capacity (its byte limit), used bytes and inodes, inode limit, squash, read-only, export path. A * after USED means the usage is not yet reconciled with the tree since the server started.",
		Example: "  nfsd admin list\n  nfsd admin list -o json",
		Args:    noArgs,
		RunE: act(func(_ *cobra.Command, _ []string) error {
			return a.call(func(ctx context.Context, cl adminv1.AdminClient, out *printer) error {
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
			})
		}),
	}
}

func (a *adminCLI) showCmd() *cobra.Command {
	return &cobra.Command{
		Use: "show <volume>", Short: "Show one volume",
		Example: "  nfsd admin show web\n  nfsd admin show web -o json",
		Args:    args("<volume>"),
		RunE: act(func(_ *cobra.Command, arg []string) error {
			return a.call(func(ctx context.Context, cl adminv1.AdminClient, out *printer) error {
				r, err := cl.GetVolume(ctx, &adminv1.GetVolumeRequest{VolumeId: arg[0]})
				if err != nil {
					return err
				}
				return out.volume(r.Volume)
			})
		}),
	}
}

func (a *adminCLI) createCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "create <volume> <size> [key=value...]",
		Short: "Create a volume with a byte limit",
		Long: `Create a volume whose byte limit is <size> ("-" or 0: no limit). Repeating the
same command is harmless; a repeat with other parameters fails and names the
difference.

keys: uid gid mode (octal, at most 07777) squash (none, root, all)
anonUID anonGID readOnly clients (CIDRs or addresses, comma-separated)
inodeLimit onDelete (delete, retain, archive)
from-snapshot=<id> or from-volume=<id>: start as a copy.`,
		Example: "  nfsd admin create web 10Gi uid=33 gid=33 mode=0750\n  nfsd admin create scratch - squash=all\n  nfsd admin create web-copy 10Gi from-volume=web",
		Args:    argsRange(2, -1, "<volume>", "<size>"),
		RunE: act(func(_ *cobra.Command, arg []string) error {
			size, err := parseLimit(arg[1])
			if err != nil {
				return err
			}
			a.typed = arg[1]
			// The size is exact: a repeat with another size is AlreadyExists.
			req := &adminv1.CreateVolumeRequest{Name: arg[0], RequiredBytes: size, LimitBytes: size}
			params, err := keyValues(arg[2:])
			if err != nil {
				return err
			}
			if v, ok := params["from-snapshot"]; ok {
				req.ContentSource = &adminv1.ContentSource{Type: &adminv1.ContentSource_SnapshotId{SnapshotId: v}}
				delete(params, "from-snapshot")
			}
			if v, ok := params["from-volume"]; ok {
				if req.ContentSource != nil {
					return usagef("from-snapshot and from-volume exclude each other")
				}
				req.ContentSource = &adminv1.ContentSource{Type: &adminv1.ContentSource_VolumeId{VolumeId: v}}
				delete(params, "from-volume")
			}
			if req.Options, req.ReclaimMode, err = admin.ParseCreate(params); err != nil {
				return usagef("%v", err)
			}
			if m := req.Options.RootMode; m&0o6000 != 0 {
				fmt.Fprintf(a.stderr, "nfsd admin create: warning: mode=%04o sets setuid/setgid on the volume's root directory (setgid: new entries inherit its group)\n", m)
			}
			if m := req.Options.RootMode; m&0o1000 != 0 {
				fmt.Fprintf(a.stderr, "nfsd admin create: warning: mode=%04o sets the sticky bit: only an entry's owner may delete or rename it\n", m)
			}
			return a.call(func(ctx context.Context, cl adminv1.AdminClient, out *printer) error {
				if req.ContentSource != nil {
					// A copy can take long: say how far it is.
					stop := a.showCopy(ctx, cl, arg[0])
					defer stop()
				}
				r, err := cl.CreateVolume(ctx, req)
				if err != nil {
					return err
				}
				return out.volume(r.Volume)
			})
		}),
	}
}

func (a *adminCLI) expandCmd() *cobra.Command {
	shrink := false
	c := &cobra.Command{
		Use:   "expand <volume> <size>",
		Short: "Change a volume's byte limit",
		Long: `Set a volume's byte limit to <size>; 0 or "-" removes the limit. A limit
below the current one needs --allow-shrink (and is refused below what the
volume holds).`,
		Example: "  nfsd admin expand web 20Gi\n  nfsd admin expand web 0\n  nfsd admin expand web 5Gi --allow-shrink",
		Args:    args("<volume>", "<size>"),
		RunE: act(func(_ *cobra.Command, arg []string) error {
			size, err := parseLimit(arg[1])
			if err != nil {
				return err
			}
			a.typed = arg[1]
			return a.call(func(ctx context.Context, cl adminv1.AdminClient, out *printer) error {
				g, err := cl.GetVolume(ctx, &adminv1.GetVolumeRequest{VolumeId: arg[0]})
				if err != nil {
					return err
				}
				if cur := g.Volume.CapacityBytes; size > 0 && cur > 0 && size < cur && !shrink {
					return usagef("%s (%d bytes) is below %s's limit of %s (%d bytes): pass --allow-shrink to lower it", arg[1], size, arg[0], human(cur), cur)
				}
				r, err := cl.ExpandVolume(ctx, &adminv1.ExpandVolumeRequest{VolumeId: arg[0], CapacityBytes: size})
				if err != nil {
					return err
				}
				return out.volume(r.Volume)
			})
		}),
	}
	c.Flags().BoolVar(&shrink, "allow-shrink", false, "allow a limit below the current one")
	return c
}

func (a *adminCLI) updateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "update <volume> key=value...",
		Short: "Change a volume's export options",
		Long: `Change export options of a volume: squash anonUID anonGID readOnly clients
inodeLimit onDelete. uid, gid and mode of the volume's root are changed by a
client (chown/chmod), not here.`,
		Example: "  nfsd admin update web readOnly=true clients=10.0.0.0/8\n  nfsd admin update web onDelete=retain",
		Args:    argsRange(2, -1, "<volume>", "key=value"),
		RunE: act(func(_ *cobra.Command, arg []string) error {
			params, err := keyValues(arg[1:])
			if err != nil {
				return err
			}
			req, err := admin.ParseUpdate(arg[0], params)
			if err != nil {
				return usagef("%v", err)
			}
			return a.call(func(ctx context.Context, cl adminv1.AdminClient, out *printer) error {
				r, err := cl.UpdateVolume(ctx, req)
				if err != nil {
					return err
				}
				return out.volume(r.Volume)
			})
		}),
	}
}

func (a *adminCLI) deleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "delete <volume> [delete|retain|archive]",
		Short: "Delete a volume (its data removed, retained or archived)",
		Long: `Delete a volume. Its data is removed (delete), kept in <root>/retained/<id>
(retain) or moved to <root>/archive/<id>-<time> (archive); default: the
volume's own onDelete mode.`,
		Example: "  nfsd admin delete web\n  nfsd admin delete web archive",
		Args:    argsRange(1, 2, "<volume>"),
		RunE: act(func(_ *cobra.Command, arg []string) error {
			mode := adminv1.ReclaimMode_RECLAIM_MODE_UNSPECIFIED
			if len(arg) > 1 {
				m, err := admin.ParseReclaim(arg[1])
				if err != nil {
					return usagef("%v", err)
				}
				mode = m
			}
			return a.call(func(ctx context.Context, cl adminv1.AdminClient, out *printer) error {
				// Deleting is idempotent (exit 0 either way), but a typo
				// must not look like a deletion.
				if _, err := cl.GetVolume(ctx, &adminv1.GetVolumeRequest{VolumeId: arg[0]}); status.Code(err) == codes.NotFound {
					return out.msg(&adminv1.DeleteVolumeResponse{}, "volume "+arg[0]+" does not exist: nothing deleted")
				}
				r, err := cl.DeleteVolume(ctx, &adminv1.DeleteVolumeRequest{VolumeId: arg[0], ReclaimMode: mode})
				if err != nil {
					return err
				}
				return out.msg(r, "deleted "+arg[0]+pathNote(r.Path))
			})
		}),
	}
}

func (a *adminCLI) snapshotCmd() *cobra.Command {
	wait := true
	create := &cobra.Command{
		Use: "create <snapshot> <volume>", Short: "Snapshot a volume (a copy made in the background)",
		Example: "  nfsd admin snapshot create web-monday web\n  nfsd admin snapshot create web-monday web --wait=false",
		Args:    args("<snapshot>", "<volume>"),
		RunE: act(func(_ *cobra.Command, arg []string) error {
			return a.call(func(ctx context.Context, cl adminv1.AdminClient, out *printer) error {
				r, err := cl.CreateSnapshot(ctx, &adminv1.CreateSnapshotRequest{Name: arg[0], SourceVolumeId: arg[1]})
				if err != nil {
					return err
				}
				snap := r.Snapshot
				shown := time.Now()
				for wait && !snap.ReadyToUse && snap.Error == "" {
					if time.Since(shown) >= 5*time.Second {
						fmt.Fprintf(a.stderr, "snapshot %s: copying, %s\n", arg[0], progress(snap.CopiedBytes, snap.ExpectedBytes))
						shown = time.Now()
					}
					select {
					case <-ctx.Done():
						return fmt.Errorf("snapshot %s is not ready yet: %w", arg[0], ctx.Err())
					case <-time.After(200 * time.Millisecond):
					}
					g, err := cl.GetSnapshot(ctx, &adminv1.GetSnapshotRequest{SnapshotId: arg[0]})
					if err != nil {
						return err
					}
					snap = g.Snapshot
				}
				if snap.Error != "" {
					return fmt.Errorf("snapshot %s failed: %s (repeat the command to retry)", arg[0], snap.Error)
				}
				return out.snapshots([]*adminv1.Snapshot{snap})
			})
		}),
	}
	create.Flags().BoolVar(&wait, "wait", true, "wait until the snapshot is ready")
	show := &cobra.Command{
		Use: "show <snapshot>", Short: "Show one snapshot", Args: args("<snapshot>"),
		RunE: act(func(_ *cobra.Command, arg []string) error {
			return a.call(func(ctx context.Context, cl adminv1.AdminClient, out *printer) error {
				r, err := cl.GetSnapshot(ctx, &adminv1.GetSnapshotRequest{SnapshotId: arg[0]})
				if err != nil {
					return err
				}
				return out.snapshots([]*adminv1.Snapshot{r.Snapshot})
			})
		}),
	}
	del := &cobra.Command{
		Use: "delete <snapshot>", Short: "Delete a snapshot", Args: args("<snapshot>"),
		RunE: act(func(_ *cobra.Command, arg []string) error {
			return a.call(func(ctx context.Context, cl adminv1.AdminClient, out *printer) error {
				r, err := cl.DeleteSnapshot(ctx, &adminv1.DeleteSnapshotRequest{SnapshotId: arg[0]})
				if err != nil {
					return err
				}
				return out.msg(r, "deleted snapshot "+arg[0])
			})
		}),
	}
	list := &cobra.Command{
		Use: "list [volume]", Short: "List snapshots, of one volume or all", Args: argsRange(0, 1),
		RunE: act(func(_ *cobra.Command, arg []string) error {
			req := &adminv1.ListSnapshotsRequest{}
			if len(arg) > 0 {
				req.SourceVolumeId = arg[0]
			}
			return a.call(func(ctx context.Context, cl adminv1.AdminClient, out *printer) error {
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
			})
		}),
	}
	return groupCmd("snapshot", "Create, list, show and delete snapshots", "Snapshots are copies of a volume made in the background; create waits for the copy unless --wait=false. Restore one with: nfsd admin create <volume> <size> from-snapshot=<snapshot>.",
		"  nfsd admin snapshot create web-monday web\n  nfsd admin snapshot list web", create, show, del, list)
}

func (a *adminCLI) capacityCmd() *cobra.Command {
	return &cobra.Command{
		Use: "capacity", Short: "Backing store size, free space, space promised to limits",
		Example: "  nfsd admin capacity", Args: noArgs,
		RunE: act(func(_ *cobra.Command, _ []string) error {
			return a.call(func(ctx context.Context, cl adminv1.AdminClient, out *printer) error {
				r, err := cl.GetCapacity(ctx, &adminv1.GetCapacityRequest{})
				if err != nil {
					return err
				}
				return out.capacity(r)
			})
		}),
	}
}

func (a *adminCLI) infoCmd() *cobra.Command {
	return &cobra.Command{
		Use: "info", Short: "The server's version, address and state",
		Example: "  nfsd admin info", Args: noArgs,
		RunE: act(func(_ *cobra.Command, _ []string) error {
			return a.call(func(ctx context.Context, cl adminv1.AdminClient, out *printer) error {
				r, err := cl.GetServerInfo(ctx, &adminv1.GetServerInfoRequest{})
				if err != nil {
					return err
				}
				return out.info(r)
			})
		}),
	}
}

func (a *adminCLI) locksCmd() *cobra.Command {
	list := &cobra.Command{
		Use: "list [volume=<id>] [client=<host>]", Short: "NLM locks, queued requests and shares",
		Example: "  nfsd admin locks list\n  nfsd admin locks list volume=web client=node-a",
		RunE: act(func(_ *cobra.Command, arg []string) error {
			req := &adminv1.ListLocksRequest{}
			for _, kv := range arg {
				k, v, _ := strings.Cut(kv, "=")
				switch k {
				case "volume":
					req.VolumeId = v
				case "client":
					req.Client = v
				default:
					return usagef("%q: want volume=<id> or client=<host>", kv)
				}
			}
			return a.call(func(ctx context.Context, cl adminv1.AdminClient, out *printer) error {
				r, err := cl.ListLocks(ctx, req)
				if err != nil {
					return err
				}
				return out.locks(r.Locks)
			})
		}),
	}
	clients := &cobra.Command{
		Use: "clients", Short: "Client hosts the lock manager knows", Args: noArgs,
		RunE: act(func(_ *cobra.Command, _ []string) error {
			return a.call(func(ctx context.Context, cl adminv1.AdminClient, out *printer) error {
				r, err := cl.ListLockClients(ctx, &adminv1.ListLockClientsRequest{})
				if err != nil {
					return err
				}
				return out.lockClients(r.Clients)
			})
		}),
	}
	release := &cobra.Command{
		Use: "release <client>", Short: "Force-release a dead client's locks", Args: args("<client>"),
		Example: "  nfsd admin locks release node-a",
		RunE: act(func(_ *cobra.Command, arg []string) error {
			return a.call(func(ctx context.Context, cl adminv1.AdminClient, out *printer) error {
				r, err := cl.ReleaseClientLocks(ctx, &adminv1.ReleaseClientLocksRequest{Client: arg[0]})
				if err != nil {
					return err
				}
				return out.msg(r, fmt.Sprintf("released %d locks, queued requests and shares of %s", r.Released, arg[0]))
			})
		}),
	}
	return groupCmd("locks", "NLM locks: list them, their clients, release a dead client's", "", "  nfsd admin locks list volume=web", list, clients, release)
}

func isUnavailable(err error) bool { return status.Code(err) == codes.Unavailable }

// parseLimit reads a byte limit as typed: "-" or 0 is no limit (0 on
// the wire), anything else a size.
func parseLimit(s string) (int64, error) {
	if s == "-" {
		return 0, nil
	}
	n, err := admin.ParseSize(s)
	if err != nil {
		return 0, usagef("%v", err)
	}
	return n, nil
}

func (a *adminCLI) clientsCmd() *cobra.Command {
	return &cobra.Command{
		Use: "clients", Short: "Connected NFS clients: address, volumes, since, calls",
		Long: `List the open connections to the NFS port: the client's address, the
volumes its host mounted (MOUNT calls since nfsd started: a client that
mounted before a restart reconnects without one), when it connected and
how many calls it made since.`,
		Example: "  nfsd admin clients\n  nfsd admin clients -o json", Args: noArgs,
		RunE: act(func(_ *cobra.Command, _ []string) error {
			return a.call(func(ctx context.Context, cl adminv1.AdminClient, out *printer) error {
				r, err := cl.ListClients(ctx, &adminv1.ListClientsRequest{})
				if err != nil {
					return err
				}
				return out.clients(r.Clients)
			})
		}),
	}
}

func (a *adminCLI) deletedCmd() *cobra.Command {
	return &cobra.Command{
		Use: "deleted", Short: "Deleted volumes whose data was kept (retained or archived)",
		Long: `List the trees of volumes deleted with retain (<root>/retained/<id>) or
archive (<root>/archive/<id>-<time>), with the limits they had; "nfsd admin
restore <name>" serves one again.`,
		Example: "  nfsd admin deleted\n  nfsd admin deleted -o json", Args: noArgs,
		RunE: act(func(_ *cobra.Command, _ []string) error {
			return a.call(func(ctx context.Context, cl adminv1.AdminClient, out *printer) error {
				r, err := cl.ListReclaimed(ctx, &adminv1.ListReclaimedRequest{})
				if err != nil {
					return err
				}
				return out.reclaimed(r.Volumes)
			})
		}),
	}
}

func (a *adminCLI) restoreCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "restore <name> [<volume>]",
		Short: "Serve a retained or archived volume again",
		Long: `Serve again the kept tree <name> (as "nfsd admin deleted" lists it: retained/<dir>
or archive/<dir>) as volume <volume> (default: its id when deleted), with the
options, limits and fsid it had (clients' old handles work again) when its
metadata was kept, defaults and no limit otherwise. Its usage is counted
before the command returns.`,
		Example: "  nfsd admin restore retained/web\n  nfsd admin restore archive/web-20260102T150405.000000000Z web-old",
		Args:    argsRange(1, 2, "<name>"),
		RunE: act(func(_ *cobra.Command, arg []string) error {
			req := &adminv1.RestoreVolumeRequest{Name: arg[0]}
			if len(arg) > 1 {
				req.VolumeId = arg[1]
			}
			return a.call(func(ctx context.Context, cl adminv1.AdminClient, out *printer) error {
				r, err := cl.RestoreVolume(ctx, req)
				if err != nil {
					return err
				}
				return out.volume(r.Volume)
			})
		}),
	}
}

// showCopy prints the progress of the copy making volume id to stderr
// every 5 seconds until stop is called.
func (a *adminCLI) showCopy(ctx context.Context, cl adminv1.AdminClient, id string) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tick := time.NewTicker(5 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			r, err := cl.ListCopies(ctx, &adminv1.ListCopiesRequest{})
			if err != nil {
				continue
			}
			for _, c := range r.Copies {
				if c.Kind == "volume" && c.Id == id {
					fmt.Fprintf(a.stderr, "volume %s: copying from %s, %s\n", id, c.Source, progress(c.CopiedBytes, c.ExpectedBytes))
				}
			}
		}
	}()
	return func() { close(done); <-finished }
}

// progress says how far a copy is.
func progress(copied, expected int64) string {
	if expected <= 0 {
		return human(copied) + " copied"
	}
	return fmt.Sprintf("%s of %s (%d%%)", human(copied), human(expected), min(100, copied*100/expected))
}

func (a *adminCLI) copiesCmd() *cobra.Command {
	return &cobra.Command{
		Use: "copies", Short: "Copies in progress: snapshots being taken, volumes being cloned",
		Long: `List the copies in progress, with the bytes copied so far of those expected
(the source's usage when the copy began): snapshots being taken and volumes
being created from a snapshot or another volume.`,
		Example: "  nfsd admin copies", Args: noArgs,
		RunE: act(func(_ *cobra.Command, _ []string) error {
			return a.call(func(ctx context.Context, cl adminv1.AdminClient, out *printer) error {
				r, err := cl.ListCopies(ctx, &adminv1.ListCopiesRequest{})
				if err != nil {
					return err
				}
				return out.copies(r.Copies)
			})
		}),
	}
}
