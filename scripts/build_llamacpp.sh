#!/usr/bin/env bash
# Builds llama.cpp's llama-bench and llama-server (the reference figures for
# `velollm bench` and the server oracle tests) from the llama.cpp sources that
# the llama-cpp-python 0.3.36 source package vendors, into .cache/llama.cpp/.
# Idempotent: does nothing when both binaries exist for this version.
#   LLAMACPP_DIR  where to build (default: <repo>/.cache/llama.cpp)
#   JOBS          parallel compile jobs (default: nproc)
#   TARGETS       what to build (default: "llama-bench llama-server"; CI builds llama-bench only)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VERSION=0.3.36
DEST=${LLAMACPP_DIR:-$ROOT/.cache/llama.cpp}
JOBS=${JOBS:-$(nproc)}
TARGETS=${TARGETS:-llama-bench llama-server}
BIN=$DEST/build/bin

have=1
for t in $TARGETS; do [ -x "$BIN/$t" ] || have=0; done
if [ "$have" = 1 ] && [ -f "$DEST/.built-$VERSION" ]; then
  echo "llama.cpp tools already built: $BIN"
  exit 0
fi

PIP=pip3
[ -x "$ROOT/.venv/bin/pip" ] && PIP=$ROOT/.venv/bin/pip
mkdir -p "$DEST"
SDIST=$(ls "$DEST"/llama_cpp_python-$VERSION.tar.gz 2>/dev/null || true)
if [ -z "$SDIST" ]; then
  echo "==> downloading the llama-cpp-python $VERSION source package"
  "$PIP" download -q --no-binary :all: --no-deps --dest "$DEST" "llama-cpp-python==$VERSION"
  SDIST=$DEST/llama_cpp_python-$VERSION.tar.gz
fi
SRC=$DEST/llama_cpp_python-$VERSION
if [ ! -f "$SRC/vendor/llama.cpp/CMakeLists.txt" ]; then
  tar -xzf "$SDIST" -C "$DEST"
fi

echo "==> building $TARGETS (a few minutes)"
cmake -S "$SRC/vendor/llama.cpp" -B "$DEST/build" -DCMAKE_BUILD_TYPE=Release \
  -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
  -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TOOLS=ON -DBUILD_SHARED_LIBS=OFF >/dev/null
# shellcheck disable=SC2086
cmake --build "$DEST/build" -j"$JOBS" --target $TARGETS
touch "$DEST/.built-$VERSION"
echo "==> done: $TARGETS in $BIN"
