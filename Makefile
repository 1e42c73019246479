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

# Micro-benchmarks of the hot paths, then the end-to-end workloads.
bench: build
	$(GO) test -run '^$$' -bench . -benchmem ./crypto/... ./store/...

# protoc-gen-go and protoc-gen-go-grpc live in GOPATH/bin.
proto:
	PATH="$$($(GO) env GOPATH)/bin:$$PATH" protoc --proto_path=proto --go_out=proto --go_opt=paths=source_relative \
	  --go-grpc_out=proto --go-grpc_opt=paths=source_relative proto/anysyncpb/anysync.proto

clean:
	rm -rf $(BIN)
