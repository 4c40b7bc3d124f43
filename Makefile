# Herald's entry points. The README's two commands are `make dev` and `make test`.
SHELL := /bin/bash
BIN := $(CURDIR)/bin
GO_SERVICES := ingest router gateway
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
# protoc-gen-go-vtproto writes reflection-free Marshal and Size methods beside
# protoc-gen-go's; pkg/rpccodec has gRPC encode with them (decoding stays protobuf's).
PROTOC_GEN_GO_VTPROTO_VERSION := v0.6.1-0.20240319094008-0393e58bdf10

.PHONY: dev test build proto fmt vet deps deps-stop clean bench chaos

## dev: build and run ingest, router and gateway locally, with Postgres and Redis
dev:
	@scripts/dev.sh

## test: unit, integration and end-to-end tests against real Postgres and Redis
test:
	@scripts/test.sh

## build: build the services and heraldctl into bin/
build:
	@mkdir -p $(BIN)
	go build -o $(BIN)/ ./services/ingest/cmd/ingest ./services/router/cmd/router ./services/gateway/cmd/gateway ./test/cmd/heraldctl

## proto: regenerate the gRPC code under proto/ (installs protoc and its Go plugins)
proto:
	@command -v protoc >/dev/null || scripts/install-pkg.sh protobuf-compiler
	@mkdir -p $(BIN)
	GOBIN=$(BIN) go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	GOBIN=$(BIN) go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
	GOBIN=$(BIN) go install github.com/planetscale/vtprotobuf/cmd/protoc-gen-go-vtproto@$(PROTOC_GEN_GO_VTPROTO_VERSION)
	PATH=$(BIN):$$PATH protoc -I proto \
		--go_out=proto --go_opt=paths=source_relative \
		--go-grpc_out=proto --go-grpc_opt=paths=source_relative \
		--go-vtproto_out=proto --go-vtproto_opt=paths=source_relative,features=marshal+size \
		proto/herald/v1/*.proto

## fmt: format the Go code
fmt:
	gofmt -w $$(git ls-files '*.go' | grep -v '\.pb\.go$$')

## vet: go vet every module
vet:
	@for m in pkg proto services/ingest services/router services/gateway test; do (cd $$m && go vet ./...) || exit 1; done

## deps / deps-stop: start or stop the local Postgres and Redis that dev and test use
deps:
	@scripts/deps.sh >/dev/null
deps-stop:
	@scripts/deps.sh stop

clean:
	rm -rf $(BIN)

## bench: run the load tool against a local Herald (ARGS="-conns 1000 -rate 5000 -duration 20s";
##        PROCS=1 for GOMAXPROCS 1 in Herald's processes, PIN=1 to pin them apart from the load tool)
bench:
	@scripts/bench.sh $(ARGS)

# Appended by the packaging work (charts/, deploy/, Dockerfile).
IMAGE_REGISTRY ?= ghcr.io/herald-push
IMAGE_TAG ?= dev
IMAGE_TARGETS := ingest router gateway heraldctl
DOCKER ?= docker

.PHONY: images helm

## images: build the container images (ingest, router, gateway, heraldctl) with Docker
images:
	@command -v $(DOCKER) >/dev/null || { echo "make images needs Docker (or DOCKER=podman)" >&2; exit 1; }
	@for t in $(IMAGE_TARGETS); do \
		name=herald-$$t; [ $$t = heraldctl ] && name=heraldctl; \
		echo "== $(IMAGE_REGISTRY)/$$name:$(IMAGE_TAG)" >&2; \
		$(DOCKER) build --target $$t --build-arg VERSION=$(IMAGE_TAG) -t $(IMAGE_REGISTRY)/$$name:$(IMAGE_TAG) . || exit 1; \
	done

## helm: install Helm if missing, then lint, render and check the chart (test/charts)
helm:
	@source scripts/test.d/helm.sh && cd test && go test -count=1 ./charts/

## chaos: the long chaos profile (3,000 user agents, 30,000 messages, gateways killed and drained)
chaos:
	@eval "$$(scripts/deps.sh cluster)" && HERALD_CHAOS=full go test -count=1 -v -timeout 30m -run 'TestChaos' ./test/chaos/
