# rwxnfs images for users with a container engine. UNTESTED here: the
# machines this project is built on have no engine; `make images` builds
# the same three images without one (images/, OCI tarballs), and that is
# what the tests use. Build one image per target:
#
#   docker build --target nfsd               -t rwxnfs/nfsd:0.1.0 .
#   docker build --target csi-nfs-controller -t rwxnfs/csi-nfs-controller:0.1.0 .
#   docker build --target csi-nfs-node       -t rwxnfs/csi-nfs-node:0.1.0 .

ARG GO_VERSION=1.26
ARG DEBIAN=bookworm

FROM golang:${GO_VERSION}-${DEBIAN} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Static binaries: the nfsd and controller images have no C library.
ENV CGO_ENABLED=0
RUN go build -trimpath -ldflags "-s -w" -o /out/nfsd ./cmd/nfsd \
 && go build -trimpath -ldflags "-s -w" -o /out/csi-nfs ./cmd/csi-nfs

# nfsd alone. It runs as root (persistent file handles and acting as each
# caller need capabilities; the chart grants only those).
FROM scratch AS nfsd
COPY --from=build /out/nfsd /usr/bin/nfsd
ENTRYPOINT ["/usr/bin/nfsd"]

FROM scratch AS csi-nfs-controller
COPY --from=build /out/csi-nfs /usr/bin/csi-nfs
ENTRYPOINT ["/usr/bin/csi-nfs"]

# The node plugin mounts with the kernel's NFS client, which needs
# mount.nfs, and rpcbind + rpc.statd for locking.
FROM debian:${DEBIAN}-slim AS csi-nfs-node
RUN apt-get update \
 && apt-get install -y --no-install-recommends nfs-common rpcbind mount \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /out/csi-nfs /usr/bin/csi-nfs
ENTRYPOINT ["/usr/bin/csi-nfs"]
