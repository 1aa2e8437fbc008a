# Quota, volume lifecycle and admin API targets (included by Makefile).

PROTOC_GEN_GO_VERSION      ?= v1.36.12
PROTOC_GEN_GO_GRPC_VERSION ?= v1.6.2
bench-quota: SHELL := /bin/bash

GOBIN_DIR := $(shell $(GO) env GOPATH)/bin

.PHONY: generate bench-quota

# Regenerate the admin API's Go code (committed) from api/**/*.proto.
generate:
	@command -v protoc >/dev/null || { $(MAKE) --no-print-directory $(APT_STAMP) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends protobuf-compiler; }
	$(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	$(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	PATH="$(GOBIN_DIR):$$PATH" protoc -I api \
		--go_out=api --go_opt=paths=source_relative \
		--go-grpc_out=api --go-grpc_opt=paths=source_relative \
		api/admin/v1/admin.proto

# Benchmarks of issue 4; results go to docs/benchmarks-quota.md.
bench-quota:
	@mkdir -p build
	set -o pipefail; RWXNFS_BENCH_QUOTA=1 $(GO) test -count=1 -timeout 30m -run 'TestBenchQuota' -v ./pkg/nfsd/ 2>&1 | tee build/bench-quota.txt | grep -E '^(=== RUN|--- |    bench|ok|FAIL)'
