package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rwxnfs/rwxnfs/pkg/admin"
	"github.com/rwxnfs/rwxnfs/pkg/nfsd"
	"github.com/rwxnfs/rwxnfs/pkg/rpcserver"
)

// serveOptions are the flags of "nfsd serve".
type serveOptions struct {
	root, listen, portmap, metrics string
	init                           bool
	pprof, noLocking, noDefault    bool
	lockGrace, drain, idle         time.Duration
	logLevel, logFormat            string
	adminListen, adminToken        string
	adminCert, adminKey, adminCA   string
	perClient, maxConns            int
}

func defaultServeOptions() *serveOptions {
	return &serveOptions{}
}

func addServeFlags(fs *pflag.FlagSet, o *serveOptions) {
	fs.StringVar(&o.root, "root", "./nfsd-data", "directory holding volumes/ and state/; it must exist unless --init")
	fs.BoolVar(&o.init, "init", false, "create --root (and its parents) if it does not exist: a new, empty tree")
	fs.StringVar(&o.listen, "listen", ":2049", "NFS, MOUNT, NLM and NSM address (host:port)")
	fs.StringVar(&o.portmap, "portmap-listen", ":111", `portmapper addresses, comma-separated host:port (TCP and UDP; it must not face untrusted networks); "off" to serve none`)
	fs.StringVar(&o.metrics, "metrics-listen", "127.0.0.1:9102", `address of /metrics and /healthz; "off" to serve none`)
	fs.BoolVar(&o.pprof, "pprof", false, "serve /debug/pprof/ on --metrics-listen")
	fs.BoolVar(&o.noLocking, "no-locking", false, "serve no NLM/NSM (clients must then mount with -o nolock)")
	fs.DurationVar(&o.lockGrace, "lock-grace", 15*time.Second, "after a restart, how long only lock reclaims are granted (ends early once every client has reclaimed)")
	fs.BoolVar(&o.noDefault, "no-default-volume", false, `do not create the volume "default" on a first start`)
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.logFormat, "log-format", "text", "text or json")
	fs.StringVar(&o.adminListen, "admin-listen", "off", `admin gRPC API address: "unix:/path.sock" (e.g. `+admin.DefaultAddr+`) or "host:port"; "off" to serve none`)
	fs.StringVar(&o.adminToken, "admin-token-file", "", "file holding the admin API's bearer token (at least 16 characters; whitespace around it is ignored); default: generated on first use in --root's state/admin-token, mode 0600")
	fs.StringVar(&o.adminCert, "admin-tls-cert", "", "admin API TLS certificate (PEM)")
	fs.StringVar(&o.adminKey, "admin-tls-key", "", "admin API TLS key (PEM)")
	fs.StringVar(&o.adminCA, "admin-tls-client-ca", "", "CA (PEM) that admin clients' certificates must chain to (mTLS)")
	fs.DurationVar(&o.drain, "shutdown-timeout", 30*time.Second, "how long SIGTERM waits for calls in flight")
	fs.IntVar(&o.perClient, "max-conns-per-client", rpcserver.DefaultLimits.PerClientConns, "open connections allowed from one client address, at least 1 (raise it for many clients behind one NAT address)")
	fs.DurationVar(&o.idle, "idle-timeout", rpcserver.DefaultLimits.IdleTimeout, "close NFS connections with nothing in flight for this long (clients reconnect on their own)")
	fs.IntVar(&o.maxConns, "max-conns", 0, "open NFS connections in all; at the cap the connection idle longest is closed for a new one (0: derived from the open file limit)")
}

func newServeCmd(stderr io.Writer) *cobra.Command {
	o := defaultServeOptions()
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run the NFS server",
		Long: `Serve every volume under --root over NFSv3: volume <id> is the directory
--root/volumes/<id>, mounted as host:/volumes/<id>. Server state lives in
--root/state and is never exported. A first start creates the volume
"default" (--no-default-volume: none).

--root must exist (a typo must not start an empty server); --init creates
it. The admin API (volumes, quotas, snapshots, locks) is off until
--admin-listen is given: with no --admin-token-file a token is generated
in --root/state/admin-token (0600) and its path logged; "nfsd admin" finds
both by default. SIGTERM drains calls in flight and exits 0.`,
		Example: `  # a new tree on loopback, with the admin API on its default socket
  nfsd serve --init --root ./nfsd-data --listen 127.0.0.1:2049 --portmap-listen 127.0.0.1:111 \
      --admin-listen ` + admin.DefaultAddr + `
  # an existing tree on every address, JSON logs
  nfsd serve --root /srv/rwxnfs --log-format json`,
		Args: noArgs,
		RunE: act(func(cmd *cobra.Command, args []string) error { return serve(cmd, o, stderr) }),
	}
	addServeFlags(c.Flags(), o)
	return c
}

// config checks the flags and turns them into the daemon's configuration
// and logger; every error is a usage error naming the flag.
func (o *serveOptions) config(stderr io.Writer) (nfsd.Config, *slog.Logger, error) {
	var cfg nfsd.Config
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return cfg, nil, usagef("--log-level %q: want debug, info, warn or error", o.logLevel)
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch o.logFormat {
	case "text":
		h = slog.NewTextHandler(stderr, opts)
	case "json":
		h = slog.NewJSONHandler(stderr, opts)
	default:
		return cfg, nil, usagef("--log-format %q: want text or json", o.logFormat)
	}
	if strings.TrimSpace(o.root) == "" {
		return cfg, nil, usagef(`--root is empty: give the directory holding volumes/ and state/`)
	}
	if err := checkAddr("--listen", o.listen, false); err != nil {
		return cfg, nil, err
	}
	for _, a := range strings.Split(o.portmap, ",") {
		if err := checkAddr("--portmap-listen", strings.TrimSpace(a), true); err != nil {
			return cfg, nil, err
		}
	}
	if err := checkAddr("--metrics-listen", o.metrics, true); err != nil {
		return cfg, nil, err
	}
	adminListen := off(o.adminListen)
	if p, ok := strings.CutPrefix(adminListen, "unix:"); ok {
		if p == "" || !filepath.IsAbs(p) {
			return cfg, nil, usagef("--admin-listen %q: want unix:/absolute/path.sock", o.adminListen)
		}
	} else if adminListen != "" {
		if err := checkAddr("--admin-listen", o.adminListen, true); err != nil {
			return cfg, nil, err
		}
	}
	if o.perClient < 1 {
		return cfg, nil, usagef("--max-conns-per-client %d: want at least 1", o.perClient)
	}
	if o.maxConns < 0 {
		return cfg, nil, usagef("--max-conns %d: want 0 (derived from the open file limit) or more", o.maxConns)
	}
	if o.idle <= 0 {
		return cfg, nil, usagef("--idle-timeout %v: want more than 0", o.idle)
	}
	if o.lockGrace < 0 {
		return cfg, nil, usagef("--lock-grace %v: want 0 or more", o.lockGrace)
	}
	if o.drain <= 0 {
		return cfg, nil, usagef("--shutdown-timeout %v: want more than 0", o.drain)
	}
	if (o.adminCert == "") != (o.adminKey == "") {
		return cfg, nil, usagef("--admin-tls-cert and --admin-tls-key go together")
	}
	log := slog.New(h)
	cfg = nfsd.Config{
		Root:          o.root,
		Listen:        o.listen,
		PortmapListen: off(o.portmap),
		MetricsListen: off(o.metrics),
		Pprof:         o.pprof,
		NoLocking:     o.noLocking,
		LockGrace:     o.lockGrace,
		Limits:        rpcserver.Limits{PerClientConns: o.perClient, MaxConns: o.maxConns, IdleTimeout: o.idle},
		Log:           log,
		Admin: admin.Config{
			Listen: adminListen, TokenFile: o.adminToken,
			TLSCert: o.adminCert, TLSKey: o.adminKey, ClientCA: o.adminCA,
		},
	}
	if !o.noDefault {
		cfg.DefaultVolume = "default"
	}
	return cfg, log, nil
}

// checkAddr refuses what net.Listen would quietly turn into a random
// port or every address: an empty value, a missing port.
func checkAddr(flag, v string, canBeOff bool) error {
	if canBeOff && strings.EqualFold(v, "off") {
		return nil
	}
	want := "host:port, e.g. 127.0.0.1:2049 or :2049"
	if canBeOff {
		want += `, or "off"`
	}
	if v == "" {
		return usagef("%s is empty: want %s", flag, want)
	}
	_, port, err := net.SplitHostPort(v)
	if err != nil || port == "" {
		return usagef("%s %q: want %s", flag, v, want)
	}
	if _, err := net.LookupPort("tcp", port); err != nil {
		return usagef("%s %q: bad port %q", flag, v, port)
	}
	return nil
}

// checkRoot refuses a --root that does not exist, unless --init: a typo
// would otherwise serve a fresh, empty tree to every client.
func (o *serveOptions) checkRoot() error {
	fi, err := os.Stat(o.root)
	switch {
	case err == nil && !fi.IsDir():
		return fmt.Errorf("--root %s is not a directory", o.root)
	case err == nil:
		return nil
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("--root: %w", err)
	case !o.init:
		return fmt.Errorf("--root %s does not exist: check the path, or pass --init to create a new, empty tree there", o.root)
	}
	if err := os.MkdirAll(o.root, 0o755); err != nil {
		return fmt.Errorf("--init: %w", err)
	}
	return nil
}

// serve runs the daemon until SIGTERM or SIGINT.
func serve(cmd *cobra.Command, o *serveOptions, stderr io.Writer) error {
	cfg, log, err := o.config(stderr)
	if err != nil {
		return err
	}
	// The default root is no typo: create it, as before --init existed.
	if !cmd.Flags().Changed("root") {
		o.init = true
	}
	if err := o.checkRoot(); err != nil {
		return err
	}
	slog.SetDefault(log)
	d, err := nfsd.Start(cfg)
	if err != nil {
		return fmt.Errorf("failed to start: %w", err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	s := <-sig
	log.Info("shutting down: draining calls in flight", "signal", s.String(), "timeout", o.drain)
	ctx, cancel := context.WithTimeout(context.Background(), o.drain)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

func off(s string) string {
	if strings.EqualFold(s, "off") {
		return ""
	}
	return s
}
