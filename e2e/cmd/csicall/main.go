// Command csicall makes one CSI call, as kubelet or a sidecar would, and
// prints its outcome on one line for the e2e harness to parse: "OK
// <json of the response>" or "ERROR <gRPC code>: <message>". It runs on
// the e2e nodes (built static) against csi-nfs's unix socket, and against
// the controller over TCP.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/container-storage-interface/spec/lib/go/csi"
	"github.com/kubernetes-csi/csi-lib-utils/connection"
	"github.com/kubernetes-csi/csi-lib-utils/metrics"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
)

func main() {
	fs := flag.NewFlagSet("csicall", flag.ExitOnError)
	endpoint := fs.String("endpoint", "unix:///run/csi/csi.sock", "CSI endpoint (unix:///path or host:port)")
	timeout := fs.Duration("timeout", 5*time.Minute, "call timeout")
	volume := fs.String("volume", "", "volume ID")
	name := fs.String("name", "", "create: volume name")
	size := fs.Int64("size", 64<<20, "create: required bytes")
	params := fs.String("params", "", "create: StorageClass parameters k=v,k=v")
	target := fs.String("target", "", "publish, unpublish, stats: target path")
	vctx := fs.String("context", "", "publish: volume context k=v,k=v")
	flags := fs.String("flags", "", "publish: mount flags, comma-separated")
	mode := fs.String("mode", "MULTI_NODE_MULTI_WRITER", "publish: access mode")
	readOnly := fs.Bool("readonly", false, "publish: read-only")
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: csicall create|delete|publish|unpublish|stats|probe [flags]")
		os.Exit(2)
	}
	call := os.Args[1]
	fs.Parse(os.Args[2:])

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	conn, err := connection.Connect(ctx, *endpoint, metrics.NewCSIMetricsManager("nfs.rwxnfs.io"), connection.OnConnectionLoss(func(context.Context) bool { return false }))
	if err != nil {
		fmt.Printf("ERROR Unavailable: connecting to %s: %v\n", *endpoint, err)
		os.Exit(1)
	}
	defer conn.Close()
	node, ctrl, ids := csi.NewNodeClient(conn), csi.NewControllerClient(conn), csi.NewIdentityClient(conn)
	capability := &csi.VolumeCapability{
		AccessType: &csi.VolumeCapability_Mount{Mount: &csi.VolumeCapability_MountVolume{MountFlags: list(*flags)}},
		AccessMode: &csi.VolumeCapability_AccessMode{Mode: csi.VolumeCapability_AccessMode_Mode(csi.VolumeCapability_AccessMode_Mode_value[*mode])},
	}
	var resp proto.Message
	switch call {
	case "create":
		resp, err = ctrl.CreateVolume(ctx, &csi.CreateVolumeRequest{Name: *name, Parameters: kv(*params),
			CapacityRange: &csi.CapacityRange{RequiredBytes: *size}, VolumeCapabilities: []*csi.VolumeCapability{capability}})
	case "delete":
		resp, err = ctrl.DeleteVolume(ctx, &csi.DeleteVolumeRequest{VolumeId: *volume})
	case "publish":
		resp, err = node.NodePublishVolume(ctx, &csi.NodePublishVolumeRequest{VolumeId: *volume, TargetPath: *target,
			VolumeContext: kv(*vctx), VolumeCapability: capability, Readonly: *readOnly})
	case "unpublish":
		resp, err = node.NodeUnpublishVolume(ctx, &csi.NodeUnpublishVolumeRequest{VolumeId: *volume, TargetPath: *target})
	case "stats":
		resp, err = node.NodeGetVolumeStats(ctx, &csi.NodeGetVolumeStatsRequest{VolumeId: *volume, VolumePath: *target})
	case "probe":
		resp, err = ids.Probe(ctx, &csi.ProbeRequest{})
	default:
		fmt.Fprintf(os.Stderr, "csicall: unknown call %q\n", call)
		os.Exit(2)
	}
	if err != nil {
		st := status.Convert(err)
		fmt.Printf("ERROR %s: %s\n", st.Code(), st.Message())
		os.Exit(1)
	}
	b, _ := protojson.Marshal(resp)
	fmt.Printf("OK %s\n", b)
}

func list(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

func kv(s string) map[string]string {
	m := map[string]string{}
	for _, f := range strings.Split(s, ",") {
		if k, v, ok := strings.Cut(f, "="); ok {
			m[k] = v
		}
	}
	return m
}
