# CSI driver targets (included by Makefile).

CSI_SANITY_VERSION ?= v5.6.0
CSI_SANITY         := build/csi-sanity-$(CSI_SANITY_VERSION)/csi-sanity
# The sanity test in pkg/csi (make test) and the e2e node specs run it.
export RWXNFS_CSI_SANITY := $(abspath $(CSI_SANITY))

.PHONY: csi-nfs csi-sanity

build: csi-nfs

# The driver, static so it also runs in the e2e nodes and minimal images.
csi-nfs:
	CGO_ENABLED=0 $(GO) build -o $(BIN)/csi-nfs ./cmd/csi-nfs

# csi-sanity, built from the module proxy (its own module: it needs a
# newer CSI spec module than the driver uses, which it speaks fine over
# the wire).
csi-sanity: $(CSI_SANITY)
$(CSI_SANITY):
	@mkdir -p $(dir $@)
	CGO_ENABLED=0 GOBIN=$(abspath $(dir $@)) GOFLAGS=-mod=mod $(GO) install github.com/kubernetes-csi/csi-test/v5/cmd/csi-sanity@$(CSI_SANITY_VERSION)

test: csi-sanity
test-race: csi-sanity

# The e2e nodes get csi-nfs, csicall (a one-call CSI client) and
# csi-sanity through the harness's node-binary hook; the host side runs
# the same csi-nfs as the controller.
CSI_E2E_BINS := build/e2e-bins
.PHONY: csi-e2e-bins
csi-e2e-bins: csi-sanity
	@mkdir -p $(CSI_E2E_BINS)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags=-s -o $(CSI_E2E_BINS)/csi-nfs ./cmd/csi-nfs
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags=-s -o $(CSI_E2E_BINS)/csicall ./e2e/cmd/csicall

e2e e2e-smoke: csi-e2e-bins
# The initramfs, unpacked into memory, then needs more than 256 MiB.
e2e e2e-smoke: export RWXNFS_E2E_NODE_MEM := 512
e2e e2e-smoke: export RWXNFS_E2E_NODE_BINS := $(abspath $(CSI_E2E_BINS)/csi-nfs):$(abspath $(CSI_E2E_BINS)/csicall):$(abspath $(CSI_SANITY))
# CI's smoke run: the node specs only (make test runs the controller's).
e2e-smoke: export RWXNFS_E2E_CSI_FOCUS := Node Service
