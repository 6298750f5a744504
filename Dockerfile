# syntax=docker/dockerfile:1
#
# OpenIntern as one static binary (CGO off: the SQLite driver, modernc, is
# pure Go) on a distroless base, running as a non-root user (uid 65532).
#
#   docker build -t openintern .
#   docker build --build-arg VERSION=$(git describe --tags --always) -t openintern .
#   docker run -p 3000:3000 -v oi-data:/data openintern              # SQLite in /data
#
# The image serves on 0.0.0.0:3000 with AUTH=token: make the first admin
# token with `docker run --rm -v oi-data:/data openintern tokens create ...`.
# See docs/DEPLOY.md for a cluster (deploy/compose.yaml) and Kubernetes.

ARG GO_VERSION=1.26

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/openintern ./cmd/openintern \
 && mkdir -p /out/data /out/workspace

# static: no libc, no shell; nonroot: uid/gid 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/openintern /usr/local/bin/openintern
# Owned by the user the daemon runs as, so fresh named volumes mounted on
# them are writable too (Docker copies the ownership into an empty volume).
COPY --from=build --chown=65532:65532 /out/data /data
COPY --from=build --chown=65532:65532 /out/workspace /workspace
ENV HOST=0.0.0.0 \
    PORT=3000 \
    DATA_DIR=/data \
    OPENINTERN_WORKSPACE=/workspace \
    AUTH=token
WORKDIR /data
VOLUME ["/data"]
EXPOSE 3000
USER 65532:65532
# There is no shell or curl in this image: the check is the binary itself,
# in exec form (readiness: store reachable, node not draining).
HEALTHCHECK --interval=10s --timeout=6s --start-period=30s --retries=3 \
    CMD ["/usr/local/bin/openintern", "health"]
ENTRYPOINT ["/usr/local/bin/openintern"]
CMD ["serve"]
