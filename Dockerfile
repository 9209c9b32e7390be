# syntax=docker/dockerfile:1
#
# bootstrap: one static binary on distroless, for linux/amd64 and linux/arm64
# (the Oracle free tier's Ampere nodes). Build both with buildx:
#
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     --build-arg VERSION=$(git describe --tags --always) -t bootstrap:dev .
#
# The build stage runs on the builder's own platform and cross-compiles
# (CGO_ENABLED=0 needs no target toolchain), so arm64 images build at native
# speed on an amd64 machine, without emulation.

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Modules first: this layer is reused until go.mod or go.sum change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG TARGETOS
ARG TARGETARCH
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/bootstrap ./cmd/bootstrap

# Static binary, CA certificates (OCI Vault over TLS), tzdata, /etc/passwd with
# nonroot (65532); no shell, no package manager. Runs with a read-only root
# filesystem: it writes nothing but, with the file source, its secrets folder.
# `make image` builds this same image without Docker: internal/image reads
# this stage, so keep to what it understands (ARG, LABEL, ENV, one
# COPY --from of the binary, USER, WORKDIR, exec-form ENTRYPOINT and CMD);
# anything else fails that build rather than being silently left out.
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="bootstrap" \
      org.opencontainers.image.description="Brings the Health Data AI Platform's data layer to its desired state and verifies it" \
      org.opencontainers.image.source="https://github.com/health-data-ai/bootstrap" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/bootstrap /usr/local/bin/bootstrap
USER 65532:65532
WORKDIR /home/nonroot
ENTRYPOINT ["/usr/local/bin/bootstrap"]
CMD ["version"]
