#!/usr/bin/env bash
# Builds the libFuzzer targets with clang + ASan/UBSan and runs each for SECONDS
# (default 60), starting from its seed corpus in tests/fuzz/<target>/.
# Any crash, leak or sanitizer report fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${1:-60}
JOBS=${JOBS:-$(nproc)}
cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER=clang \
  -DCMAKE_CXX_COMPILER=clang++ -DVELO_FUZZ=ON -DVELO_SANITIZE=ON -DVELO_CUDA=OFF \
  -DVELO_TESTS=OFF -DVELO_BENCH=OFF >/dev/null
cmake --build build-fuzz -j"$JOBS" --target velo_fuzzers
for bin in build-fuzz/fuzz/*_fuzz; do
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
  rm -f "$work.log"
  rm -rf "$work"
done
