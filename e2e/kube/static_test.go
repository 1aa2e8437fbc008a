package kube

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// nfsdAdmin runs `nfsd admin` inside the nfsd pod with the credentials the
// chart mounts there, as docs/install.md tells admins to.
func (h *Harness) nfsdAdmin(ctx context.Context, args ...string) (string, error) {
	pod, err := h.NFSDPod(ctx)
	if err != nil {
		return "", err
	}
	cmd := append([]string{"nfsd", "admin", "--addr=" + ServerIP + ":9103",
		"--token-file=/etc/rwxnfs/token/token", "--tls-ca=/etc/rwxnfs/tls/ca.crt"}, args...)
	return h.Exec(ctx, h.Namespace, pod, "nfsd", cmd...)
}

// staticPV is a hand-written PersistentVolume for an admin-made volume:
// through the CSI driver (csi) or as a plain in-tree NFS volume.
func staticPV(name, vol string, csi bool) string {
	src := fmt.Sprintf(`  csi:
    driver: nfs.rwxnfs.io
    volumeHandle: nfsd-0/%s
    volumeAttributes: {server: %s, share: /volumes/%s}
`, vol, ServerIP, vol)
	if !csi {
		src = fmt.Sprintf(`  mountOptions: [vers=3]
  nfs: {server: %s, path: /volumes/%s}
`, ServerIP, vol)
	}
	return fmt.Sprintf(`apiVersion: v1
kind: PersistentVolume
metadata:
  name: %s
  labels: {volume: %s}
spec:
  capacity: {storage: 1Gi}
  accessModes: [ReadWriteMany]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: ""
%s`, name, name, src)
}

func staticPVC(ns, name string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: %s, namespace: %s}
spec:
  accessModes: [ReadWriteMany]
  storageClassName: ""
  selector: {matchLabels: {volume: %s}}
  resources: {requests: {storage: 1Gi}}
`, name, ns, name)
}

// TestStaticVolumes: what admins do by hand keeps working. Two volumes
// made with `nfsd admin create` in the nfsd pod; one used through a
// hand-written CSI PersistentVolume (volumeHandle nfsd-0/<id>), the other
// through a plain in-tree nfs: PersistentVolume (kubelet mounts it itself);
// each selected by a claim by label and mounted by pods on both workers:
// what one node writes the other reads. The volumes outlive their PVs
// (Retain) and are deleted by the admin afterwards.
func TestStaticVolumes(t *testing.T) {
	h := needCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	ns := testNamespace(t, h, "static")
	kinds := []struct {
		pv, vol string
		csi     bool
	}{{"static-csi", "static-csi-vol", true}, {"static-nfs", "static-nfs-vol", false}}
	for _, k := range kinds {
		out, err := h.nfsdAdmin(ctx, "create", k.vol, "1Gi", "mode=0777")
		if err != nil {
			t.Fatalf("nfsd admin create %s: %v\n%s", k.vol, err, out)
		}
		// Repeating it is harmless (admins re-run scripts).
		if out, err := h.nfsdAdmin(ctx, "create", k.vol, "1Gi", "mode=0777"); err != nil {
			t.Fatalf("nfsd admin create %s again: %v\n%s", k.vol, err, out)
		}
		vol, pv := k.vol, k.pv
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			// Claims first: a PV still bound to one is held by its
			// pv-protection finalizer until the claim goes.
			h.Kubectl(ctx, "delete", "pod", "--all", "-n", ns, "--wait=true", "--timeout=2m")
			h.Kubectl(ctx, "delete", "pvc", "--all", "-n", ns, "--wait=true", "--timeout=1m")
			h.Kubectl(ctx, "delete", "pv", pv, "--wait=true", "--timeout=1m")
			if out, err := h.nfsdAdmin(ctx, "delete", vol); err != nil {
				t.Logf("nfsd admin delete %s: %v %s", vol, err, out)
			}
		})
		if err := h.Apply(ctx, staticPV(k.pv, k.vol, k.csi)+"---\n"+staticPVC(ns, k.pv)); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range kinds {
		for i, node := range h.Workers {
			pod := fmt.Sprintf("%s-%d", k.pv, i+1)
			// Each pod writes its own file, then waits for the other
			// node's and prints it.
			other := fmt.Sprintf("from-%s", h.Workers[1-i])
			script := fmt.Sprintf("echo written on %s > /data/from-%s && "+
				"for i in $(seq 300); do [ -s /data/%s ] && break; sleep 1; done; cat /data/%s; sleep 3600", node, node, other, other)
			if err := h.Apply(ctx, podYAML(ns, pod, node, k.pv, script)); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, k := range kinds {
		for i, node := range h.Workers {
			pod := fmt.Sprintf("%s-%d", k.pv, i+1)
			if err := h.WaitPod(ctx, ns, pod, "Running", 5*time.Minute); err != nil {
				t.Fatal(err)
			}
			want := "written on " + h.Workers[1-i]
			var logs string
			deadline := time.Now().Add(3 * time.Minute)
			for time.Now().Before(deadline) {
				logs, _ = h.Logs(ctx, ns, pod, "")
				if strings.Contains(logs, want) {
					break
				}
				time.Sleep(2 * time.Second)
			}
			if !strings.Contains(logs, want) {
				t.Fatalf("%s volume: the pod on %s never read %q through its mount; its log:\n%s", k.pv, node, want, logs)
			}
			mounts, _ := h.Exec(ctx, ns, pod, "", "sh", "-c", "grep ' /data ' /proc/mounts")
			t.Logf("%s volume, pod on %s: read the other node's file; mount: %s", k.pv, node, strings.TrimSpace(mounts))
		}
		// On nfsd's disk: both files, in the admin-made volume.
		out, err := h.storageSh(ctx, "cat /srv/rwxnfs/volumes/"+k.vol+"/from-*")
		if err != nil || strings.Count(out, "written on") != 2 {
			t.Fatalf("%s: on storage-0: %q %v", k.vol, out, err)
		}
	}
}
