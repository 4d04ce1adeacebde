# l5d: the single entry point for building, testing, benchmarking and the demo.
# Every Go module listed in go.work is built, vetted and tested.

SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/bin
MODULES := $(shell $(GO) work edit -json | sed -n 's/.*"DiskPath": "\(.*\)".*/\1/p')
MODULE_PATTERNS := $(addsuffix /...,$(MODULES))
# Binaries: name=module/cmd path.
BINARIES := identity=identity/cmd/identity destination=destination/cmd/destination \
	policy=policy/cmd/policy injector=injector/cmd/injector proxy=proxy/cmd/proxy \
	proxy-init=proxy-init/cmd/proxy-init linkerd=cli/cmd/linkerd linkerd-await=proxy/cmd/linkerd-await \
	linkerd-cni=proxy-init/cmd/linkerd-cni linkerd-install-cni=proxy-init/cmd/linkerd-install-cni \
	linkerd-network-validator=proxy-init/cmd/linkerd-network-validator \
	demo-web=test/demo/cmd/demo-web demo-catalog=test/demo/cmd/demo-catalog \
	demo-ratings=test/demo/cmd/demo-ratings demo-traffic=test/demo/cmd/demo-traffic \
	l5d-demo-stat=test/cmd/l5d-demo-stat echo-advanced=test/cmd/echo-advanced pause=test/cmd/pause \
	l5d-registry=test/cmd/l5d-registry \
	l5d-cluster=test/cmd/l5d-cluster metrics-api=viz/cmd/metrics-api tap=viz/cmd/tap tap-injector=viz/cmd/tap-injector \
	web=viz/cmd/web service-mirror=multicluster/cmd/service-mirror jaeger-injector=jaeger/cmd/jaeger-injector
TEST_FLAGS ?= -count=1 -timeout 30m
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
# Expanded once, so that every binary and image of one make run carries the same version.
VERSION := $(VERSION)
TOOLS := $(BIN)/tools
STATICCHECK := $(TOOLS)/staticcheck

.PHONY: conformance test-kubelet bench-kubelet helm cni-plugins charts images images-push images-tool all build test unit-test race fuzz-smoke lint proto proto-check bench bench-proxy bench-tools e2e e2e-multicluster demo ci kube-bins prometheus-bin jaeger-bin tools clean test-deps bench-deps
# Debian packages the tests and the proxy benchmark run (installed by tools/debian-deps.sh;
# chromium is the headless browser test/e2e drives the dashboard with).
TEST_DEBS := iptables iproute2 curl git chromium containerd runc
BENCH_DEBS := iptables iproute2 nginx-light wrk nghttp2-client util-linux bc
# Packages whose tests also run under the race detector: the whole proxy.
RACE_PKGS := ./proxy/...

all: build

## build: compile every binary into bin/
build:
	@mkdir -p $(BIN)
	@set -e; for b in $(BINARIES); do name=$${b%%=*}; pkg=$${b#*=}; \
		echo "go build -o bin/$$name ./$$pkg"; \
		CGO_ENABLED=0 $(GO) build -trimpath -tags grpcnotrace -ldflags "-X github.com/l5d-go/l5d/cli/command.Version=$(VERSION) -X main.version=$(VERSION)" -o $(BIN)/$$name ./$$pkg; done

## test: lint, then every module's tests (the Gateway API mesh conformance run among them,
## without writing its report), the proxy's tests under the race detector and a short run of
## each trust-boundary fuzz target (needs root for network namespaces; installs the Debian
## packages it needs and builds the Kubernetes binaries into the cache); the images are built
## once (make images) for every suite that runs real nodes
test: test-deps lint kube-bins prometheus-bin jaeger-bin helm cni-plugins build images unit-test race fuzz-smoke

## unit-test: every module's tests; the real-node suites (test/e2e, test/helm, test/cni,
## conformance) push the images make images built once (L5D_IMAGE_LAYOUT) instead of each
## building its own
unit-test: images
	L5D_CONFORMANCE=1 $(L5D_IMAGE_ENV) $(GO) test $(TEST_FLAGS) $(MODULE_PATTERNS)

## race: the proxy's tests under the race detector
race:
	$(GO) test -race $(TEST_FLAGS) $(RACE_PKGS)

## fuzz-smoke: each trust-boundary fuzz target for FUZZTIME (default 10s)
fuzz-smoke:
	tools/fuzz-smoke.sh

test-deps:
	@tools/debian-deps.sh $(TEST_DEBS)

bench-deps:
	@tools/debian-deps.sh $(BENCH_DEBS)

## lint: gofmt, go vet and staticcheck over every module; no component imports another's
## packages (tools/import-graph.sh)
lint: tools
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(MODULE_PATTERNS)
	$(STATICCHECK) $(MODULE_PATTERNS)
	@if ! out=$$(tools/import-graph.sh); then echo "a component imports another's packages (tools/import-graph.sh):"; echo "$$out" | grep '^!'; exit 1; fi

## proto: regenerate the Go code for proto/ and the demo's test/demo/api with the pinned toolchain
proto:
	$(MAKE) -C proto generate
	$(MAKE) -C test/demo generate

## proto-check: fail when regenerating changes any committed file
proto-check: proto
	@git diff --exit-code -- proto test/demo/gen && test -z "$$(git status --porcelain -- proto test/demo/gen)" || \
		{ echo "generated proto code is stale: run make proto and commit"; exit 1; }

## tools: build the pinned developer tools (tools/go.mod) into bin/tools
tools:
	@mkdir -p $(TOOLS)
	cd tools && GOWORK=off $(GO) build -o $(TOOLS)/ honnef.co/go/tools/cmd/staticcheck \
		github.com/bufbuild/buf/cmd/buf google.golang.org/protobuf/cmd/protoc-gen-go \
		google.golang.org/grpc/cmd/protoc-gen-go-grpc

## helm: build the pinned Helm CLI (tools/helm/go.mod, the release deploy/go.mod renders the
## charts with) into bin/tools/helm; the chart tests run it
helm:
	@tools/helm/build.sh $(TOOLS) >/dev/null

## cni-plugins: build the standard CNI plugins (bridge, host-local, loopback) of the local
## cluster's CNI mode into the cache (~/.cache/l5d/cni-plugins-<version>)
cni-plugins:
	@tools/cni-plugins/build.sh >/dev/null

## charts: package every chart under deploy/charts for this release (VERSION) into CHARTS_DIR
## (default bin/charts): <chart>-<version>.tgz, a Helm repository index.yaml (base URL
## CHARTS_URL, default relative) and oci/<chart>/, an OCI layout of what `helm push` pushes;
## every time stamp is the commit's, so the bytes are the same on every run
CHARTS_DIR ?= $(BIN)/charts
CHARTS_URL ?=
charts: helm
	$(TOOLS)/l5d-charts -charts deploy/charts -out $(CHARTS_DIR) -version $(VERSION) -url "$(CHARTS_URL)" \
		-epoch $$(git log -1 --format=%ct 2>/dev/null || echo 0)

## images: every image (l5d's control plane, proxy, proxy-init, CNI plugin, viz, CLI, the demo
## app, plus nginx:latest from Debian's nginx, echo-advanced for the Gateway API conformance
## suite, prom/prometheus and jaegertracing/all-in-one) as OCI images, without a container engine, from bin/ (and the
## Debian packages they need, cached in ~/.cache/l5d/debs) into one OCI layout,
## IMAGES_DIR/oci (default bin/images/oci), each image annotated with the reference the charts
## and manifests use (ghcr.io/l5d-go/<name>:VERSION, ...). Time stamps are the commit's, so the
## bytes are the same on every run. IMAGE_TARBALLS=1 also writes IMAGES_DIR/<name>.tar for
## `ctr images import`. List them with `bin/tools/l5d-images list`.
IMAGES_DIR ?= $(BIN)/images
# What the tests that start real nodes read instead of building the images (test/localcluster).
L5D_IMAGE_ENV = L5D_IMAGE_LAYOUT=$(abspath $(IMAGES_DIR))/oci
images: build prometheus-bin jaeger-bin images-tool
	$(TOOLS)/l5d-images build -bin $(BIN) -out $(IMAGES_DIR)/oci -version $(VERSION) \
		-epoch $$(git log -1 --format=%ct 2>/dev/null || echo 0) \
		-prometheus $$(tools/prometheus/build.sh 2>/dev/null) -jaeger $$(tools/jaeger/build.sh 2>/dev/null) $(if $(IMAGE_TARBALLS),-tarballs)

## images-push: push what make images built to REGISTRY (host:port[/prefix]), keeping each
## image's repository path and tag (ghcr.io/l5d-go/proxy:v1 -> REGISTRY/l5d-go/proxy:v1);
## credentials from ~/.docker/config.json; plain HTTP to localhost and private addresses
images-push: images-tool
	@test -n "$(REGISTRY)" || { echo "images-push: set REGISTRY=host:port"; exit 1; }
	$(TOOLS)/l5d-images push -layout $(IMAGES_DIR)/oci -registry $(REGISTRY)

images-tool:
	@mkdir -p $(TOOLS)
	$(GO) build -o $(TOOLS)/l5d-images ./deploy/cmd/l5d-images

## kube-bins: build etcd and the Kubernetes binaries into the cache (no-op when cached)
kube-bins:
	test/kubebins/build.sh

## jaeger-bin: build the real Jaeger all-in-one (tools/jaeger/go.mod) into the cache, for the
## jaeger extension's e2e test
jaeger-bin:
	@tools/jaeger/build.sh >/dev/null

## prometheus-bin: build the real Prometheus server (tools/prometheus/go.mod) into the cache
## (no-op when cached; override the directory with L5D_PROMETHEUS_BIN_DIR)
prometheus-bin:
	@tools/prometheus/build.sh >/dev/null

## bench: every benchmark suite, medians and ratios against baselines
bench:
	@if [ -x test/bench/run.sh ]; then test/bench/run.sh; else echo "bench: no benchmark suites yet"; fi

## bench-tools: build the pinned load generators of bench-proxy into bin/tools: fortio
## (tools/fortio/go.mod) and ghz (tools/ghz/go.mod), each its own module since their
## dependencies clash with each other and with tools/go.mod
bench-tools:
	@mkdir -p $(TOOLS)
	cd tools/fortio && GOWORK=off $(GO) build -o $(TOOLS)/ fortio.org/fortio
	cd tools/ghz && GOWORK=off $(GO) build -o $(TOOLS)/ github.com/bojand/ghz/cmd/ghz

## bench-proxy: the proxy's headline benchmark against direct and nginx paths
bench-proxy: bench-deps bench-tools
	@if [ -x test/bench/proxy.sh ]; then test/bench/proxy.sh; else echo "bench-proxy: not built yet (issue: proxy part 1)"; exit 1; fi

## e2e: the end-to-end suite: test/e2e on a whole three-node local cluster (HA install with the CLI,
## policy, profiles, Jobs, replica kills, outage, issuer rotation, the viz extension with a real
## Prometheus), test/mesh and test/cni (CNI mode on a one-node cluster); both clusters push the
## images make images built
e2e: test-deps kube-bins prometheus-bin jaeger-bin cni-plugins build images
	$(L5D_IMAGE_ENV) $(GO) test $(TEST_FLAGS) -v ./test/e2e/... ./test/mesh/... ./test/cni/...

## e2e-multicluster: test/multicluster: two local clusters side by side (their own pod, Service
## and load-balancer ranges, routed to each other inside their node namespaces), linked with
## the CLI: traffic through the gateway over mTLS, check, gateways, a 50/50 split, the gateway
## down, pod to pod with the gateway at zero, unexporting (also part of make test)
e2e-multicluster: test-deps kube-bins build
	$(GO) test $(TEST_FLAGS) -v ./test/multicluster/

## test-kubelet: the local cluster's real nodes (containerd and the kubelet): a pod from an
## image built in the test, kubectl logs -f/--previous, exec, port-forward, RBAC, ErrImagePull
test-kubelet: test-deps kube-bins cni-plugins
	$(GO) test $(TEST_FLAGS) -v ./test/kubelet/

## bench-kubelet: how long a cluster takes to come up and a pod to get Ready, real nodes
## against the node agent in the same run (BENCH_COUNT runs of each, default 5; benchstat
## gives medians)
bench-kubelet: test-deps kube-bins cni-plugins
	$(GO) test -run '^$$' -bench . -benchtime 1x -count $${BENCH_COUNT:-5} -timeout 60m ./test/kubelet/

## conformance: the Gateway API conformance suite (sigs.k8s.io/gateway-api/conformance at the
## version the workspace requires, unedited), profiles MESH-HTTP and MESH-GRPC, on a local
## cluster of real nodes with l5d installed by the CLI; writes the suite's ConformanceReport to
## conformance/reports/<gateway-api version>/l5d-<VERSION>-mesh-report.yaml and a line per suite test
GATEWAY_API_VERSION = $(shell cd conformance && $(GO) list -m -f '{{.Version}}' sigs.k8s.io/gateway-api/conformance)
CONFORMANCE_REPORT = conformance/reports/$(GATEWAY_API_VERSION)/l5d-$(VERSION)-mesh-report.yaml
conformance: test-deps kube-bins prometheus-bin jaeger-bin cni-plugins build
	cd conformance && L5D_CONFORMANCE=1 $(GO) test -count=1 -timeout 60m -run TestMeshConformance -args \
		-version $(VERSION) -report-output $(CURDIR)/$(CONFORMANCE_REPORT)
	@echo "conformance report: $(CONFORMANCE_REPORT)"

## demo: a whole mesh on this machine
demo:
	@if [ -x test/demo/run.sh ]; then test/demo/run.sh; else echo "demo: not available yet; the local mesh (node agent, install, demo app) is still being built"; exit 1; fi

## ci: what .ci/run does after installing prerequisites
ci: proto-check test

clean:
	rm -rf $(BIN)
