# flexgw — see README.md. Every target works on a fresh Debian machine:
# missing packages are installed by scripts/deps.sh.
SHELL := /bin/bash
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
# Debian versions start with a digit: tags are v1.2.3, untagged builds 0.0.0~git<commit>.
DEB_VERSION ?= $(shell v=$$(git describe --tags --exact-match 2>/dev/null) && echo $${v\#v} || echo 0.0.0~git$(COMMIT))
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
BIN := bin

.PHONY: all build run test test-kube test-go test-run lint bench generate plugin install deb clean deps golden conformance

all: build

build:
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/flexgw ./cmd/flexgw
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/demo-upstream ./examples/upstream

# Starts a demo upstream on 127.0.0.1:9000 and the gateway on examples/.
run: build
	@./scripts/run-demo.sh

# kube-apiserver, kubectl and helm (the Kubernetes tests in kube/ run
# against a real kube-apiserver + etcd) are built once per version into
# /var/cache/flexgw-k8s: the first build took 10 min for kube-apiserver
# and 2.5 min for kubectl on 2 cores shared with other builds (load ~10);
# later runs find them there.
deps:
	@./scripts/deps.sh test
	@./scripts/k8s-tools.sh all >/dev/null

# Only the Kubernetes tests (make test runs them too).
test-kube: deps
	$(GO) test -race -count=1 -timeout 30m ./kube/...

# The Gateway API conformance suite against the gateway (test/conformance,
# its own module): prints the pass/fail list, writes it to
# test/conformance/results.md. About 4 minutes, as root; not part of `make test`.
conformance: deps
	@./test/conformance/run.sh

# The whole suite: formatting, vet, and every test with the race detector.
# vet and the builds of bin/ use different compiler flags, hence separate
# compiles: they run side by side to fill each other's single-package
# stretches (a cold run spends minutes in a few huge generated packages).
test: deps
	@$(MAKE) --no-print-directory -j3 -O lint build plugin
	@$(MAKE) --no-print-directory test-run

# Every distinct set of build flags compiles the whole dependency tree
# (client-go, grpc, go-control-plane) again, so a cold run uses three:
# -race (vet and the tests), make build's (CGO_ENABLED=0 -trimpath) and
# the plugin's c-shared. bin/ is built once before the tests, which take
# the gateway and the plugin from FLEXGW_BIN and FLEXGW_PLUGIN
# (internal/testutil) instead of building them per package.
test-go: build plugin
	@$(MAKE) --no-print-directory test-run

# The tests and the fuzzers alone, against bin/ as test or test-go built it.
test-run:
	FLEXGW_BIN=$(abspath $(BIN))/flexgw FLEXGW_PLUGIN=$(abspath $(BIN))/out_flexgw.so \
	  $(GO) test -race -count=1 -timeout 30m ./...
	@# Fuzz the decoders that read untrusted input, a few seconds each.
	$(GO) test ./logpipe -run '^$$' -fuzz FuzzDecodeJSON -fuzztime 5s
	$(GO) test ./logpipe -run '^$$' -fuzz FuzzDecodeMsgpack -fuzztime 5s
	$(GO) test ./internal/jsonstr -run '^$$' -fuzz FuzzAgainstEncodingJSON -fuzztime 5s
	$(GO) test ./config -run '^$$' -fuzz FuzzParse -fuzztime 5s
	@# The HTTP/1.1 wire code and the request-path normalisation (docs/security.md).
	$(GO) test ./dataplane/internal/h1 -run '^$$' -fuzz FuzzReadRequest -fuzztime 5s
	$(GO) test ./dataplane/internal/h1 -run '^$$' -fuzz FuzzResponseHead -fuzztime 5s
	$(GO) test ./dataplane/internal/h1 -run '^$$' -fuzz FuzzChunkedTrailers -fuzztime 5s
	$(GO) test ./ir -run '^$$' -fuzz FuzzNormalizePath -fuzztime 5s

# Rewrites every golden file (translator and policy renderings, config and
# IR fixtures, TUI frames, dashboards, Fluent Bit config) from the current
# output: the tests that call testutil.Golden, run with -update. Review the
# diff before committing it.
GOLDEN_PKGS = $(shell grep -rl --include='*_test.go' 'testutil.Golden' . | xargs -n1 dirname | sort -u)
golden:
	$(GO) test -count=1 $(GOLDEN_PKGS) -update

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [[ -n "$$out" ]]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	@# -race: vet compiles the packages it checks against; with the tests'
	@# flags it compiles them once for both.
	$(GO) vet -race ./...

bench: build
	@./scripts/deps.sh bench
	@./scripts/bench.sh

# Regenerates the committed eBPF objects (needs clang, bpftool, libbpf-dev).
generate:
	@./scripts/deps.sh test
	$(GO) generate ./ebpf/

# The Fluent Bit output plugin (shared object for fluent-bit -e).
plugin:
	@mkdir -p $(BIN)
	$(GO) build -buildmode=c-shared -o $(BIN)/out_flexgw.so ./cmd/flb-out-flexgw

# Binary (bin/flexgw as built: version flags, stripped), systemd unit (only
# the capabilities the probe needs), /etc/default/flexgw, /etc/flexgw/conf.d.
install: build plugin
	DESTDIR=$(DESTDIR) PREFIX=$(PREFIX) ./deploy/install.sh $(BIN)/flexgw

# A .deb with the same contents (dpkg-deb), into dist/.
deb: build plugin
	VERSION=$(DEB_VERSION) ./deploy/deb.sh dist $(BIN)/flexgw

clean:
	rm -rf $(BIN)
