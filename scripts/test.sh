#!/usr/bin/env bash
# Runs the whole test suite: unit tests (ctest), oracle and API tests (pytest),
# then the unit tests again and the fuzzers (bounded time) under ASan+UBSan.
# Installs and builds first.
# FUZZ_SECONDS (default 60) bounds each fuzzer's run.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS=${JOBS:-$(nproc)}
export VELO_MODEL_CACHE=${VELO_MODEL_CACHE:-$HOME/.cache/velollm/models}

scripts/install.sh

echo "==> unit tests"
ctest --test-dir build --output-on-failure -j"$JOBS"

echo "==> oracle and API tests"
VELO_BIN="$PWD/build/velollm" .venv/bin/python -m pytest -q tests/python

echo "==> sanitizers (unit tests and fuzzers under ASan + UBSan)"
scripts/sanitize.sh "${FUZZ_SECONDS:-60}"
echo "==> all tests passed"
