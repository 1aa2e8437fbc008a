package csi

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/kubernetes-csi/csi-lib-utils/connection"
	"github.com/kubernetes-csi/csi-lib-utils/metrics"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	registerapi "k8s.io/kubelet/pkg/apis/pluginregistration/v1"
)

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// dial connects to a CSI or registration socket the way the sidecars and
// kubelet do (csi-lib-utils).
func dial(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := connection.Connect(ctx, addr, metrics.NewCSIMetricsManager(DriverName), connection.OnConnectionLoss(func(context.Context) bool { return false }))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// A node plugin registers itself with kubelet: this speaks kubelet's side
// of the plugin registration API to the socket, as kubelet's plugin
// watcher does, then follows the endpoint it was given to NodeGetInfo.
func TestKubeletRegistration(t *testing.T) {
	kubelet := t.TempDir()
	csiSock := filepath.Join(t.TempDir(), "csi.sock")
	logs := &syncBuf{}
	drv, err := Start(Config{
		Mode: ModeNode, Endpoint: "unix://" + csiSock, NodeID: "node-7", KubeletDir: kubelet,
		Register: true, RegistrationPath: csiSock, Log: slog.New(slog.NewTextHandler(logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer drv.Stop()
	reg := RegistrationSocket(kubelet)
	if reg != filepath.Join(kubelet, "plugins_registry", "nfs.rwxnfs.io-reg.sock") {
		t.Fatalf("registration socket at %s", reg)
	}
	if fi, err := os.Stat(reg); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("no registration socket: %v", err)
	}
	rc := registerapi.NewRegistrationClient(dial(t, reg))
	ctx := context.Background()
	info, err := rc.GetInfo(ctx, &registerapi.InfoRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if info.Type != registerapi.CSIPlugin || info.Name != DriverName || info.Endpoint != csiSock || len(info.SupportedVersions) != 1 || info.SupportedVersions[0] != "1.0.0" {
		t.Fatalf("GetInfo: %+v", info)
	}
	if _, err := rc.NotifyRegistrationStatus(ctx, &registerapi.RegistrationStatus{PluginRegistered: true}); err != nil {
		t.Fatal(err)
	}
	ni, err := csi.NewNodeClient(dial(t, info.Endpoint)).NodeGetInfo(ctx, &csi.NodeGetInfoRequest{})
	if err != nil || ni.NodeId != "node-7" {
		t.Fatalf("NodeGetInfo through the registered endpoint: %v %v", ni, err)
	}
	if _, err := rc.NotifyRegistrationStatus(ctx, &registerapi.RegistrationStatus{PluginRegistered: false, Error: "driver name taken"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "kubelet refused the registration") || !strings.Contains(logs.String(), "driver name taken") {
		t.Fatalf("a refused registration is not logged:\n%s", logs)
	}
	if ready, why := drv.ids.ready(ctx); ready || !strings.Contains(why, "driver name taken") {
		t.Fatalf("ready after a refused registration: %v %q", ready, why)
	}
	drv.Stop()
	if _, err := os.Stat(reg); !os.IsNotExist(err) {
		t.Fatalf("registration socket left after stop: %v", err)
	}
	// The default path of the CSI socket as kubelet sees it.
	if p := DefaultRegistrationPath("/var/lib/kubelet"); p != "/var/lib/kubelet/plugins/nfs.rwxnfs.io/csi.sock" {
		t.Fatalf("default registration path %s", p)
	}
}

// Probe and /healthz follow nfsd: ready while its admin API answers, not
// ready (with the reason) once it stops. Every log line of a call names
// its method and volume; no line shows the token.
func TestProbeHealthzAndLogs(t *testing.T) {
	logs := &syncBuf{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d, adminAddr, tokenFile := startNFSD(t, slog.New(slog.NewTextHandler(io.Discard, nil)))
	drv, err := Start(Config{
		Mode: ModeController, Endpoint: "unix://" + filepath.Join(t.TempDir(), "csi.sock"), Log: log, HealthzListen: "127.0.0.1:0",
		NFSDs: []NFSD{{Name: "main", Admin: adminAddr, Server: "127.0.0.1"}}, AdminTokenFile: tokenFile,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer drv.Stop()
	conn := dial(t, "unix://"+drv.Addr().String())
	ids, cs := csi.NewIdentityClient(conn), csi.NewControllerClient(conn)
	ctx := context.Background()
	healthz := func() (int, string) {
		resp, err := http.Get("http://" + drv.HealthzAddr().String() + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if p, err := ids.Probe(ctx, &csi.ProbeRequest{}); err != nil || !p.GetReady().GetValue() {
		t.Fatalf("probe with nfsd up: %v %v", p, err)
	}
	if code, body := healthz(); code != 200 || body != "ok\n" {
		t.Fatalf("healthz with nfsd up: %d %q", code, body)
	}
	info, err := ids.GetPluginInfo(ctx, &csi.GetPluginInfoRequest{})
	if err != nil || info.Name != DriverName || info.VendorVersion == "" {
		t.Fatalf("plugin info %v %v", info, err)
	}
	vol, err := cs.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "pvc-logged", VolumeCapabilities: mountCaps()})
	if err != nil || vol.Volume.CapacityBytes != 1<<30 || vol.Volume.VolumeId != "main/pvc-logged" ||
		vol.Volume.VolumeContext["server"] != "127.0.0.1" || vol.Volume.VolumeContext["share"] != "/volumes/pvc-logged" {
		t.Fatalf("create without a capacity range: %v %v", vol, err)
	}
	if _, err := cs.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: vol.Volume.VolumeId}); err != nil {
		t.Fatal(err)
	}

	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	d.Shutdown(sctx)
	cancel()
	if p, err := ids.Probe(ctx, &csi.ProbeRequest{}); err != nil || p.GetReady().GetValue() {
		t.Fatalf("probe with nfsd down: %v %v", p, err)
	}
	if code, body := healthz(); code != 503 || !strings.Contains(body, "nfsd main") || !strings.Contains(body, "unreachable") {
		t.Fatalf("healthz with nfsd down: %d %q", code, body)
	}
	_, err = cs.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "pvc-down", VolumeCapabilities: mountCaps()})
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "nfsd main") {
		t.Fatalf("create with nfsd down: %v, want Unavailable naming the nfsd", err)
	}
	out := logs.String()
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if strings.Contains(line, "msg=call") && (!strings.Contains(line, "method=") || (strings.Contains(line, "Volume") && !strings.Contains(line, "volume="))) {
			t.Errorf("a call's log line without its method or volume: %s", line)
		}
	}
	for _, want := range []string{"method=CreateVolume volume=pvc-logged", "method=DeleteVolume volume=main/pvc-logged", "method=CreateVolume volume=pvc-down"} {
		if !strings.Contains(out, want) {
			t.Errorf("no log line with %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, testToken) {
		t.Fatalf("the admin token is in the log:\n%s", out)
	}
}

func mountCaps() []*csi.VolumeCapability {
	return []*csi.VolumeCapability{{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_MULTI_NODE_MULTI_WRITER},
	}}
}

// A volume whose directory an operator removed on the server reports an
// abnormal condition; GetCapacity is what nfsd can still promise.
func TestVolumeConditionAndCapacity(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	d, adminAddr, tokenFile := startNFSD(t, quiet)
	drv := startDriver(t, quiet, adminAddr, tokenFile)
	cs := csi.NewControllerClient(dial(t, "unix://"+drv.Addr().String()))
	ctx := context.Background()
	capBefore, err := cs.GetCapacity(ctx, &csi.GetCapacityRequest{})
	if err != nil || capBefore.AvailableCapacity <= 0 || capBefore.MaximumVolumeSize.GetValue() != capBefore.AvailableCapacity {
		t.Fatalf("capacity: %v %v", capBefore, err)
	}
	vol, err := cs.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: "gone", VolumeCapabilities: mountCaps(), CapacityRange: &csi.CapacityRange{RequiredBytes: 1 << 30}})
	if err != nil {
		t.Fatal(err)
	}
	capAfter, err := cs.GetCapacity(ctx, &csi.GetCapacityRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// The new volume's limit is promised: 1 GiB less is available (the
	// disk is shared with other work, so its free space only roughly
	// stays put; nfsd's promised figure is exact).
	if d := capBefore.AvailableCapacity - capAfter.AvailableCapacity; d < 1<<30-(64<<20) {
		t.Fatalf("available went from %d to %d after promising 1 GiB", capBefore.AvailableCapacity, capAfter.AvailableCapacity)
	}
	if c, _ := d.Table.Capacity(); c.Promised != 1<<30 || c.Limited != 1 {
		t.Fatalf("nfsd's capacity: %+v", c)
	}
	cond := func() *csi.VolumeCondition {
		g, err := cs.ControllerGetVolume(ctx, &csi.ControllerGetVolumeRequest{VolumeId: vol.Volume.VolumeId})
		if err != nil {
			t.Fatal(err)
		}
		return g.Status.VolumeCondition
	}
	if c := cond(); c.Abnormal {
		t.Fatalf("a fresh volume is abnormal: %v", c)
	}
	v, _ := d.Table.Volume("gone")
	if err := os.Rename(v.Dir(), v.Dir()+".moved"); err != nil {
		t.Fatal(err)
	}
	if c := cond(); !c.Abnormal || !strings.Contains(c.Message, "missing on nfsd main") {
		t.Fatalf("a volume whose directory is gone: %v", c)
	}
	l, err := cs.ListVolumes(ctx, &csi.ListVolumesRequest{})
	if err != nil || len(l.Entries) != 1 || !l.Entries[0].Status.VolumeCondition.Abnormal {
		t.Fatalf("list: %v %v", l, err)
	}
	_, err = cs.ControllerGetVolume(ctx, &csi.ControllerGetVolumeRequest{VolumeId: "main/never-made"})
	if status.Code(err) != codes.NotFound {
		t.Fatalf("unknown volume: %v", err)
	}
}
