# AnySync — build, test, lint, bench.
GO        ?= go
BIN       := bin
STATICCHECK_VERSION := v0.8.2

# The cgofuse front end (fs/cgofs) needs cgo and libfuse 3's headers on
# Linux. Where pkg-config finds fuse3 (Debian: libfuse3-dev), every build,
# test and lint includes it (cgo, -tags fuse3); elsewhere builds stay pure
# Go, with the go-fuse front end only. See docs/frontends.md.
ifeq ($(shell uname -s),Linux)
FUSE3 := $(shell pkg-config --exists fuse3 2>/dev/null && echo 1)
endif
ifeq ($(FUSE3),1)
export CGO_ENABLED ?= 1
export GOFLAGS := $(strip $(GOFLAGS) -tags=fuse3)
else
export CGO_ENABLED ?= 0
endif

# The drive tests that run a second time through the cgofuse front end:
# everything that works through a mount (not the soak, nor the server's
# and backup's own tests).
FRONTEND_TESTS := TestDrive|TestPinUnpin|TestConflictWhileOffline|TestOfflineQueueAndReconnect|TestVersionsAndRestoreInPlace|TestSelectiveSync|TestStateAndPinXattrs|TestOfflineUncachedRead

# Release targets checked by `make cross`: Windows and macOS without cgo
# (cgofuse loads WinFsp at run time), Linux as `make build` builds it.
CROSS := windows/amd64 darwin/arm64

.PHONY: all build cross test test-short lint bench proto run clean

all: build

build:
	$(GO) build -o $(BIN)/anysync ./cmd/anysync
	$(GO) build -o $(BIN)/anysync-server ./cmd/anysync-server

# Binaries for every release target in bin/OS-ARCH/.
cross:
	@set -e; for t in $(CROSS); do os=$${t%/*}; arch=$${t#*/}; ext=; [ $$os = windows ] && ext=.exe; \
	  echo "$$os/$$arch"; \
	  CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build ./...; \
	  for c in anysync anysync-server; do \
	    CGO_ENABLED=0 GOOS=$$os GOARCH=$$arch $(GO) build -o $(BIN)/$$os-$$arch/$$c$$ext ./cmd/$$c; done; done
	@echo "linux/amd64"
	GOOS=linux GOARCH=amd64 $(GO) build -o $(BIN)/linux-amd64/anysync ./cmd/anysync
	GOOS=linux GOARCH=amd64 $(GO) build -o $(BIN)/linux-amd64/anysync-server ./cmd/anysync-server

# The whole suite, including real servers and real FUSE mounts, and the
# tests of AnySync's patch to go-fuse (third_party/go-fuse/ANYSYNC.md);
# then the drive tests again through the cgofuse front end.
test: build
	$(GO) test -count=1 -timeout 25m ./...
	cd third_party/go-fuse && $(GO) test -count=1 ./fuse/
ifeq ($(FUSE3),1)
	ANYSYNC_FRONTEND=cgofuse $(GO) test -count=1 -timeout 15m -run '$(FRONTEND_TESTS)' ./integration/
else
	@if [ "$$CI" = true ]; then echo "CI needs libfuse3-dev to test the cgofuse front end"; exit 1; fi
	@echo "No libfuse3-dev (pkg-config fuse3): the drive tests ran through go-fuse only."
endif

test-short:
	$(GO) test -short ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); \
	  if [ -n "$$out" ]; then echo "gofmt wants to change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd third_party/go-fuse && $(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

# The end-to-end benchmark suite: core micro-benchmarks, backup and restore
# of the Go tree against a server on loopback (beside restic), and the drive
# workloads (beside plain disk and gocryptfs) when FUSE is usable. Prints
# tables and writes bench/results.json. BENCH_FLAGS passes options, e.g.
# BENCH_FLAGS="-repeat 3 -write-mb 256 -drive=false", or
# BENCH_FLAGS="-micro=false -backup=false -targets=anysync" for the drive alone.
bench: build
	$(GO) run ./bench -bin $(BIN) -out bench/results.json $(BENCH_FLAGS)

# protoc-gen-go and protoc-gen-go-grpc live in GOPATH/bin.
proto:
	PATH="$$($(GO) env GOPATH)/bin:$$PATH" protoc --proto_path=proto --go_out=proto --go_opt=paths=source_relative \
	  --go-grpc_out=proto --go-grpc_opt=paths=source_relative proto/anysyncpb/anysync.proto

# A local demo: server in .anysync-demo/ (created once, reused), a demo
# account signed up on first run, the drive mounted at ./AnySync.
DEMO_DIR  := $(CURDIR)/.anysync-demo
DEMO_ADDR ?= 127.0.0.1:65065
DEMO_MNT  := $(CURDIR)/AnySync
DEMO_CLI  := $(CURDIR)/$(BIN)/anysync --home $(DEMO_DIR)/home

run: build
	@set -e; d="$(DEMO_DIR)"; mkdir -p "$$d"; \
	if [ ! -f "$$d/server/config.json" ]; then \
	  $(BIN)/anysync-server init --data "$$d/server" --listen $(DEMO_ADDR) > "$$d/init.log"; fi; \
	if [ -f "$$d/server.pid" ] && kill -0 "$$(cat "$$d/server.pid")" 2>/dev/null; then :; else \
	  setsid $(BIN)/anysync-server run --data "$$d/server" >> "$$d/server.log" 2>&1 < /dev/null & echo $$! > "$$d/server.pid"; \
	  for i in $$(seq 50); do bash -c 'exec 3<>/dev/tcp/$(subst :,/,$(DEMO_ADDR))' 2>/dev/null && break; sleep 0.1; done; fi; \
	fp=$$($(BIN)/anysync-server fingerprint --data "$$d/server" | grep -o 'SHA256:[^ ]*'); \
	if [ ! -f "$$d/home/access.keys" ]; then \
	  ANYSYNC_PASSWORD=anysync-demo $(DEMO_CLI) signup --server $(DEMO_ADDR) --fingerprint "$$fp" --email demo@anysync.local; fi; \
	if mountpoint -q "$(DEMO_MNT)" 2>/dev/null; then echo "Already mounted at $(DEMO_MNT)."; else $(DEMO_CLI) mount "$(DEMO_MNT)"; fi; \
	echo; echo "AnySync is mounted at ./AnySync (server $(DEMO_ADDR), data in .anysync-demo/)."; \
	echo "  cp -r ~/Pictures ./AnySync/          # use it like any folder"; \
	echo "  $(BIN)/anysync --home .anysync-demo/home status"; \
	echo "  $(BIN)/anysync --home .anysync-demo/home sync --wait"; \
	echo "Stop:  $(BIN)/anysync --home .anysync-demo/home unmount ./AnySync && kill \$$(cat .anysync-demo/server.pid)"; \
	echo "Running make run again reuses the account and the data."

clean:
	rm -rf $(BIN)
