# syntax=docker/dockerfile:1
# Multi-stage build. Targets:
#   docker build -t flexgw .                  built-in data plane (default)
#   docker build --target envoy -t flexgw:envoy .   Envoy data plane: the official Envoy image with flexgw added
ARG GO_VERSION=1.26
ARG ENVOY_IMAGE=envoyproxy/envoy:v1.36-latest

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" -o /out/flexgw ./cmd/flexgw

FROM ${ENVOY_IMAGE} AS envoy
COPY --from=build /out/flexgw /usr/local/bin/flexgw
COPY examples/ /etc/flexgw/conf.d/
USER 101
EXPOSE 8081 9180
# Admin API: loopback unless exposed on purpose, with a token:
#   docker run -e FLEXGW_ADMIN=0.0.0.0:9180 -e FLEXGW_ADMIN_TOKEN=... (see docs/security.md)
ENV FLEXGW_ADMIN=127.0.0.1:9180
ENTRYPOINT ["/usr/local/bin/flexgw", "run", "--config", "/etc/flexgw/conf.d", "--dataplane", "envoy", "--state-dir", "/tmp/flexgw"]

FROM gcr.io/distroless/static-debian12:nonroot AS builtin
COPY --from=build /out/flexgw /usr/local/bin/flexgw
COPY examples/ /etc/flexgw/conf.d/
USER nonroot:nonroot
EXPOSE 8081 9180
# Admin API: loopback unless exposed on purpose, with a token:
#   docker run -e FLEXGW_ADMIN=0.0.0.0:9180 -e FLEXGW_ADMIN_TOKEN=... (see docs/security.md)
ENV FLEXGW_ADMIN=127.0.0.1:9180
ENTRYPOINT ["/usr/local/bin/flexgw", "run", "--config", "/etc/flexgw/conf.d", "--state-dir", "/tmp/flexgw"]
