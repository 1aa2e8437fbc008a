# Real-Linux-client test bed (included by Makefile). Needs root. The
# harness installs its own Debian packages (apt-get), downloads Debian's
# kernel and nfs-common, and caches everything under e2e/.build/.
# See e2e/README.md.

E2E_TIMEOUT ?= 30m
E2E_RUN     ?= .
E2E_RECORDS ?= 1000
E2E_GOTEST   = cd e2e && RWXNFS_E2E=1 RWXNFS_E2E_RECORDS=$(E2E_RECORDS) $(GO) test -count=1 -v

.PHONY: e2e e2e-smoke e2e-clean

# Every case (target: under 15 minutes on 2 cores).
e2e:
	$(E2E_GOTEST) -timeout $(E2E_TIMEOUT) -run '$(E2E_RUN)' .

# CI: one node mount + write/read, one smaller locked two-node run, and
# csi-sanity's node specs in a node (RWXNFS_E2E_CSI_FOCUS, set by csi.mk).
e2e-smoke: E2E_RECORDS = 200
e2e-smoke:
	$(E2E_GOTEST) -timeout 15m -run '^(TestMountPlainVers3|TestLockedAppendsFcntl|TestCSISanityNode)$$' .

e2e-clean:
	rm -rf e2e/.build

# The power-loss test alone (issue 15, docs/powerloss.md): nfsd in a VM on
# a disk with a volatile cache, power cuts at random moments, ext4 then
# xfs; the negative control (nfsd without syncs must lose acknowledged
# work); the same harness against nfs-ganesha (POWERLOSS_GANESHA=0 to skip).
POWERLOSS_ITERS   ?= 5
POWERLOSS_GANESHA ?= 1
.PHONY: e2e-powerloss
e2e-powerloss:
	cd e2e && RWXNFS_E2E=1 RWXNFS_POWERLOSS_ITERS=$(POWERLOSS_ITERS) RWXNFS_POWERLOSS_GANESHA=$(POWERLOSS_GANESHA) \
		$(GO) test -count=1 -v -timeout 90m -run '^TestPowerLoss' .

# The two-node Kubernetes cluster (issue 16, e2e/kube): control plane on the
# host, storage-0 + node-1 + node-2 as qemu VMs running containerd and
# kubelet, the chart installed with helm, pods on both workers sharing one
# RWX volume, and Kubernetes' external storage suite (TestExternalStorage,
# ~61 min of the timeout). Needs root, ~8 GB of memory; see e2e/README.md.
CLUSTER_TIMEOUT ?= 120m
CLUSTER_RUN     ?= .
.PHONY: e2e-cluster
e2e-cluster: images
	$(GO) run ./e2e/cmd/toolchain cluster node
	cd e2e/kube && RWXNFS_E2E_CLUSTER=1 $(GO) test -count=1 -v -timeout $(CLUSTER_TIMEOUT) -run '$(CLUSTER_RUN)' .
