# syntax=docker/dockerfile:1
#
# Herald's images, one target each, from one Dockerfile:
#
#   docker build --target gateway -t ghcr.io/herald-push/herald-gateway:dev .
#
# `make images` builds ingest, router, gateway and heraldctl. The three services are
# modules of one Go workspace (go.work) sharing pkg/ and proto/, so they build from
# the repository root with the same steps; one file keeps one Go version, one base
# image and one set of build flags for all of them. Each image holds one static
# binary on distroless "static" (CA certificates, tzdata, /etc/passwd, no shell),
# running as its nonroot user 65532.

ARG GO_VERSION=1.26
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot

# The workspace, with every module's dependencies downloaded.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS source
WORKDIR /src
ENV CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS=-trimpath
# Module files first: the download layer is reused until one of them changes.
COPY go.work go.work.sum ./
COPY pkg/go.mod pkg/go.sum pkg/
COPY proto/go.mod proto/go.sum proto/
COPY services/ingest/go.mod services/ingest/go.sum services/ingest/
COPY services/router/go.mod services/router/go.sum services/router/
COPY services/gateway/go.mod services/gateway/go.sum services/gateway/
COPY test/go.mod test/go.sum test/
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY pkg pkg
COPY proto proto
COPY services services
COPY test/cmd test/cmd

# One build stage per binary, so that a target builds only its own. TARGETOS and
# TARGETARCH cross-compile when buildx builds for several platforms.
FROM source AS build-ingest
ARG TARGETOS TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
	GOOS=$TARGETOS GOARCH=$TARGETARCH go build -ldflags='-s -w' -o /out/ingest ./services/ingest/cmd/ingest

FROM source AS build-router
ARG TARGETOS TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
	GOOS=$TARGETOS GOARCH=$TARGETARCH go build -ldflags='-s -w' -o /out/router ./services/router/cmd/router

FROM source AS build-gateway
ARG TARGETOS TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
	GOOS=$TARGETOS GOARCH=$TARGETARCH go build -ldflags='-s -w' -o /out/gateway ./services/gateway/cmd/gateway

FROM source AS build-heraldctl
ARG TARGETOS TARGETARCH
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
	GOOS=$TARGETOS GOARCH=$TARGETARCH go build -ldflags='-s -w' -o /out/heraldctl ./test/cmd/heraldctl

# The images. Listen addresses default to every interface, since 127.0.0.1 (the
# binaries' own default) is unreachable from outside a container; flags and the
# chart's environment still override them.
FROM ${RUNTIME_IMAGE} AS ingest
ARG VERSION=dev
LABEL org.opencontainers.image.title="herald-ingest" \
	org.opencontainers.image.description="Herald ingest: the Web Push HTTP API for application servers" \
	org.opencontainers.image.source="https://github.com/herald-push/herald" \
	org.opencontainers.image.version="${VERSION}"
COPY --from=build-ingest /out/ingest /ingest
ENV HERALD_LISTEN=:8000 HERALD_ADMIN_LISTEN=:8001
EXPOSE 8000 8001
USER 65532:65532
ENTRYPOINT ["/ingest"]

FROM ${RUNTIME_IMAGE} AS router
ARG VERSION=dev
LABEL org.opencontainers.image.title="herald-router" \
	org.opencontainers.image.description="Herald router: stores messages and hands them to the owning gateway" \
	org.opencontainers.image.source="https://github.com/herald-push/herald" \
	org.opencontainers.image.version="${VERSION}"
COPY --from=build-router /out/router /router
ENV HERALD_GRPC_LISTEN=:8090 HERALD_ADMIN_LISTEN=:8091
EXPOSE 8090 8091
USER 65532:65532
ENTRYPOINT ["/router"]

FROM ${RUNTIME_IMAGE} AS gateway
ARG VERSION=dev
LABEL org.opencontainers.image.title="herald-gateway" \
	org.opencontainers.image.description="Herald gateway: user agents' WebSockets (Mozilla Push Service protocol)" \
	org.opencontainers.image.source="https://github.com/herald-push/herald" \
	org.opencontainers.image.version="${VERSION}"
COPY --from=build-gateway /out/gateway /gateway
ENV HERALD_LISTEN=:8080 HERALD_GRPC_LISTEN=:8082 HERALD_ADMIN_LISTEN=:8081
EXPOSE 8080 8081 8082
USER 65532:65532
ENTRYPOINT ["/gateway"]

# heraldctl, for keys without a Go toolchain: docker run --rm <image> token-key
FROM ${RUNTIME_IMAGE} AS heraldctl
ARG VERSION=dev
LABEL org.opencontainers.image.title="heraldctl" \
	org.opencontainers.image.description="Herald's command-line tool: keys, a test user agent and sender" \
	org.opencontainers.image.source="https://github.com/herald-push/herald" \
	org.opencontainers.image.version="${VERSION}"
COPY --from=build-heraldctl /out/heraldctl /heraldctl
USER 65532:65532
ENTRYPOINT ["/heraldctl"]
