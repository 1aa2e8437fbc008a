// Command csi-nfs is the rwxnfs CSI driver (nfs.rwxnfs.io): the
// controller (volumes and snapshots through nfsd's admin API), the node
// plugin (NFSv3 mounts), or both.
package main

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/rwxnfs/rwxnfs/internal/version"
	"github.com/rwxnfs/rwxnfs/pkg/admin"
	"github.com/rwxnfs/rwxnfs/pkg/csi"
)

// nfsdFlags collects repeated --nfsd values.
type nfsdFlags []csi.NFSD

func (n *nfsdFlags) String() string { return fmt.Sprint(len(*n), " nfsd") }
func (n *nfsdFlags) Set(s string) error {
	v, err := csi.ParseNFSD(s)
	if err != nil {
		return err
	}
	*n = append(*n, v)
	return nil
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("csi-nfs", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var nfsds nfsdFlags
	mode := fs.String("mode", "all", "controller, node or all")
	endpoint := fs.String("endpoint", "unix:///csi/csi.sock", "CSI endpoint: unix:///path/csi.sock or tcp://host:port")
	fs.Var(&nfsds, "nfsd", "controller: an nfsd to manage, name=<name>,admin=<unix:/path or host:port>,server=<NFS address nodes mount from> (repeatable)")
	tokenFile := fs.String("admin-token-file", "", "controller: file holding nfsd's admin API bearer token (re-read when it changes)")
	tlsCA := fs.String("admin-tls-ca", "", "controller: CA of nfsd's admin certificate (PEM): use TLS")
	tlsCert := fs.String("admin-tls-cert", "", "controller: client certificate (PEM) for the admin API's mTLS")
	tlsKey := fs.String("admin-tls-key", "", "controller: client key (PEM) for the admin API's mTLS")
	defSize := fs.String("default-volume-size", "1Gi", "controller: capacity of a volume requested without one")
	host, _ := os.Hostname()
	nodeID := fs.String("node-id", host, "node: this node's ID (the Kubernetes node name)")
	kubeletDir := fs.String("kubelet-dir", "/var/lib/kubelet", "node: kubelet's root directory")
	register := fs.Bool("register", false, "node: serve kubelet plugin registration on <kubelet-dir>/plugins_registry/"+csi.DriverName+"-reg.sock (instead of node-driver-registrar)")
	regPath := fs.String("kubelet-registration-path", "", "node: the CSI socket as kubelet sees it (default <kubelet-dir>/plugins/"+csi.DriverName+"/csi.sock)")
	mountTimeout := fs.Duration("mount-timeout", 2*time.Minute, "node: how long one mount may take before it is abandoned")
	healthz := fs.String("healthz-listen", "", `serve GET /healthz (runs Probe) on host:port; "" for none`)
	logFormat := fs.String("log-format", "text", "text or json")
	logLevel := fs.String("log-level", "info", "debug, info, warn or error")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, "csi-nfs", version.String())
		return 0
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "csi-nfs: unexpected arguments %q\n", fs.Args())
		return 2
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(stderr, "csi-nfs: --log-level: %v\n", err)
		return 2
	}
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler
	switch *logFormat {
	case "text":
		h = slog.NewTextHandler(stderr, opts)
	case "json":
		h = slog.NewJSONHandler(stderr, opts)
	default:
		fmt.Fprintf(stderr, "csi-nfs: --log-format %q: want text or json\n", *logFormat)
		return 2
	}
	log := slog.New(h)
	slog.SetDefault(log)
	size, err := admin.ParseSize(*defSize)
	if err == nil && size == 0 {
		err = fmt.Errorf("%q: want a positive size", *defSize)
	}
	if err != nil {
		fmt.Fprintf(stderr, "csi-nfs: --default-volume-size: %v\n", err)
		return 2
	}
	d, err := csi.Start(csi.Config{
		Mode: csi.Mode(*mode), Endpoint: *endpoint, Version: version.String(), Log: log,
		NFSDs: nfsds, AdminTokenFile: *tokenFile, AdminCA: *tlsCA, AdminCert: *tlsCert, AdminKey: *tlsKey,
		DefaultVolumeSize: size,
		NodeID:            *nodeID, KubeletDir: *kubeletDir, Register: *register, RegistrationPath: *regPath,
		MountTimeout: *mountTimeout, HealthzListen: *healthz,
	})
	if err != nil {
		log.Error("csi-nfs failed to start", "err", err)
		return 1
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	s := <-sig
	log.Info("shutting down", "signal", s.String())
	d.Stop()
	return 0
}
