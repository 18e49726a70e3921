# ITL ControlPlane worker fleets. `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV ?= .venv
PYTHON := $(VENV)/bin/python
RUN := PATH=$(abspath $(VENV))/bin:$$PATH
RABBITMQ := bash tools/rabbitmq/rabbitmq.sh

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(PYTHON):
	python3 -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip

.PHONY: python-deps
python-deps: $(PYTHON) ## Install the project, its dev tools and the test harness (tools/) into .venv
	$(PYTHON) -m pip install -q -e '.[operator,api,dev]' -e ./tools

.PHONY: install
install: python-deps ## Install everything: Python deps, RabbitMQ, promtool, the Kubernetes test binaries
	$(RABBITMQ) install
	bash tools/prometheus/promtool.sh install
	bash tools/controlplane/build.sh

CLUSTER ?= auto

.PHONY: demo
demo: install rabbitmq-up ## Install, then the whole story (CLUSTER=auto|kind|local|current): chart, pool, burst, scale
	$(RUN) python -m itl_harness.demo_cluster --cluster $(CLUSTER)

.PHONY: demo-sdk
demo-sdk: python-deps rabbitmq-up ## The SDK alone: two worker processes and a burst of jobs (no cluster)
	$(RUN) python tools/demo.py

.PHONY: rabbitmq-up
rabbitmq-up: ## Start the local RabbitMQ on 127.0.0.1:5672 (idempotent)
	$(RABBITMQ) up

.PHONY: rabbitmq-down
rabbitmq-down: ## Stop the local RabbitMQ
	$(RABBITMQ) down

.PHONY: rabbitmq-cluster-up
rabbitmq-cluster-up: ## Start the local 3-node RabbitMQ cluster on 127.0.0.1:5701-5703 (idempotent)
	bash tools/rabbitmq/cluster.sh up

.PHONY: rabbitmq-cluster-down
rabbitmq-cluster-down: ## Stop the local RabbitMQ cluster and delete its data
	bash tools/rabbitmq/cluster.sh down

.PHONY: k8s-binaries
k8s-binaries: ## Build (or reuse) kube-apiserver, etcd, kwok, helm... in the cache
	bash tools/controlplane/build.sh

.PHONY: keda-binaries
keda-binaries: ## Build (or reuse) KEDA's operator and metrics server (benchmark only; long cold build)
	bash tools/keda/build.sh

.PHONY: cluster-up
cluster-up: k8s-binaries ## Start the local Kubernetes control plane (prints KUBECONFIG)
	$(RUN) python -m localcluster up

.PHONY: cluster-down
cluster-down: ## Stop the local Kubernetes control plane
	$(RUN) python -m localcluster down

.PHONY: generate
generate: ## Regenerate every derived file: the CRD and its copies, the field reference, RBAC
	$(RUN) python tools/generate.py

IMAGE_TAG ?= dev

.PHONY: install-docker
install-docker: ## Install Docker's engine, debootstrap and gcc from Debian (images and the kind tier)
	bash tools/docker/engine.sh install

.PHONY: images
images: install-docker ## Build itl-controlplane-{worker,operator}:$(IMAGE_TAG) (starts dockerd; offline base if needed)
	bash tools/images/build.sh project $(IMAGE_TAG)

.PHONY: kind-images
kind-images: install-docker k8s-binaries ## Build (or reuse) kind, its node image and the in-cluster broker image
	bash tools/kind/build.sh

.PHONY: helm-lint
helm-lint: k8s-binaries ## helm lint --strict the chart
	"$$(bash tools/controlplane/build.sh --print-bin-dir)/helm" lint --strict charts/workerpool-operator

.PHONY: e2e
e2e: python-deps rabbitmq-up k8s-binaries ## The install story on the local control plane (also part of `make test`)
	$(RUN) pytest -q -p no:cacheprovider e2e

.PHONY: e2e-kind
e2e-kind: python-deps kind-images ## The e2e suite on kind: real pods from the project's images
	$(RUN) bash e2e/kind.sh

.PHONY: lint
lint: ## ruff, mypy --strict, the import-linter contracts and no stale generated file
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy
	$(RUN) lint-imports
	$(RUN) python tools/generate.py --check

.PHONY: chaos
chaos: python-deps ## Fault injection: SIGKILL storms, broker stop/kill, poison, drain (own broker node; also in `make test`)
	$(RABBITMQ) install
	$(RUN) pytest -q -s -p no:cacheprovider tests/chaos

.PHONY: test-unit
test-unit: ## Unit tests only (pure logic, milliseconds, no services)
	$(RUN) pytest tests/unit -q

.PHONY: test
test: python-deps rabbitmq-up rabbitmq-cluster-up k8s-binaries lint ## The whole suite: lint, unit, integration (real RabbitMQ, 3-node cluster, control plane), chaos, e2e
	$(RUN) pytest -q -p no:cacheprovider

.PHONY: test-cluster
test-cluster: python-deps rabbitmq-up rabbitmq-cluster-up ## The cluster tier alone (also in `make test`): node loss, rolling restart, replicated mode
	$(RUN) pytest -q -p no:cacheprovider tests/integration/cluster

.PHONY: bench-peers
bench-peers: ## Install the benchmark's peers (dramatiq, taskiq, Celery, FastStream) in their own venv, and redis-server
	bash tools/bench/peers.sh install

.PHONY: bench
bench: python-deps rabbitmq-up bench-peers ## Throughput/latency: ours vs raw aio-pika, dramatiq, taskiq, Celery, FastStream
	$(RUN) python bench/throughput.py

.PHONY: bench-cluster
bench-cluster: python-deps rabbitmq-up rabbitmq-cluster-up ## Jobs/s and p99: one node (classic) vs the 3-node cluster (replicated)
	$(RUN) python bench/cluster.py

.PHONY: bench-operator
bench-operator: python-deps rabbitmq-up k8s-binaries ## Operator: 100 pools reconciled; autoscaler reaction and polling cost
	$(RUN) python bench/operator_reconcile.py --pools 100
	$(RUN) python bench/autoscaler_reaction.py --trials 20
	$(RUN) python bench/autoscaler_polling.py --poll-interval 5

.PHONY: bench-keda
bench-keda: python-deps k8s-binaries keda-binaries ## The autoscaler and KEDA side by side (own broker node; about 20 min)
	$(RUN) python bench/keda_compare.py --profile defaults
	$(RUN) python bench/keda_compare.py --profile fast
