#!/usr/bin/env bash
# Runs the whole test suite: unit tests (ctest), oracle and API tests (pytest),
# then the unit tests again and the fuzzers (bounded time) under ASan+UBSan.
# Installs and builds first.
# FUZZ_SECONDS (default 60) bounds each fuzzer's run; VELO_BENCH=0 skips the benchmark.
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

# Benchmark beside llama.cpp's llama-bench built from the same source (VELO_BENCH=0 skips it).
if [ "${VELO_BENCH:-1}" = 1 ]; then
  echo "==> benchmark: velollm vs llama.cpp, single stream (1 thread: fair on a shared machine)"
  TARGETS=llama-bench scripts/build_llamacpp.sh
  mkdir -p out
  build/velollm bench --reps 3 --threads 1 | tee out/bench.txt
fi
echo "==> all tests passed"
