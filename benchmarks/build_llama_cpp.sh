#!/usr/bin/env bash
# Build llama.cpp's llama-batched-bench and llama-perplexity for benchmarks/generate_throughput.py.
#
#     benchmarks/build_llama_cpp.sh            # into .cache/llama.cpp/bin (about 15 minutes on 2 cores)
#     benchmarks/build_llama_cpp.sh /opt/llama.cpp   # DEST is relative to the repository root unless absolute
#     .venv/bin/python benchmarks/generate_throughput.py --llama-cpp .cache/llama.cpp/bin
#
# Optional, and never part of the set-up: taletune does not use llama.cpp. The source is
# the one llama-cpp-python's sdist vendors, fetched from PyPI (the package index is the
# one place this machine reaches), pinned so that the figures in docs/benchmarks.md can
# be made again. Needs cmake and a C++ compiler (apt-get install cmake g++).
set -euo pipefail

VERSION=0.3.36
cd "$(dirname "$0")/.."  # the repository root: DEST and PYTHON are relative to it
DEST=${1:-.cache/llama.cpp}
PYTHON=${PYTHON:-.venv/bin/python}
for tool in cmake c++; do
  command -v "$tool" >/dev/null || { echo "error: $tool is missing; install it (apt-get install cmake g++)" >&2; exit 1; }
done

mkdir -p "$DEST"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PYTHON" -m pip download --quiet --no-deps --no-binary llama-cpp-python "llama-cpp-python==$VERSION" -d "$work"
tar -xzf "$work/llama_cpp_python-$VERSION.tar.gz" -C "$work"
src="$work/llama_cpp_python-$VERSION/vendor/llama.cpp"
# GGML_NATIVE: the instructions of this CPU (AVX2 here, AVX512 where there is), as a user building it would get.
cmake -S "$src" -B "$work/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_SERVER=OFF -DBUILD_SHARED_LIBS=OFF >/dev/null
cmake --build "$work/build" -j "$(nproc)" --target llama-batched-bench llama-perplexity
mkdir -p "$DEST/bin"
cp "$work/build/bin/llama-batched-bench" "$work/build/bin/llama-perplexity" "$DEST/bin/"
echo "built: $DEST/bin/llama-batched-bench, $DEST/bin/llama-perplexity (llama.cpp from llama-cpp-python $VERSION)"
