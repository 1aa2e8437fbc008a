# rwxnfs — see README.md. Every target installs what it needs on a fresh
# Debian machine (run as root): Go modules through the module proxy,
# Debian packages through apt-get.

GO       ?= go
BIN      ?= bin
FUZZTIME ?= 30s
APT_STAMP := build/.apt-updated

.PHONY: all build run test test-race vet deps fuzz clean

all: build

build:
	$(GO) build -o $(BIN)/nfsd ./cmd/nfsd

# Serve ./nfsd-data on loopback: volume "default" at 127.0.0.1:/volumes/default.
run: build
	$(BIN)/nfsd serve --init --root ./nfsd-data --listen 127.0.0.1:2049 --portmap-listen 127.0.0.1:111

# Debian packages the default test suite drives the server with.
DEB_TEST_PKGS := libnfs-utils iproute2 util-linux gcc libc6-dev libnfs-dev curl rpcbind qemu-utils

$(APT_STAMP):
	@mkdir -p build
	apt-get update -qq
	@touch $@

deps:
	@missing=""; for p in $(DEB_TEST_PKGS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		$(MAKE) --no-print-directory $(APT_STAMP) && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	$(GO) mod download

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { echo "gofmt needed:"; gofmt -l $$(git ls-files '*.go'); exit 1; }

# The default suite: unit, integration (real nfsd on loopback, driven by our
# client, go-nfs-client and libnfs), and each fuzz target's seed corpus.
test: deps vet
	RWXNFS_STRICT=1 $(GO) test -count=1 -timeout 20m ./...

test-race: deps
	RWXNFS_STRICT=1 $(GO) test -count=1 -race -timeout 30m ./...

# Run every fuzz target for FUZZTIME each.
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
			echo "== $$pkg $$f"; \
			$(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

clean:
	rm -rf $(BIN) build

-include csi.mk
-include e2e/e2e.mk
-include quota.mk
-include bench.mk
-include chart.mk
