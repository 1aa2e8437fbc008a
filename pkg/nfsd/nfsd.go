// Package nfsd assembles the daemon: the export table, the NFS and MOUNT
// programs on one listener, the portmapper on its own, and the metrics
// endpoint. cmd/nfsd is a thin flag parser over it, and tests start the
// very same daemon in-process.
package nfsd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/netutil"
	"golang.org/x/sys/unix"

	"github.com/rwxnfs/rwxnfs/internal/rootlock"
	"github.com/rwxnfs/rwxnfs/internal/version"
	"github.com/rwxnfs/rwxnfs/pkg/admin"
	"github.com/rwxnfs/rwxnfs/pkg/exports"
	"github.com/rwxnfs/rwxnfs/pkg/locking"
	"github.com/rwxnfs/rwxnfs/pkg/metrics"
	"github.com/rwxnfs/rwxnfs/pkg/nfs3"
	"github.com/rwxnfs/rwxnfs/pkg/portmap"
	"github.com/rwxnfs/rwxnfs/pkg/rpc"
	"github.com/rwxnfs/rwxnfs/pkg/rpcserver"
	"github.com/rwxnfs/rwxnfs/pkg/vfs"
	"github.com/rwxnfs/rwxnfs/pkg/volfs"
)

// Config configures a daemon.
type Config struct {
	Root   string // volumes in Root/volumes, state in Root/state
	Listen string // NFS + MOUNT, TCP
	// PortmapListen is the portmapper's addresses, comma-separated, each
	// served over TCP and UDP; "" to serve none. The portmapper answers
	// on these and (TCP only) on the NFS port, nowhere else.
	PortmapListen string
	MetricsListen string // /metrics and /healthz; "" to serve none
	Pprof         bool   // also serve /debug/pprof/ on MetricsListen
	// DefaultVolume, if set, is created on a first start with no volumes.
	DefaultVolume string
	Log           *slog.Logger
	Limits        rpcserver.Limits
	// NoReconcile skips the start-up walk that checks every volume's
	// usage against its tree (for benchmarks of start-up).
	NoReconcile bool
	// Admin configures the admin gRPC API; no Listen: not served.
	Admin admin.Config
	// NoLocking serves no NLM or NSM (clients must mount with nolock).
	NoLocking bool
	// LockGrace is the grace period after a restart during which only
	// lock reclaims are granted (default 15s; it ends early once every
	// client that held locks has reclaimed).
	LockGrace time.Duration
}

// Daemon is a running nfsd.
type Daemon struct {
	Table   *exports.Table
	FS      *volfs.FS
	Metrics *metrics.Metrics
	Portmap *portmap.Table

	log      *slog.Logger
	mux      *rpc.Mux // every program, registered once
	rpc      *rpcserver.Server
	pmap     *rpcserver.Server
	http     *http.Server
	listener net.Listener
	pmTCP    []net.Listener
	pmUDP    []net.PacketConn
	metricsL net.Listener
	wg       sync.WaitGroup
	Admin    *admin.Server // nil unless Config.Admin.Listen is set
	// Locks is the NLM/NSM lock manager; nil with Config.NoLocking.
	Locks   *locking.Service
	udp     *rpcserver.Server // NSM over UDP (statd's SM_NOTIFY) on the NFS port
	udpConn net.PacketConn
	stopBG  chan struct{}
	bgDone  chan struct{}

	lock *rootlock.Lock // held until Shutdown: one server per root

	stopOnce sync.Once
	stopErr  error
}

// Start opens the table and starts serving.
func Start(cfg Config) (d *Daemon, err error) {
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	if unix.Geteuid() != 0 {
		return nil, errors.New("nfsd must run as root: it needs CAP_DAC_READ_SEARCH for persistent file handles and CAP_SETUID/CAP_SETGID to act as each caller")
	}
	// Clients apply their own umask; the server must not apply another.
	unix.Umask(0)
	raiseFileLimit(log)
	var nodes int
	cfg.Limits, nodes = fdLimits(cfg.Limits, log)

	// Before anything under the root is read or replayed: a second
	// server must not touch the tree at all.
	lock, err := rootlock.Acquire(filepath.Join(cfg.Root, "state"))
	if err != nil {
		return nil, err
	}
	t, err := exports.Open(exports.Config{Root: cfg.Root, Log: log, MaxOpenNodes: nodes})
	if err != nil {
		lock.Release()
		return nil, err
	}
	d = &Daemon{Table: t, log: log, Metrics: metrics.New(), Portmap: &portmap.Table{}, mux: &rpc.Mux{}, lock: lock}
	d.Metrics.WatchVolumes(func() []metrics.VolumeStats {
		vs := t.Volumes()
		out := make([]metrics.VolumeStats, 0, len(vs))
		for _, v := range vs {
			u, l := v.Quota.Usage(), v.Limits()
			out = append(out, metrics.VolumeStats{ID: v.ID, UsedBytes: u.Bytes, LimitBytes: l.Bytes, UsedInodes: u.Inodes, InodeLimit: l.Inodes})
		}
		return out
	})
	built := d // "return nil, err" clears d before this runs
	defer func() {
		if err != nil {
			if built.Locks != nil {
				built.Locks.Close()
			}
			built.closeListeners()
			t.Close()
			lock.Release()
		}
	}()
	if cfg.DefaultVolume != "" && len(t.Volumes()) == 0 {
		if _, err := t.Create(cfg.DefaultVolume, exports.DefaultOptions()); err != nil {
			return nil, fmt.Errorf("creating default volume: %w", err)
		}
	}

	d.listener, err = net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("NFS listener: %w", err)
	}
	port := d.listener.Addr().(*net.TCPAddr).Port
	// One file-operation layer under every protocol.
	d.FS = volfs.New(t, log)
	if os.Getenv("RWXNFS_UNSAFE_NO_SYNC") == "1" {
		// Only the power-loss test's negative control sets this.
		d.FS.UnsafeDisableSync()
		log.Warn("RWXNFS_UNSAFE_NO_SYNC=1: acknowledged writes and namespace changes are NOT made durable; a power loss will lose them (test use only)")
	}
	nfsH := nfs3.NewHandler(d.FS, log, d.Metrics)
	mountH := &nfs3.Mount{FS: d.FS}
	d.mux.Handle(nfsH.Program())
	d.mux.Handle(mountH.Program())
	d.mux.Handle(d.Portmap.Program())
	d.Portmap.Add(
		portmap.Mapping{Prog: nfs3.Program, Vers: 3, Network: "tcp", Port: port},
		portmap.Mapping{Prog: nfs3.MountProgram, Vers: 3, Network: "tcp", Port: port},
		portmap.Mapping{Prog: nfs3.MountProgram, Vers: 2, Network: "tcp", Port: port},
		portmap.Mapping{Prog: nfs3.MountProgram, Vers: 1, Network: "tcp", Port: port},
	)
	// Every program is served on the NFS port; the portmapper too, so a
	// client given only that port can still find everything.
	d.rpc = &rpcserver.Server{Handler: d.mux, Log: log, Observer: d.Metrics, Limits: cfg.Limits}
	if err := d.startLocking(cfg, port); err != nil {
		return nil, err
	}

	if cfg.PortmapListen != "" {
		if err := d.listenPortmap(cfg.PortmapListen); err != nil {
			return nil, err
		}
		d.pmap = &rpcserver.Server{Handler: d.mux.Only(portmap.Prog), Log: log, Observer: d.Metrics, Limits: portmapLimits}
		// The portmapper lists itself, as rpcbind does: "rpcinfo -p"
		// and scripts checking for program 100000 expect it.
		pmPort := d.pmTCP[0].Addr().(*net.TCPAddr).Port
		for v := uint32(portmap.PMAPVers); v <= 4; v++ {
			d.Portmap.Add(portmap.Mapping{Prog: portmap.Prog, Vers: v, Network: "tcp", Port: pmPort},
				portmap.Mapping{Prog: portmap.Prog, Vers: v, Network: "udp", Port: pmPort})
		}
	}
	if cfg.MetricsListen != "" {
		d.metricsL, err = net.Listen("tcp", cfg.MetricsListen)
		if err != nil {
			return nil, fmt.Errorf("metrics listener: %w", err)
		}
		// Its connections come out of the descriptors' fixed reserve
		// (fds.go): beyond this many, more wait in the listen backlog.
		d.metricsL = netutil.LimitListener(d.metricsL, maxMetricsConns)
		d.http = &http.Server{Handler: d.Metrics.Handler(func() error { return nil }, cfg.Pprof)}
	}

	if cfg.Admin.Listen != "" {
		var locks admin.LockManager // a nil *locking.Service must stay a nil interface
		if d.Locks != nil {
			locks = d.Locks
		}
		acfg := cfg.Admin
		if acfg.TokenFile == "" {
			// Two steps to a usable API: --admin-listen, then "nfsd
			// admin", which looks for the token in the same place.
			acfg.TokenFile = admin.TokenPath(cfg.Root)
			created, err := admin.EnsureToken(acfg.TokenFile)
			if err != nil {
				return nil, err
			}
			log.Info("admin API token", "file", acfg.TokenFile, "generated", created,
				"try", "nfsd admin --addr "+acfg.Listen+" --root "+cfg.Root+" list")
		}
		acfg.Info = admin.Info{Version: version.String(), NFSAddr: d.listener.Addr().String(), Locking: d.Locks != nil, Started: time.Now()}
		acfg.Clients = func() []admin.Client { return clients(d.rpc, mountH) }
		d.Admin, err = admin.Start(acfg, t, locks, log)
		if err != nil {
			return nil, err
		}
	}
	d.registerLimitMetrics()
	d.goServe("nfs", func() error { return d.rpc.Serve(d.listener) })
	if d.udp != nil {
		d.goServe("nsm/udp", func() error { return d.udp.ServeUDP(d.udpConn) })
		// Told of our restart, clients reclaim their locks at once.
		d.Locks.Start()
	}
	for _, l := range d.pmTCP {
		d.goServe("portmap/tcp", func() error { return d.pmap.Serve(l) })
	}
	for _, pc := range d.pmUDP {
		d.goServe("portmap/udp", func() error { return d.pmap.ServeUDP(pc) })
	}
	if d.http != nil {
		d.goServe("metrics", func() error { return d.http.Serve(d.metricsL) })
	}
	// Usage is checked against every tree in the background while the
	// volumes are served; until a volume's walk ends its saved usage plus
	// live changes is enforced.
	d.stopBG, d.bgDone = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(d.bgDone)
		if !cfg.NoReconcile {
			t.ReconcileAll(2, d.stopBG)
		}
	}()
	// The lock file names this server to one refused on the same root.
	for _, a := range [][2]string{{"nfs", d.listener.Addr().String()}, {"portmap", addrsOf(d.pmTCP)}, {"metrics", addrOf(d.metricsL)}} {
		if a[1] != "off" {
			lock.Record(a[0], a[1])
		}
	}
	if d.Admin != nil {
		lock.Record("admin", cfg.Admin.Listen)
	}
	log.Info("nfsd serving", "version", version.String(), "root", cfg.Root, "nfs", d.listener.Addr().String(), "portmap", addrsOf(d.pmTCP), "metrics", addrOf(d.metricsL), "volumes", len(t.Volumes()))
	return d, nil
}

// startLocking sets up NLM v4 and NSM on the NFS port: over TCP for the
// kernel's lockd, and NSM also over UDP, which statd's SM_NOTIFY uses.
// Locks are keyed by the stable file handles, so they survive renames;
// they go with their volume when it is deleted.
func (d *Daemon) startLocking(cfg Config, port int) error {
	if cfg.NoLocking {
		return nil
	}
	t := d.Table
	// A lock request passes the same checks as any other call on the
	// handle: it must name a file, on a volume this client may use.
	files := locking.FilesFunc(func(fh []byte, client netip.Addr) (string, error) {
		vol, err := d.FS.Volume(context.Background(), vfs.Caller{Addr: client}, fh)
		switch vfs.Code(err) {
		case 0:
			return vol, nil
		case vfs.ErrStale, vfs.ErrBadHandle:
			return "", fmt.Errorf("%w: %v", locking.ErrStale, err)
		}
		return "", err
	})
	svc, err := locking.New(locking.Config{
		Files:    files,
		StateDir: filepath.Join(cfg.Root, "state", "nsm"),
		Grace:    cfg.LockGrace,
		Log:      d.log,
	})
	if err != nil {
		return fmt.Errorf("lock manager: %w", err)
	}
	d.Locks = svc
	t.OnVolumeGone(func(id string) {
		if n := svc.DropVolume(id); n > 0 {
			d.log.Info("dropped the locks of a removed volume", "volume", id, "locks", n)
		}
	})
	d.mux.Handle(svc.NLMProgram())
	d.mux.Handle(svc.NSMProgram())
	d.udpConn, err = net.ListenPacket("udp", d.listener.Addr().String())
	if err != nil {
		svc.Close()
		return fmt.Errorf("NSM UDP listener: %w", err)
	}
	// Over UDP only the status monitor (statd's SM_NOTIFY) answers: the
	// portmapper answers over UDP only on the addresses it is given,
	// where its replies are rate-limited like these.
	d.udp = &rpcserver.Server{Handler: d.mux.Only(locking.NSMProg), Log: d.log, Observer: d.Metrics}
	d.Portmap.Add(
		portmap.Mapping{Prog: locking.NLMProg, Vers: locking.NLMVers, Network: "tcp", Port: port},
		portmap.Mapping{Prog: locking.NSMProg, Vers: locking.NSMVers, Network: "tcp", Port: port},
		portmap.Mapping{Prog: locking.NSMProg, Vers: locking.NSMVers, Network: "udp", Port: port},
	)
	return nil
}

// maxMetricsConns bounds the metrics endpoint's open connections.
const maxMetricsConns = 32

// portmapLimits bound the portmapper's own TCP server: its calls are
// small and brief, and its connections come out of the descriptors' fixed
// reserve (fds.go), not the NFS connections' share.
var portmapLimits = rpcserver.Limits{MaxRecord: 8 << 10, PerConnInflight: 4, Inflight: 16, InflightBytes: 128 << 10, PerClientConns: 4, MaxConns: 64, RecordTimeout: 10 * time.Second}

// listenPortmap opens TCP and UDP on each of the comma-separated
// addresses. A wildcard address gets a warning: the portmapper lists what
// the server serves and answers UDP from anyone, so it belongs on the
// network the clients are on, not one facing untrusted hosts.
func (d *Daemon) listenPortmap(addrs string) error {
	for _, a := range strings.Split(addrs, ",") {
		a = strings.TrimSpace(a)
		l, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("portmapper listener %s (is rpcbind running? stop it or pass --portmap-listen): %w", a, err)
		}
		d.pmTCP = append(d.pmTCP, l)
		pc, err := net.ListenPacket("udp", l.Addr().String())
		if err != nil {
			return fmt.Errorf("portmapper UDP listener %s: %w", a, err)
		}
		d.pmUDP = append(d.pmUDP, pc)
		if ip := l.Addr().(*net.TCPAddr).IP; ip.IsUnspecified() {
			d.log.Warn("the portmapper listens on every address; it must not face untrusted networks (give --portmap-listen the clients' side only)", "addr", l.Addr().String())
		}
	}
	return nil
}

func addrsOf(ls []net.Listener) string {
	if len(ls) == 0 {
		return "off"
	}
	var out []string
	for _, l := range ls {
		out = append(out, l.Addr().String())
	}
	return strings.Join(out, ",")
}

func addrOf(l net.Listener) string {
	if l == nil {
		return "off"
	}
	return l.Addr().String()
}

func (d *Daemon) goServe(what string, serve func() error) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := serve(); err != nil && !errors.Is(err, rpcserver.ErrServerClosed) && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("listener stopped", "what", what, "err", err)
		}
	}()
}

// Addr is the NFS/MOUNT address.
func (d *Daemon) Addr() net.Addr { return d.listener.Addr() }

// Port is the NFS/MOUNT port.
func (d *Daemon) Port() int { return d.listener.Addr().(*net.TCPAddr).Port }

// PortmapAddr is the portmapper's (first) TCP address, or nil.
func (d *Daemon) PortmapAddr() net.Addr {
	if len(d.pmTCP) == 0 {
		return nil
	}
	return d.pmTCP[0].Addr()
}

// PortmapAddrs are the portmapper's TCP addresses (UDP: the same).
func (d *Daemon) PortmapAddrs() []net.Addr {
	var out []net.Addr
	for _, l := range d.pmTCP {
		out = append(out, l.Addr())
	}
	return out
}

// MetricsAddr is the metrics address, or nil.
func (d *Daemon) MetricsAddr() net.Addr {
	if d.metricsL == nil {
		return nil
	}
	return d.metricsL.Addr()
}

// Shutdown stops accepting, lets calls in flight finish (until ctx ends),
// and releases everything. Later calls return the first call's result.
func (d *Daemon) Shutdown(ctx context.Context) error {
	d.stopOnce.Do(func() { d.stopErr = d.shutdown(ctx) })
	return d.stopErr
}

func (d *Daemon) shutdown(ctx context.Context) error {
	var errs []error
	if d.Admin != nil {
		d.Admin.Stop(ctx)
	}
	errs = append(errs, d.rpc.Shutdown(ctx))
	if d.udp != nil {
		errs = append(errs, d.udp.Shutdown(ctx))
	}
	if d.Locks != nil {
		d.Locks.Close()
	}
	if d.pmap != nil {
		errs = append(errs, d.pmap.Shutdown(ctx))
	}
	if d.http != nil {
		errs = append(errs, d.http.Shutdown(ctx))
	}
	d.wg.Wait()
	close(d.stopBG)
	select {
	case <-d.bgDone:
	case <-ctx.Done():
	}
	errs = append(errs, d.Table.Close())
	errs = append(errs, d.lock.Release())
	d.log.Info("nfsd stopped")
	return errors.Join(errs...)
}

func (d *Daemon) closeListeners() {
	for _, l := range append([]net.Listener{d.listener, d.metricsL}, d.pmTCP...) {
		if l != nil {
			l.Close()
		}
	}
	for _, c := range append([]net.PacketConn{d.udpConn}, d.pmUDP...) {
		if c != nil {
			c.Close()
		}
	}
}

// raiseFileLimit lifts the soft descriptor limit to the hard one: the
// node cache keeps up to two descriptors per recently used file.
func raiseFileLimit(log *slog.Logger) {
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &rl); err != nil {
			log.Warn("could not raise the open file limit", "err", err)
		}
	}
}

// clients joins the NFS port's open connections with the MOUNT list, by
// the client's address, for the admin API.
func clients(srv *rpcserver.Server, m *nfs3.Mount) []admin.Client {
	byHost := map[string][]string{}
	for _, e := range m.Mounts() {
		byHost[e.Host] = append(byHost[e.Host], strings.TrimPrefix(e.Dir, "/volumes/"))
	}
	var out []admin.Client
	for _, c := range srv.Conns() {
		host := ""
		if ap, ok := rpc.AddrPort(c.Remote); ok {
			host = ap.Addr().Unmap().String()
		}
		vols := slices.Clone(byHost[host])
		slices.Sort(vols)
		out = append(out, admin.Client{Address: c.Remote.String(), Since: c.Since, Calls: c.Calls, Volumes: slices.Compact(vols)})
	}
	return out
}
