# mcpauth: an operator that runs OAuth 2.1 authorization servers for MCP servers.
# `make help` lists the targets. Heavy builds (kube-apiserver for envtest, controller-gen)
# are cached outside the clone in $(CACHE), keyed by version, so a fresh clone on a
# machine that has built them once starts in seconds.

KUBE_VERSION ?= v1.37.2
CONTROLLER_TOOLS_VERSION ?= v0.23.0
CACHE ?= $(HOME)/.cache/mcpauth
CONTROLLER_GEN ?= $(CACHE)/tools/controller-gen-$(CONTROLLER_TOOLS_VERSION)/controller-gen
IMG ?= mcpauth:dev
GO ?= go
# Debian packages the tests need: a real Redis (and Sentinel), etcd for envtest, and
# Chromium for the consent-page test; and what the dev cluster runs on (containerd,
# runc, the CNI plugins, iptables, conntrack, nftables; hack/cluster).
DEB_PACKAGES ?= redis-server redis-sentinel etcd-server chromium
CLUSTER_DEB_PACKAGES ?= containerd runc containernetworking-plugins iptables conntrack nftables
TEST_FLAGS ?= -timeout 30m

export MCPAUTH_CACHE := $(CACHE)
export KUBE_VERSION

.DEFAULT_GOAL := help
SHELL := /usr/bin/env bash
.SHELLFLAGS := -euo pipefail -c

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "Usage: make <target>\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) }' $(MAKEFILE_LIST)

##@ Development

.PHONY: dev
dev: ## Run the whole system on this machine until Ctrl-C (control plane, operator, IdP, servers).
	@hack/dev.sh

.PHONY: manifests
manifests: controller-gen ## Generate CRDs and RBAC from the API types and markers.
	$(CONTROLLER_GEN) rbac:roleName=manager-role crd:maxDescLen=512 paths="./api/...;./controllers/..." output:crd:artifacts:config=config/crd/bases

.PHONY: generate
generate: controller-gen ## Generate DeepCopy methods.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."

.PHONY: verify
verify: manifests generate ## Fail if generated code or manifests are out of date.
	@git diff --exit-code -- api config || { echo "generated files are stale: run 'make manifests generate' and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- api config)" || { git status --porcelain -- api config; echo "untracked generated files: run 'make manifests generate' and commit"; exit 1; }

.PHONY: lint
lint: ## gofmt and go vet.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

.PHONY: test
test: install-deps lint cluster-assets ## Install what the tests need, then run every test (envtest, real Redis, Chromium, the cluster).
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh | tail -n 1)" $(GO) test $(TEST_FLAGS) ./...

# FUZZTIME is how long `make fuzz` runs each target; their seed corpora
# (authserver/testdata/fuzz) run in every `make test`.
FUZZTIME ?= 30s
FUZZ_TARGETS ?= FuzzValidateRedirectURI FuzzMatchRedirectURI FuzzRegistration FuzzTokenRequest FuzzPKCE FuzzVerifyJWT

.PHONY: fuzz
fuzz: ## Fuzz the redirect URI validator, registration JSON, token form, PKCE and JWT verification, FUZZTIME (30s) each.
	@for t in $(FUZZ_TARGETS); do echo "fuzz $$t for $(FUZZTIME)"; $(GO) test ./authserver -run '^$$' -fuzz "^$$t\$$" -fuzztime $(FUZZTIME); done

.PHONY: envtest
envtest: ## Provide kube-apiserver, etcd and kubectl for envtest; prints KUBEBUILDER_ASSETS last.
	@hack/envtest-assets.sh

.PHONY: bench
bench: ## Benchmark the server against same-run baselines, the operator at scale once envtest is built, and JWT-protected MCP calls (docs/performance.md).
	@hack/install-deps.sh redis-server gnuplot-nox
	$(GO) build -trimpath -ldflags "-s -w" -o bin/authserver ./cmd/authserver
	$(GO) build -o bin/loadgen ./test/bench/loadgen
	@if [[ -n "$${KUBEBUILDER_ASSETS:-}" || -x "$(CACHE)/envtest/$(KUBE_VERSION)/kube-apiserver" ]]; then \
	  $(GO) build -trimpath -ldflags "-s -w" -o bin/manager ./cmd/manager && \
	  $(GO) build -o bin/operatorbench ./test/bench/operatorbench && \
	  KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh | tail -n 1)" bin/operatorbench -manager bin/manager -out bin/bench; \
	else echo "bench: operator benchmark skipped: envtest's kube-apiserver is not built yet (make envtest builds it, about 5 minutes)"; fi
	bin/loadgen -authserver bin/authserver -out bin/bench -plot docs/performance.png
	$(GO) build -o bin/mcpbench ./test/bench/mcpbench
	bin/mcpbench -out bin/bench

.PHONY: install-deps
install-deps: ## Install Debian packages and Go modules the tests need (idempotent).
	@hack/install-deps.sh $(DEB_PACKAGES)
	@if [[ $$(id -u) -eq 0 ]]; then hack/install-deps.sh $(CLUSTER_DEB_PACKAGES); else echo "install-deps: not root: the dev cluster's packages ($(CLUSTER_DEB_PACKAGES)) are not installed; the cluster test will say so"; fi
	$(GO) mod download
	@hack/install-node.sh
	@cd test/e2e/node && if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then npm ci --no-audit --no-fund; fi

##@ Cluster (a real single-node Kubernetes on this machine, no Docker; hack/cluster)

.PHONY: cluster-assets
cluster-assets: ## Build the Kubernetes components once (cached), where this machine can run the cluster.
	@if why=$$(hack/cluster/check.sh); then hack/cluster/build.sh >/dev/null; else echo "cluster-assets: skipped: $$why"; fi

.PHONY: cluster-up
cluster-up: ## Start the cluster (etcd, Kubernetes, containerd); prints the kubectl line.
	@hack/cluster/up.sh

.PHONY: cluster-down
cluster-down: ## Stop the cluster and undo every change it made to the machine.
	@hack/cluster/down.sh

.PHONY: cluster-images
cluster-images: ## Build the images without Docker (hack/images) and load them into the cluster.
	@hack/cluster/images.sh

##@ Build

.PHONY: build
build: ## Build the manager, authorization server and mcpauth CLI binaries into bin/.
	$(GO) build -o bin/manager ./cmd/manager
	$(GO) build -o bin/authserver ./cmd/authserver
	$(GO) build -o bin/mcpauth ./cmd/mcpauth

.PHONY: run
run: manifests ## Run the operator against the cluster of the current kubeconfig.
	$(GO) run ./cmd/manager

.PHONY: docker-build
docker-build: ## Build the container image (needs a Docker engine).
	docker build -t $(IMG) .

##@ Deployment

.PHONY: install
install: manifests ## Install the CRDs into the cluster of the current kubeconfig.
	kubectl apply --server-side -k config/crd

.PHONY: uninstall
uninstall: ## Remove the CRDs (and every OAuthProvider and MCPClient with them).
	kubectl delete --ignore-not-found -k config/crd

.PHONY: deploy
deploy: manifests ## Deploy the operator (CRDs, RBAC, manager) with kustomize.
	kubectl apply --server-side -k config/default

.PHONY: undeploy
undeploy: ## Remove the operator.
	kubectl delete --ignore-not-found -k config/default

##@ Tools

.PHONY: controller-gen
controller-gen: $(CONTROLLER_GEN) ## Install controller-gen (pinned) into the cache.
$(CONTROLLER_GEN):
	GOBIN=$(dir $(CONTROLLER_GEN)) $(GO) install sigs.k8s.io/controller-tools/cmd/controller-gen@$(CONTROLLER_TOOLS_VERSION)
