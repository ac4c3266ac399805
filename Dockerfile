# syntax=docker/dockerfile:1
# Multi-stage build. Targets:
#   docker build -t flexgw .                  built-in data plane (default)
#   docker build --target envoy -t flexgw:envoy .   Envoy data plane: the official Envoy image with flexgw added
# The entrypoint is flexgw itself and CMD its arguments, so
#   docker run flexgw run --config /etc/flexgw/conf.d --ebpf on
#   docker run flexgw validate /etc/flexgw/conf.d
# work as on a host. The image serves deploy/docker/conf.d (one API on :8081
# in front of $FLEXGW_DEMO_UPSTREAM); docs/docker.md has the compose file
# with the demo upstream, Redis and Prometheus.
ARG GO_VERSION=1.26
ARG ENVOY_IMAGE=envoyproxy/envoy:v1.36-latest

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
ARG COMMIT=unknown
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" -o /out/flexgw ./cmd/flexgw \
 && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/demo-upstream ./examples/upstream \
 && mkdir -p /out/state

FROM ${ENVOY_IMAGE} AS envoy
COPY --from=build /out/flexgw /out/demo-upstream /usr/local/bin/
COPY deploy/docker/conf.d/ /etc/flexgw/conf.d/
COPY --from=build --chown=101:101 /out/state /var/lib/flexgw
USER 101
# 8081: the demo API; 8082: the second listener the examples use; 9180: admin API.
EXPOSE 8081 8082 9180
# Durable log queues survive a container replacement.
VOLUME /var/lib/flexgw
ENV FLEXGW_DEMO_UPSTREAM=http://upstream:9000
# Admin API: loopback unless exposed on purpose, with a token:
#   docker run -e FLEXGW_ADMIN=0.0.0.0:9180 -e FLEXGW_ADMIN_TOKEN=... (see docs/security.md)
ENV FLEXGW_ADMIN=127.0.0.1:9180
# flexgw status reads FLEXGW_ADMIN and FLEXGW_ADMIN_TOKEN as run does.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 CMD ["/usr/local/bin/flexgw", "status", "--ready"]
ENTRYPOINT ["/usr/local/bin/flexgw"]
CMD ["run", "--config", "/etc/flexgw/conf.d", "--dataplane", "envoy", "--state-dir", "/var/lib/flexgw"]

FROM gcr.io/distroless/static-debian12:nonroot AS builtin
COPY --from=build /out/flexgw /out/demo-upstream /usr/local/bin/
COPY deploy/docker/conf.d/ /etc/flexgw/conf.d/
COPY --from=build --chown=65532:65532 /out/state /var/lib/flexgw
USER nonroot:nonroot
# 8081: the demo API; 8082: the second listener the examples use; 9180: admin API.
EXPOSE 8081 8082 9180
# Durable log queues survive a container replacement.
VOLUME /var/lib/flexgw
ENV FLEXGW_DEMO_UPSTREAM=http://upstream:9000
# Admin API: loopback unless exposed on purpose, with a token:
#   docker run -e FLEXGW_ADMIN=0.0.0.0:9180 -e FLEXGW_ADMIN_TOKEN=... (see docs/security.md)
ENV FLEXGW_ADMIN=127.0.0.1:9180
# flexgw status reads FLEXGW_ADMIN and FLEXGW_ADMIN_TOKEN as run does.
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 CMD ["/usr/local/bin/flexgw", "status", "--ready"]
ENTRYPOINT ["/usr/local/bin/flexgw"]
CMD ["run", "--config", "/etc/flexgw/conf.d", "--state-dir", "/var/lib/flexgw"]
