#!/usr/bin/env bash
# The sanitizer pass of the test suite: builds the unit tests and the libFuzzer
# targets with clang + ASan + UBSan (one build, build-asan/), runs every unit
# test under the sanitizers, then each fuzzer for SECONDS (default 60) from its
# seed corpus in tests/fuzz/<target>/. Any crash, leak or sanitizer report fails.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-60}
JOBS=${JOBS:-$(nproc)}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ -DVELO_FUZZ=ON -DVELO_SANITIZE=ON -DVELO_CUDA=OFF \
  -DVELO_TESTS=ON -DVELO_BENCH=OFF >/dev/null
cmake --build build-asan -j"$JOBS"

echo "--- unit tests under ASan + UBSan"
ctest --test-dir build-asan --output-on-failure -j"$JOBS"

total=0
for bin in build-asan/fuzz/*_fuzz; do
  name=$(basename "$bin")
  corpus=tests/fuzz/${name%_fuzz}
  work=$(mktemp -d)
  seeds=(); [ -d "$corpus" ] && seeds=("$corpus")
  echo "--- $name for ${SECONDS_EACH}s"
  rc=0
  "$bin" -max_total_time="$SECONDS_EACH" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 "$work" "${seeds[@]}" >"$work.log" 2>&1 || rc=$?
  grep -E 'stat::number_of_executed_units|stat::peak_rss_mb|ERROR|SUMMARY' "$work.log" || true
  if [ "$rc" -ne 0 ]; then tail -50 "$work.log"; echo "$name FAILED (exit $rc)"; exit 1; fi
  rm -rf "$work" "$work.log"
  total=$((total + SECONDS_EACH))
done
echo "--- fuzzers: ${total}s in total, no findings"
