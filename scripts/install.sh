#!/usr/bin/env bash
# Installs everything velollm needs on Debian 12, then builds it. Idempotent.
#   1. Debian packages (compilers, libraries, Python)
#   2. .venv with the test-only Python packages and llama-cpp-python built from source
#   3. the real test models (scripts/fetch_models.py) into $VELO_MODEL_CACHE
#   4. a Release build in build/
# Set VELO_SKIP_VENV=1 to skip step 2 (a user who only wants to run models).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
JOBS=${JOBS:-$(nproc)}

APT_PACKAGES=(build-essential cmake g++ clang libclang-rt-14-dev pkg-config git ca-certificates
  nlohmann-json3-dev libcpp-httplib-dev libssl-dev zlib1g-dev libbrotli-dev libcli11-dev libcurl4-openssl-dev
  libgtest-dev libgmock-dev libbenchmark-dev python3 python3-venv python3-pip python3-dev)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "==> installing Debian packages: ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}"
fi

if [ "${VELO_SKIP_VENV:-0}" != 1 ]; then
  stamp=.venv/.velollm-stamp
  want="$(sha256sum requirements-test.txt scripts/install.sh | sha256sum | cut -c1-16)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "==> creating .venv (test oracles; llama-cpp-python builds from source, a few minutes)"
    python3 -m venv .venv
    .venv/bin/pip install -q --upgrade pip
    .venv/bin/pip install -q -r requirements-test.txt
    CMAKE_ARGS="-DGGML_NATIVE=ON -DLLAMA_CURL=OFF" CMAKE_BUILD_PARALLEL_LEVEL=$JOBS \
      .venv/bin/pip install -q --no-binary llama-cpp-python "llama-cpp-python==0.3.36"
    echo "$want" > "$stamp"
  fi
  PY=.venv/bin/python
else
  PY=python3
fi

echo "==> fetching models"
"$PY" scripts/fetch_models.py

echo "==> building velollm (Release)"
cmake -S . -B build -DCMAKE_BUILD_TYPE=Release ${VELO_CMAKE_ARGS:-} >/dev/null
cmake --build build -j"$JOBS"
echo "==> done: $ROOT/build/velollm"
