# Images, the Helm chart and its install test (included by Makefile).
#
#   make images         OCI image tarballs in build/images/ (no container engine)
#   make images-check   import them into a private containerd with ctr (root)
#   make chart-tools    helm, kubeconform and Kubernetes' schemas (make test runs this)
#   make cluster-tools  + etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
#                       kubectl, csi-provisioner, csi-resizer, csi-snapshotter, snapshot-controller
#   make e2e-install    the chart installed with helm on a real control plane, driving
#                       real nfsd and csi-nfs (root; a private network namespace)
#
# Third-party tools are built from the Go module proxy and cached outside the
# tree, shared by every checkout: $(RWXNFS_TOOLS) (see e2e/toolchain).

RWXNFS_TOOLS ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/rwxnfs/tools
export RWXNFS_TOOLS

CHART_VERSION := $(shell sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}/\1/p' charts/rwxnfs/Chart.yaml)
IMAGE_TAG     ?= $(CHART_VERSION)
IMAGES_OUT    ?= build/images
INSTALL_TIMEOUT ?= 30m

.PHONY: images images-check chart-tools cluster-tools e2e-install

# Debian packages the image build downloads with (apt-get download needs
# package lists: apt-get update once if none are there).
images:
	@apt-cache policy nfs-common 2>/dev/null | grep -q 'Candidate: [0-9]' || $(MAKE) --no-print-directory $(APT_STAMP)
	$(GO) run ./images/mkimages --out $(IMAGES_OUT) --tag $(IMAGE_TAG)

images-check: images
	cd images && RWXNFS_IMAGES_CHECK=1 RWXNFS_IMAGES_DIR=$(abspath $(IMAGES_OUT)) RWXNFS_IMAGES_TAG=$(IMAGE_TAG) \
		$(GO) test -count=1 -v -run TestCtrImport -timeout 15m .

chart-tools:
	$(GO) run ./e2e/cmd/toolchain chart

cluster-tools:
	$(GO) run ./e2e/cmd/toolchain chart cluster

# make test validates the chart with helm and kubeconform.
test: chart-tools

e2e-install: cluster-tools
	cd e2e/install && RWXNFS_E2E_INSTALL=1 $(GO) test -count=1 -v -timeout $(INSTALL_TIMEOUT) .
