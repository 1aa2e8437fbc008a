// Command nfsd serves Kubernetes volumes over NFSv3: one directory per
// volume under --root, mounted as host:/volumes/<id>.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/rwxnfs/rwxnfs/pkg/admin"
	"github.com/rwxnfs/rwxnfs/pkg/nfsd"
	"github.com/rwxnfs/rwxnfs/pkg/rpcserver"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "admin" {
		os.Exit(runAdmin(os.Args[2:], os.Stdout, os.Stderr))
	}
	root := flag.String("root", "./nfsd-data", "directory holding volumes/ and state/")
	listen := flag.String("listen", ":2049", "NFS and MOUNT address (TCP)")
	portmap := flag.String("portmap-listen", ":111", `portmapper addresses, comma-separated (TCP and UDP; it must not face untrusted networks); "off" to serve none`)
	metricsAddr := flag.String("metrics-listen", "127.0.0.1:9102", `address of /metrics and /healthz; "off" to serve none`)
	pprof := flag.Bool("pprof", false, "serve /debug/pprof/ on --metrics-listen")
	noLocking := flag.Bool("no-locking", false, "serve no NLM/NSM (clients must then mount with -o nolock)")
	lockGrace := flag.Duration("lock-grace", 15*time.Second, "after a restart, how long only lock reclaims are granted (ends early once every client has reclaimed)")
	noDefault := flag.Bool("no-default-volume", false, `do not create the volume "default" on a first start`)
	logLevel := flag.String("log-level", "info", "debug, info, warn or error")
	logFormat := flag.String("log-format", "text", "text or json")
	adminListen := flag.String("admin-listen", "", `admin gRPC API address: "unix:/path.sock" or "host:port"; "" to serve none`)
	adminToken := flag.String("admin-token-file", "", "file holding the admin API's bearer token (required with --admin-listen)")
	adminCert := flag.String("admin-tls-cert", "", "admin API TLS certificate (PEM)")
	adminKey := flag.String("admin-tls-key", "", "admin API TLS key (PEM)")
	adminCA := flag.String("admin-tls-client-ca", "", "CA (PEM) that admin clients' certificates must chain to (mTLS)")
	drain := flag.Duration("shutdown-timeout", 30*time.Second, "how long SIGTERM waits for calls in flight")
	perClient := flag.Int("max-conns-per-client", rpcserver.DefaultLimits.PerClientConns, "open connections allowed from one client address (raise it for many clients behind one NAT address)")
	maxConns := flag.Int("max-conns", 0, "open NFS connections in all; at the cap the connection idle longest is closed for a new one (0: derived from the open file limit)")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "nfsd: bad --log-level: %v\n", err)
		os.Exit(2)
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(os.Stderr, opts)
	if *logFormat == "json" {
		h = slog.NewJSONHandler(os.Stderr, opts)
	}
	log := slog.New(h)
	slog.SetDefault(log)

	cfg := nfsd.Config{
		Root:          *root,
		Listen:        *listen,
		PortmapListen: off(*portmap),
		MetricsListen: off(*metricsAddr),
		Pprof:         *pprof,
		NoLocking:     *noLocking,
		LockGrace:     *lockGrace,
		Limits:        rpcserver.Limits{PerClientConns: *perClient, MaxConns: *maxConns},
		Log:           log,
		Admin: admin.Config{
			Listen: *adminListen, TokenFile: *adminToken,
			TLSCert: *adminCert, TLSKey: *adminKey, ClientCA: *adminCA,
		},
	}
	if !*noDefault {
		cfg.DefaultVolume = "default"
	}
	d, err := nfsd.Start(cfg)
	if err != nil {
		log.Error("nfsd failed to start", "err", err)
		os.Exit(1)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	s := <-sig
	log.Info("shutting down: draining calls in flight", "signal", s.String(), "timeout", *drain)
	ctx, cancel := context.WithTimeout(context.Background(), *drain)
	defer cancel()
	if err := d.Shutdown(ctx); err != nil {
		log.Error("shutdown", "err", err)
		os.Exit(1)
	}
}

func off(s string) string {
	if strings.EqualFold(s, "off") {
		return ""
	}
	return s
}
