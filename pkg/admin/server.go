// Package admin serves the admin gRPC API (api/admin/v1) over an
// exports.Table: volume and snapshot lifecycle, usage and limits; and the
// lock manager's locks and clients.
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"

	adminv1 "github.com/rwxnfs/rwxnfs/api/admin/v1"
	"github.com/rwxnfs/rwxnfs/pkg/exports"
)

// Config configures the admin listener.
type Config struct {
	// Listen is "unix:/path/to.sock" or a TCP "host:port".
	Listen string
	// TokenFile holds the bearer token every call must present.
	TokenFile string
	// TLS: a server certificate and key; with ClientCA, clients must
	// present a certificate it signed (mTLS). All empty: no TLS (use a
	// unix socket or loopback).
	TLSCert, TLSKey, ClientCA string
	// Info describes the serving nfsd, for GetServerInfo.
	Info Info
	// MaxConns caps the open connections (DefaultMaxConns if zero);
	// more are closed at once.
	MaxConns int
	// Clients lists the NFS clients connected now, for ListClients
	// (nil: none are listed).
	Clients func() []Client
}

// Client is one open NFS client connection.
type Client struct {
	Address string
	Since   time.Time
	Calls   uint64
	Volumes []string // what the client's host mounted
}

// Info is what GetServerInfo reports about the daemon besides its volumes.
type Info struct {
	Version string
	NFSAddr string // the NFS/MOUNT listener's address
	Locking bool
	Started time.Time
}

// Server is a running admin API.
type Server struct {
	adminv1.UnimplementedAdminServer
	t     *exports.Table
	locks LockManager // nil: nfsd serves no locking
	log   *slog.Logger
	token []byte
	info  Info
	// warnings about the configuration, logged at start and reported
	// by GetServerInfo.
	warnings []string
	// clients lists the connected NFS clients; never nil.
	clients func() []Client
	grpc    *grpc.Server
	lis     net.Listener
	done    chan struct{}
}

// Start listens and serves the admin API over t and, unless it is nil,
// the lock manager locks.
func Start(cfg Config, t *exports.Table, locks LockManager, log *slog.Logger) (*Server, error) {
	token, err := readToken(cfg.TokenFile)
	if err != nil {
		return nil, err
	}
	s := &Server{t: t, locks: locks, log: log, token: token, info: cfg.Info, clients: cfg.Clients, done: make(chan struct{})}
	if s.clients == nil {
		s.clients = func() []Client { return nil }
	}
	opts := []grpc.ServerOption{
		grpc.UnaryInterceptor(s.authenticate),
		grpc.ConnectionTimeout(handshakeTimeout),
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: idleTimeout}),
	}
	if cfg.TLSCert != "" || cfg.TLSKey != "" || cfg.ClientCA != "" {
		tc, err := tlsConfig(cfg)
		if err != nil {
			return nil, err
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(tc)))
	}
	lis, err := listen(cfg.Listen)
	if err != nil {
		return nil, err
	}
	maxConns := cfg.MaxConns
	if maxConns <= 0 {
		maxConns = DefaultMaxConns
	}
	s.lis = &limitListener{Listener: lis, max: int64(maxConns), warn: func(max, refused int64) {
		log.Warn("admin API: refusing connections over the cap", "max_conns", max, "refused_total", refused)
	}}
	s.grpc = grpc.NewServer(opts...)
	adminv1.RegisterAdminServer(s.grpc, s)
	go func() {
		defer close(s.done)
		if err := s.grpc.Serve(s.lis); err != nil {
			log.Error("admin API stopped", "err", err)
		}
	}()
	if s.lis.Addr().Network() == "tcp" && cfg.TLSCert == "" {
		// Anyone on the path sees the bearer token, and with it may
		// create, delete and read every volume.
		s.warnings = append(s.warnings, fmt.Sprintf("the admin API listens on TCP (%s) without TLS: its bearer token and every call cross the network in clear text; "+
			"give --admin-tls-cert and --admin-tls-key, or listen on a unix socket", s.lis.Addr()))
	}
	for _, w := range s.warnings {
		log.Warn("INSECURE: " + w)
	}
	log.Info("admin API serving", "listen", s.lis.Addr().String(), "tls", cfg.TLSCert != "", "mtls", cfg.ClientCA != "")
	return s, nil
}

// listen opens the admin listener: "unix:/path" (replacing a socket a
// previous run left, readable by root only) or a TCP "host:port".
func listen(addr string) (net.Listener, error) {
	network := "tcp"
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, addr = "unix", p
		// The socket's directory (/run/rwxnfs) is gone after a reboot.
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return nil, fmt.Errorf("admin socket directory: %w", err)
		}
		if err := removeStaleSocket(p); err != nil {
			return nil, err
		}
	}
	lis, err := net.Listen(network, addr)
	if err != nil {
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	if network == "unix" {
		os.Chmod(addr, 0o600)
	}
	return lis, nil
}

// removeStaleSocket removes a socket at path that a previous run left
// (listen would fail on it), but never one a live server still accepts
// on: taking over its path would cut that server's admin clients off, and
// its exit would later unlink our socket.
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&os.ModeSocket == 0 {
		return nil // nothing there, or not a socket: listen reports it
	}
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err == nil {
		c.Close()
		return fmt.Errorf("admin listener: %s is the socket of a running server (another nfsd?); stop it or choose another --admin-listen", path)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		// Neither live nor surely dead (e.g. a full backlog): keep it.
		return fmt.Errorf("admin listener: %s exists and its state is unclear: %w", path, err)
	}
	return os.Remove(path)
}

// Addr is the listener's address.
func (s *Server) Addr() net.Addr { return s.lis.Addr() }

// Stop stops serving, letting calls in flight finish until ctx ends.
func (s *Server) Stop(ctx context.Context) {
	stopped := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-ctx.Done():
		s.grpc.Stop()
	}
	<-s.done
}

// DefaultAddr is where "nfsd serve --admin-listen" is documented to
// listen and where "nfsd admin" calls by default.
const DefaultAddr = "unix:/run/rwxnfs/admin.sock"

// TokenPath is where a server over root keeps the token it generates
// when given no token file; "nfsd admin" looks there by default.
func TokenPath(root string) string { return filepath.Join(root, "state", "admin-token") }
