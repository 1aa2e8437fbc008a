package csi

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"

	"google.golang.org/grpc"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

// Kubelet finds CSI node plugins through its plugin watcher: a socket in
// <kubelet dir>/plugins_registry/ serving the pluginregistration API.
// node-driver-registrar is that socket in a sidecar; serving it here
// saves every user a container (and works where the sidecar image cannot
// be had). Kubelet calls GetInfo, then NotifyRegistrationStatus, then
// NodeGetInfo on the CSI endpoint named in the answer.

// RegistrationSocket is where the registration socket goes under a
// kubelet directory.
func RegistrationSocket(kubeletDir string) string {
	return filepath.Join(kubeletDir, "plugins_registry", DriverName+"-reg.sock")
}

// DefaultRegistrationPath is the CSI socket as kubelet sees it, by the
// usual layout.
func DefaultRegistrationPath(kubeletDir string) string {
	return filepath.Join(kubeletDir, "plugins", DriverName, "csi.sock")
}

type registration struct {
	registerapi.UnimplementedRegistrationServer
	log      *slog.Logger
	endpoint string // CSI socket path as kubelet sees it
	path     string // our registration socket
	srv      *grpc.Server
	lis      net.Listener
	done     chan struct{}

	mu         sync.Mutex
	registered bool
	lastErr    string
}

func startRegistration(cfg Config, log *slog.Logger) (*registration, error) {
	r := &registration{log: log.With("method", "registration"), endpoint: cfg.RegistrationPath, path: RegistrationSocket(cfg.KubeletDir), done: make(chan struct{})}
	if r.endpoint == "" {
		r.endpoint = DefaultRegistrationPath(cfg.KubeletDir)
	}
	if err := os.MkdirAll(filepath.Dir(r.path), 0o750); err != nil {
		return nil, fmt.Errorf("plugin registration: %w", err)
	}
	if fi, err := os.Lstat(r.path); err == nil && fi.Mode()&os.ModeSocket != 0 {
		os.Remove(r.path) // ours, from an earlier run
	}
	var err error
	if r.lis, err = net.Listen("unix", r.path); err != nil {
		return nil, fmt.Errorf("plugin registration socket: %w", err)
	}
	os.Chmod(r.path, 0o600)
	r.srv = grpc.NewServer()
	registerapi.RegisterRegistrationServer(r.srv, r)
	go func() {
		defer close(r.done)
		if err := r.srv.Serve(r.lis); err != nil {
			r.log.Error("plugin registration stopped", "err", err)
		}
	}()
	r.log.Info("serving kubelet plugin registration", "socket", r.path, "csiEndpoint", r.endpoint)
	return r, nil
}

func (r *registration) GetInfo(ctx context.Context, req *registerapi.InfoRequest) (*registerapi.PluginInfo, error) {
	r.log.Info("kubelet asks who we are")
	return &registerapi.PluginInfo{Type: registerapi.CSIPlugin, Name: DriverName, Endpoint: r.endpoint, SupportedVersions: []string{"1.0.0"}}, nil
}

func (r *registration) NotifyRegistrationStatus(ctx context.Context, st *registerapi.RegistrationStatus) (*registerapi.RegistrationStatusResponse, error) {
	r.mu.Lock()
	r.registered, r.lastErr = st.PluginRegistered, st.Error
	r.mu.Unlock()
	if st.PluginRegistered {
		r.log.Info("registered with kubelet")
	} else {
		r.log.Error("kubelet refused the registration", "err", st.Error)
	}
	return &registerapi.RegistrationStatusResponse{}, nil
}

// refused says why kubelet refused the last registration ("" if it did
// not), for Probe.
func (r *registration) refused() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.registered || r.lastErr == "" {
		return ""
	}
	return r.lastErr
}

func (r *registration) stop() {
	r.srv.Stop()
	<-r.done
	os.Remove(r.path)
}
