// Package csi is the rwxnfs CSI driver: the identity, controller and
// node services (identityserver.go, controllerserver.go, nodeserver.go),
// kubelet plugin registration without a sidecar (registration.go) and a
// /healthz endpoint. The controller reaches nfsd only through its admin
// API; the node mounts volumes with the kernel's NFSv3 client.
package csi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// DriverName is the CSI driver's name (the StorageClass provisioner).
const DriverName = "nfs.rwxnfs.io"

// Mode says which CSI services a process serves.
type Mode string

// Modes.
const (
	ModeController Mode = "controller"
	ModeNode       Mode = "node"
	ModeAll        Mode = "all"
)

// NFSD is one nfsd the controller manages volumes on.
type NFSD struct {
	Name   string // in volume and snapshot IDs: keep it stable
	Admin  string // admin API: "unix:/path.sock" or "host:port"
	Server string // NFS address nodes mount from
}

// ParseNFSD reads "name=<name>,admin=<addr>,server=<addr>".
func ParseNFSD(s string) (NFSD, error) {
	var n NFSD
	for _, kv := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(kv), "=")
		if !ok {
			return n, fmt.Errorf("--nfsd %q: %q is not key=value (want name=<name>,admin=<address>,server=<address>)", s, kv)
		}
		switch k {
		case "name":
			n.Name = v
		case "admin":
			n.Admin = v
		case "server":
			n.Server = v
		default:
			return n, fmt.Errorf("--nfsd %q: unknown key %q (want name, admin, server)", s, k)
		}
	}
	if err := checkNFSDName(n.Name); err != nil {
		return n, fmt.Errorf("--nfsd %q: %v", s, err)
	}
	if n.Admin == "" || n.Server == "" {
		return n, fmt.Errorf("--nfsd %q: admin= and server= are required", s)
	}
	if strings.ContainsAny(n.Server, "/ ") {
		return n, fmt.Errorf("--nfsd %q: server=%q: want a host name or address", s, n.Server)
	}
	return n, nil
}

// Config configures a driver process.
type Config struct {
	Mode     Mode
	Endpoint string // "unix:///csi/csi.sock", "unix:/path", or "tcp://host:port"
	Version  string
	Log      *slog.Logger

	// Controller.
	NFSDs []NFSD
	// AdminTokenFile holds the admin API's bearer token; it is re-read
	// when it changes.
	AdminTokenFile               string
	AdminCA, AdminCert, AdminKey string // optional TLS to the admin API
	// DefaultVolumeSize is the capacity of a volume requested without a
	// capacity range (volumes always get a byte limit).
	DefaultVolumeSize int64

	// Node.
	NodeID     string
	KubeletDir string
	// Register serves kubelet's plugin registration API on
	// <KubeletDir>/plugins_registry/<driver>-reg.sock, announcing
	// RegistrationPath (the CSI socket as kubelet sees it).
	Register         bool
	RegistrationPath string
	// MountTimeout bounds one mount; a mount that takes longer is
	// abandoned (DEADLINE_EXCEEDED) and never holds up other volumes.
	MountTimeout time.Duration

	// HealthzListen serves GET /healthz (runs Probe); "" for none.
	HealthzListen string
}

// Driver is a running csi-nfs.
type Driver struct {
	cfg  Config
	log  *slog.Logger
	ids  *identityServer
	cs   *controllerServer
	ns   *nodeServer
	srv  *grpc.Server
	lis  net.Listener
	reg  *registration
	http *http.Server
	hl   net.Listener
	wg   sync.WaitGroup
}

// Start checks cfg, connects what it needs and serves.
func Start(cfg Config) (d *Driver, err error) {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Version == "" {
		cfg.Version = "unknown"
	}
	d = &Driver{cfg: cfg, log: cfg.Log}
	built := d // "return nil, err" clears d before this runs
	defer func() {
		if err != nil {
			built.Stop()
		}
	}()
	switch cfg.Mode {
	case ModeController, ModeNode, ModeAll:
	default:
		return nil, fmt.Errorf("--mode %q: want controller, node or all", cfg.Mode)
	}
	if cfg.Mode != ModeNode {
		if d.cs, err = newControllerServer(cfg); err != nil {
			return nil, err
		}
	}
	if cfg.Mode != ModeController {
		if d.ns, err = newNodeServer(cfg); err != nil {
			return nil, err
		}
	}
	d.ids = &identityServer{name: DriverName, version: cfg.Version, cs: d.cs, ns: d.ns}
	if d.lis, err = listen(cfg.Endpoint); err != nil {
		return nil, err
	}
	d.srv = grpc.NewServer(grpc.UnaryInterceptor(logCalls(cfg.Log)))
	csi.RegisterIdentityServer(d.srv, d.ids)
	if d.cs != nil {
		csi.RegisterControllerServer(d.srv, d.cs)
	}
	if d.ns != nil {
		csi.RegisterNodeServer(d.srv, d.ns)
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		if err := d.srv.Serve(d.lis); err != nil {
			d.log.Error("CSI endpoint stopped", "err", err)
		}
	}()
	if cfg.Register {
		if d.ns == nil {
			return nil, errors.New("--register needs --mode node or all")
		}
		if d.reg, err = startRegistration(cfg, d.log); err != nil {
			return nil, err
		}
		d.ids.reg = d.reg
	}
	if cfg.HealthzListen != "" {
		if d.hl, err = net.Listen("tcp", cfg.HealthzListen); err != nil {
			return nil, fmt.Errorf("healthz listener: %w", err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/healthz", d.healthz)
		d.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			if err := d.http.Serve(d.hl); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.log.Error("healthz stopped", "err", err)
			}
		}()
	}
	d.log.Info("csi-nfs serving", "driver", DriverName, "version", cfg.Version, "mode", cfg.Mode, "endpoint", d.lis.Addr().String(),
		"nfsds", len(cfg.NFSDs), "node", cfg.NodeID, "register", cfg.Register, "healthz", cfg.HealthzListen)
	return d, nil
}

// listen opens the CSI endpoint. A unix socket left by an earlier run is
// removed first (the process is its only owner).
func listen(endpoint string) (net.Listener, error) {
	network, addr, err := parseEndpoint(endpoint)
	if err != nil {
		return nil, err
	}
	if network == "unix" {
		if err := os.MkdirAll(filepath.Dir(addr), 0o750); err != nil {
			return nil, err
		}
		if fi, err := os.Lstat(addr); err == nil && fi.Mode()&os.ModeSocket != 0 {
			os.Remove(addr)
		}
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		return nil, fmt.Errorf("CSI endpoint %s: %w", endpoint, err)
	}
	if network == "unix" {
		os.Chmod(addr, 0o660)
	}
	return l, nil
}

// parseEndpoint reads unix:///abs/path, unix:/abs/path, unix://rel (as
// csi-lib-utils does) or tcp://host:port.
func parseEndpoint(ep string) (network, addr string, err error) {
	switch {
	case strings.HasPrefix(ep, "unix://"):
		return "unix", strings.TrimPrefix(ep, "unix://"), nil
	case strings.HasPrefix(ep, "unix:"):
		return "unix", strings.TrimPrefix(ep, "unix:"), nil
	case strings.HasPrefix(ep, "tcp://"):
		return "tcp", strings.TrimPrefix(ep, "tcp://"), nil
	case strings.HasPrefix(ep, "/"):
		return "unix", ep, nil
	}
	return "", "", fmt.Errorf("--endpoint %q: want unix:///path/csi.sock or tcp://host:port", ep)
}

// Addr is the CSI endpoint's address.
func (d *Driver) Addr() net.Addr { return d.lis.Addr() }

// HealthzAddr is the /healthz address, or nil.
func (d *Driver) HealthzAddr() net.Addr {
	if d.hl == nil {
		return nil
	}
	return d.hl.Addr()
}

// Stop stops serving: calls in flight get a few seconds to finish.
func (d *Driver) Stop() {
	if d.reg != nil {
		d.reg.stop()
	}
	if d.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		d.http.Shutdown(ctx)
		cancel()
	}
	if d.srv != nil {
		done := make(chan struct{})
		go func() { d.srv.GracefulStop(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			d.srv.Stop()
		}
	}
	d.wg.Wait()
	if d.cs != nil {
		d.cs.close()
	}
	if d.lis != nil && d.lis.Addr().Network() == "unix" {
		os.Remove(d.lis.Addr().String())
	}
}

// healthz answers 200 when Probe says ready, 503 with the reason if not.
func (d *Driver) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
	defer cancel()
	ready, why := d.ids.ready(ctx)
	if !ready {
		http.Error(w, "not ready: "+why, http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

// ctxKey carries a call's logger.
type ctxKey struct{}

// logFrom is the logger of a call (with its method and volume), or the
// fallback.
func logFrom(ctx context.Context) *slog.Logger {
	if l, ok := ctx.Value(ctxKey{}).(*slog.Logger); ok {
		return l
	}
	return slog.Default()
}

// logCalls gives every call a logger that names its CSI method and the
// volume (or snapshot) it is about, so every line a call logs says both,
// and logs each call's outcome. Requests are never logged whole: they can
// carry secrets.
func logCalls(base *slog.Logger) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		method := info.FullMethod[strings.LastIndex(info.FullMethod, "/")+1:]
		attrs := []any{"method", method}
		if v := volumeOf(req); v != "" {
			attrs = append(attrs, "volume", v)
		}
		if s := snapshotOf(req); s != "" {
			attrs = append(attrs, "snapshot", s)
		}
		log := base.With(attrs...)
		ctx = context.WithValue(ctx, ctxKey{}, log)
		start := time.Now()
		resp, err := h(ctx, req)
		took := time.Since(start).Round(time.Microsecond)
		switch st := status.Convert(err); {
		case err == nil:
			lvl := slog.LevelInfo
			if isQuiet(method) {
				lvl = slog.LevelDebug
			}
			log.Log(ctx, lvl, "call done", "took", took)
		case st.Code() == codes.Unimplemented, st.Code() == codes.NotFound, st.Code() == codes.AlreadyExists, st.Code() == codes.InvalidArgument:
			log.Info("call refused", "code", st.Code().String(), "err", st.Message(), "took", took)
		default:
			log.Warn("call failed", "code", st.Code().String(), "err", st.Message(), "took", took)
		}
		return resp, err
	}
}

// isQuiet names the calls COs make every few seconds.
func isQuiet(method string) bool {
	switch method {
	case "Probe", "GetPluginInfo", "GetPluginCapabilities", "NodeGetCapabilities", "ControllerGetCapabilities", "NodeGetVolumeStats", "GetCapacity", "NodeGetInfo":
		return true
	}
	return false
}

func volumeOf(req any) string {
	switch r := req.(type) {
	case *csi.CreateVolumeRequest:
		return r.GetName()
	case *csi.CreateSnapshotRequest:
		return r.GetSourceVolumeId()
	case interface{ GetVolumeId() string }:
		return r.GetVolumeId()
	}
	return ""
}

func snapshotOf(req any) string {
	switch r := req.(type) {
	case *csi.CreateSnapshotRequest:
		return r.GetName()
	case interface{ GetSnapshotId() string }:
		return r.GetSnapshotId()
	}
	return ""
}
