# AnySync — build, test, lint, bench.
GO        ?= go
BIN       := bin
STATICCHECK_VERSION := v0.8.2
export CGO_ENABLED ?= 0

.PHONY: all build test test-short lint bench proto run clean

all: build

build:
	$(GO) build -o $(BIN)/anysync ./cmd/anysync
	$(GO) build -o $(BIN)/anysync-server ./cmd/anysync-server

# The whole suite, including real servers and real FUSE mounts.
test: build
	$(GO) test -count=1 -timeout 25m ./...

test-short:
	$(GO) test -short ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); \
	  if [ -n "$$out" ]; then echo "gofmt wants to change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) ./...

# The end-to-end benchmark suite: core micro-benchmarks, backup and restore
# of the Go tree against a server on loopback (beside restic), and the drive
# workloads (beside plain disk and gocryptfs) when FUSE is usable. Prints
# tables and writes bench/results.json. BENCH_FLAGS passes options, e.g.
# BENCH_FLAGS="-repeat 3 -write-mb 256 -drive=false".
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
