package kubenode

// initScript is PID 1 on a node. Parameters come from the kernel command
// line (kn.*, see VM.args); files from the host come from the read-only
// 9p share at /share: images/*.tar and nodes/<name>/kubeconfig (the
// kubelet's credentials, certificates inline).
//
// Kernel messages and every daemon's output go to ttyS1 (a log file on
// the host); ttyS0 carries only the command protocol, so nothing
// interleaves with a reply. Progress lines start with "KN ".
const initScript = `#!/usr/bin/busybox sh
# First, move from the initramfs to a tmpfs root: runc must pivot_root
# out of the node's root, which the initramfs cannot (its NoPivotRoot
# mode unmounts /proc under a pod with Bidirectional mounts, and that
# propagates to the node).
if [ ! -e /.tmpfs-root ]; then
  /usr/bin/busybox mkdir -p /newroot
  /usr/bin/busybox mount -t tmpfs -o mode=0755 root /newroot
  cd /
  for f in *; do [ "$f" = newroot ] || /usr/bin/busybox cp -a "$f" /newroot/; done
  /usr/bin/busybox touch /newroot/.tmpfs-root
  exec /usr/bin/busybox switch_root /newroot /init
fi
/usr/bin/busybox --install -s /usr/bin
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm; mount -t devpts devpts /dev/pts; mount -t tmpfs shm /dev/shm
mount -t tmpfs run /run; mount -t tmpfs tmp /tmp
exec </dev/null >/dev/ttyS1 2>&1
up() { echo "KN $* uptime=$(cut -d' ' -f1 /proc/uptime)"; }
up init
for m in $(cat /etc/modules.list); do insmod /lib/modules/$(uname -r)/$m || echo "KN insmod $m failed"; done
for x in $(cat /proc/cmdline); do case $x in
  kn.name=*) NAME=${x#*=};; kn.ip=*) IP=${x#*=};; kn.gw=*) GW=${x#*=};; kn.api=*) API=${x#*=};;
  kn.pods=*) PODS=${x#*=};; kn.routes=*) ROUTES=${x#*=};; kn.disk=*) DISK=${x#*=};;
  kn.labels=*) LABELS=${x#*=};; kn.taints=*) TAINTS=${x#*=};; kn.tmpfs=*) TMPFS=${x#*=};;
  kn.images=*) IMAGES=$(echo ${x#*=} | tr ',' ' ');; esac; done
up modules
hostname $NAME
printf '127.0.0.1 localhost\n%s %s\n' ${IP%/*} $NAME > /etc/hosts
: > /etc/resolv.conf
ip link set lo up; ip addr add $IP dev eth0; ip link set eth0 up
ip route add $API via $GW
# Other nodes' pod networks: routed through their node (no overlay).
for r in $(echo $ROUTES | tr ',' ' '); do ip route add ${r%@*} via ${r#*@}; done
echo 1 > /proc/sys/net/ipv4/ip_forward
# Every controller delegated, so kubelet can make pod cgroups.
mount -t cgroup2 cgroup2 /sys/fs/cgroup
for c in $(cat /sys/fs/cgroup/cgroup.controllers); do echo +$c > /sys/fs/cgroup/cgroup.subtree_control; done
mkdir -p /var/lib/containerd /var/lib/kubelet /var/log/pods /etc/containerd /etc/cni/net.d /etc/kubernetes
# State on tmpfs (the root is the initramfs); kubelet's tmpfs size is the
# node's ephemeral-storage capacity.
mount -t tmpfs -o size=${TMPFS:-8g} containerd /var/lib/containerd
mount -t tmpfs -o size=${TMPFS:-8g} kubelet /var/lib/kubelet
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=512000 share /share || echo "KN 9p mount failed"
if [ -n "$DISK" ]; then mkdir -p $DISK; mount -t ext4 /dev/vda $DISK || echo "KN disk mount failed"; fi
# kubelet checks that its directory propagates mounts (Bidirectional
# volumes of the CSI node plugin).
mount --make-rshared /
cat > /etc/containerd/config.toml <<EOF
version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "registry.k8s.io/pause:3.10"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "/etc/cni/net.d"
EOF
cat > /etc/cni/net.d/10-bridge.conflist <<EOF
{"cniVersion": "1.0.0", "name": "pods", "plugins": [{"type": "bridge", "bridge": "cni0",
 "isGateway": true, "ipMasq": false, "hairpinMode": true,
 "ipam": {"type": "host-local", "ranges": [[{"subnet": "$PODS"}]], "routes": [{"dst": "0.0.0.0/0"}]}}]}
EOF
cp /share/nodes/$NAME/kubeconfig /etc/kubernetes/kubelet.kubeconfig
cp /share/ca.crt /etc/kubernetes/ca.crt
cat > /etc/kubernetes/kubelet.yaml <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  # The apiserver's client certificate (logs, exec) is signed by the CA.
  x509: {clientCAFile: /etc/kubernetes/ca.crt}
authorization: {mode: AlwaysAllow}
cgroupDriver: cgroupfs
failSwapOn: false
containerRuntimeEndpoint: unix:///run/containerd/containerd.sock
resolvConf: /etc/resolv.conf
# Imported images cannot be pulled again (no route out): never collect them.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: "50Mi", nodefs.available: "1%", imagefs.available: "1%"}
serializeImagePulls: false
EOF
up containerd
containerd >> /var/log/containerd.log 2>&1 &
i=0; until ctr version >/dev/null 2>&1; do i=$((i+1)); [ $i -gt 300 ] && break; sleep 0.2; done
# The sandbox image first, then kubelet registers the node while the
# other images are imported; /run/kn-imported marks the end (the harness
# waits for it before anything is scheduled here).
imp() { ctr -n k8s.io images import "$1" >/dev/null 2>>/var/log/import.log || { echo "KN import $1 failed"; echo "$1" >> /run/kn-import-failed; }; }
imp /share/images/pause.tar
up imported pause
kubelet --config=/etc/kubernetes/kubelet.yaml --kubeconfig=/etc/kubernetes/kubelet.kubeconfig \
  --node-ip=${IP%/*} --hostname-override=$NAME ${LABELS:+--node-labels=$LABELS} \
  ${TAINTS:+--register-with-taints=$TAINTS} --v=1 >> /var/log/kubelet.log 2>&1 &
up kubelet
( for f in $IMAGES; do [ $f = pause ] || imp /share/images/$f.tar; done; up imported all; touch /run/kn-imported ) &
# Daemons' logs to the host, from the start of each file.
tail -n +1 -F /var/log/containerd.log /var/log/kubelet.log &
exec </dev/ttyS0 >/dev/ttyS0 2>&1
stty -echo
echo "@@READY $NAME"
while read -r id b64; do
  [ -z "$b64" ] && continue
  echo "$b64" | base64 -d > /tmp/cmd.$id.sh
  sh /tmp/cmd.$id.sh > /tmp/out.$id 2>&1 < /dev/null
  rc=$?
  echo "@@BEGIN $id"; cat /tmp/out.$id; echo "@@END $id $rc"; rm -f /tmp/out.$id /tmp/cmd.$id.sh
done
echo "@@EXIT"
poweroff -f
`
