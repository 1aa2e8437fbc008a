# Side-by-side benchmarks: rwxnfs vs nfs-ganesha (VFS FSAL) vs go-nfs's
# example/osnfs, plus the physical limits (included by Makefile).
#
#   make bench        full run (~17 min); writes docs/benchmarks.md's tables and docs/benchmarks.png
#   make bench-smoke  every workload briefly against every server; fails only
#                     on an error or wrong data, never on timing
#
# Both run as root: they make a network namespace (bench/netns.sh) and run
# every daemon and client inside it (bench/run.sh).

.PHONY: bench bench-smoke bench-deps bench-bin bench-profile bench-ab

DEB_BENCH_PKGS := nfs-ganesha nfs-ganesha-vfs rpcbind nfs-common iproute2 gcc libc6-dev libnfs-dev
GO_NFS_VERSION := v0.0.4
BENCH_OUT      ?= build/bench

# apt_install installs those of the Debian packages $(1) that are missing
# (apt-get update once first, only then).
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		$(MAKE) --no-print-directory $(APT_STAMP) && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

bench-deps:
	$(call apt_install,$(DEB_BENCH_PKGS))

# go-nfs's example server is built in a throwaway module under build/, so
# its dependencies never enter our go.mod.
build/osnfs:
	@mkdir -p build/gonfs-mod
	cd build/gonfs-mod && printf 'module nfsbench/osnfs\n\ngo 1.26\n' > go.mod && \
		GOFLAGS=-mod=mod $(GO) get github.com/willscott/go-nfs/example/osnfs@$(GO_NFS_VERSION) && \
		GOFLAGS=-mod=mod $(GO) build -o ../osnfs github.com/willscott/go-nfs/example/osnfs

# The one-call workloads through libnfs's synchronous API (Debian's libnfs).
build/libnfs-onecall: bench/libnfs-onecall.c
	@mkdir -p build
	cc -O2 -Wall -o $@ $< -lnfs

bench-bin: build/osnfs build/libnfs-onecall
	$(GO) build -o build/nfsd ./cmd/nfsd
	$(GO) build -o build/nfsbench ./cmd/nfsbench

# Profiles of the one-call workloads and lock (bench/profile.sh for the
# knobs), summed up per operation in build/profile/summary.md.
DEB_PROFILE_PKGS := linux-perf strace curl jq
PROFILE_OUT      ?= build/profile

bench-profile: bench-deps bench-bin
	$(call apt_install,$(DEB_PROFILE_PKGS))
	bench/netns.sh bench/profile.sh $(PROFILE_OUT)
	bench/profile-summary.sh $(PROFILE_OUT) > $(PROFILE_OUT)/summary.md
	@echo "profiles and $(PROFILE_OUT)/summary.md"

# Two nfsd variants side by side, interleaved (bench/ab.sh for the knobs):
#   make bench-ab AB_B_BIN=/path/to/other/nfsd
#   make bench-ab AB_B_ENV=GOMAXPROCS=1
AB_OUT ?= build/ab

bench-ab: bench-deps bench-bin
	$(call apt_install,jq)
	bench/netns.sh bench/ab.sh $(AB_OUT)

bench-smoke: bench-deps bench-bin
	bench/netns.sh bench/run.sh smoke build/bench-smoke

bench: bench-deps bench-bin
	@mkdir -p $(BENCH_OUT)
	@date -u +%s > $(BENCH_OUT)/start
	bench/netns.sh bench/run.sh full $(BENCH_OUT)
	$(MAKE) --no-print-directory bench-quota
	bench/machine.sh $(BENCH_OUT) > $(BENCH_OUT)/machine.txt
	build/nfsbench report --in $(BENCH_OUT)/results.jsonl --machine $(BENCH_OUT)/machine.txt \
		--md docs/benchmarks.md --png docs/benchmarks.png
	@echo "make bench took $$(( $$(date -u +%s) - $$(cat $(BENCH_OUT)/start) ))s"
