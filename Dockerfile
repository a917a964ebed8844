# One image with both binaries: /manager (the operator) and /authserver (the OAuth 2.1
# authorization server it runs). Static, distroless, non-root.
#
# Build arguments:
#   GO_VERSION  Go toolchain image tag (default 1.26)
#   TARGETOS, TARGETARCH  set by buildx for multi-platform builds
#   VERSION     stamped into the binaries (main.version)
#
#   docker build -t mcpauth:dev .
#   docker buildx build --platform linux/amd64,linux/arm64 -t <registry>/mcpauth:v0.1.0 .
ARG GO_VERSION=1.26
FROM golang:${GO_VERSION} AS build
ARG TARGETOS=linux
ARG TARGETARCH=amd64
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY authserver/ authserver/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/
ENV CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH}
RUN go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/manager ./cmd/manager && \
    go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/authserver ./cmd/authserver && \
    go build -trimpath -ldflags "-s -w" -o /out/mcpauth ./cmd/mcpauth

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/manager /manager
COPY --from=build /out/authserver /authserver
# The admin CLI, so that `kubectl exec` into a server pod can revoke grants.
COPY --from=build /out/mcpauth /mcpauth
USER 65532:65532
ENTRYPOINT ["/manager"]
