#!/usr/bin/env bash
# Runs on the GPU machine, from the repository root, with .device/ (made by
# scripts/cuda_stage.sh) carried along. Steps, in the order given:
#   tests    test_cuda: every kernel against the CPU backend, and the forward
#            pass end to end (greedy 64 tokens on velo-code-40m and SmolLM2)
#   kernels  bench_cuda_matmul: matvec GB/s and GEMM TFLOP/s per weight type
#   llama    builds llama.cpp's CUDA llama-bench/llama-batched-bench from the
#            carried source when no built binaries were carried (background)
#   bench    writes 8B-shaped synthetic models (velollm synth) and runs
#            velollm bench-gpu beside llama.cpp on them
# Files kept between calls to a warm machine live in /root/velo; logs and
# figures go to $OUT (the device tool brings them back).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/velo-out}
KEEP=/root/velo
mkdir -p "$OUT" "$KEEP/bin" "$KEEP/models"
[ -f .device/bin.tar.gz ] && tar -C "$KEEP/bin" -xzf .device/bin.tar.gz
[ -d .device/models ] && cp -f .device/models/* "$KEEP/models/" 2>/dev/null
[ -f .device/llama-src.tar.gz ] && cp -f .device/llama-src.tar.gz "$KEEP/"
M=$KEEP/models
if [ -f "$M/smol.part1" ] && [ -f "$M/smol.part2" ] && [ -f "$M/smol.part3" ] && [ -f "$M/smol.part4" ]; then
  cat "$M"/smol.part[1-4] > "$M/SmolLM2-135M-Instruct.Q4_1.gguf" && rm -f "$M"/smol.part*
fi
export VELO_MODEL_CACHE=$M
export LD_LIBRARY_PATH=$KEEP/bin/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
B=$KEEP/bin
nvidia-smi --query-gpu=name,memory.total,memory.used,driver_version,clocks.sm,clocks.max.sm --format=csv,noheader
ls "$M"

build_llama() {
  [ -x "$B/llama-bench" ] && [ -x "$B/llama-batched-bench" ] && return 0
  [ -f "$KEEP/llama-src.tar.gz" ] || { echo "no llama.cpp binaries or source carried"; return 1; }
  mkdir -p "$KEEP/llama" && tar -C "$KEEP/llama" -xzf "$KEEP/llama-src.tar.gz"
  cmake -S "$KEEP/llama/llama.cpp" -B "$KEEP/llama/build" -DCMAKE_BUILD_TYPE=Release -DGGML_CUDA=ON \
    -DCMAKE_CUDA_ARCHITECTURES=90 -DGGML_NATIVE=ON -DGGML_CUDA_NCCL=OFF -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DBUILD_SHARED_LIBS=OFF -DLLAMA_OPENSSL=OFF >/dev/null &&
    cmake --build "$KEEP/llama/build" -j"$(nproc)" --target llama-bench llama-batched-bench >"$KEEP/llama/build.log" 2>&1 &&
    cp "$KEEP/llama/build/bin/llama-bench" "$KEEP/llama/build/bin/llama-batched-bench" "$B/"
}

for step in "$@"; do
  echo "==> $step"
  case "$step" in
    tests)
      # A hung kernel must not eat the device lease: stop after TEST_TIMEOUT seconds.
      timeout -k 5 "${TEST_TIMEOUT:-300}" "$B/test_cuda" --gtest_filter="${FILTER:-*}" 2>&1 | tee "$OUT/test_cuda.log" | grep -E "^\[  (FAILED|PASSED|  OK|SKIPPED) |^  |Failure|error|Expected|Which is|actual" | head -150
      ;;
    kernels)
      "$B/bench_cuda_matmul" 2>&1 | tee "$OUT/kernels.txt"
      ;;
    llama)  # in its own session, so it outlives this call while the machine stays warm
      rm -f "$KEEP/llama.done"
      export -f build_llama
      export KEEP B
      setsid bash -c 'build_llama; echo "llama.cpp build exit $?" > "$KEEP/llama.done"' </dev/null >/dev/null 2>&1 &
      ;;
    wait-llama)
      for _ in $(seq 1 540); do [ -f "$KEEP/llama.done" ] && break; sleep 1; done
      cat "$KEEP/llama.done" 2>/dev/null || echo "llama.cpp build still running"
      tail -n 3 "$KEEP/llama/build.log" 2>/dev/null
      ;;
    synth)
      for t in ${SYNTH_TYPES:-bf16 q4_k}; do
        f=$M/llama-3.1-8b-$t.gguf
        vocab=$M/velo-code-40m.Q8_0.gguf
        [ -f "$vocab" ] || vocab=$(ls "$M"/velo-code-40m.*.gguf "$M"/SmolLM2*.gguf 2>/dev/null | head -n 1)
        [ -f "$f" ] || "$B/velollm" synth --preset llama-3.1-8b --type "$t" --vocab-from "$vocab" -o "$f"
      done
      ls -la "$M"
      ;;
    bench)
      args=()
      for t in ${SYNTH_TYPES:-bf16 q4_k}; do args+=(-m "$M/llama-3.1-8b-$t.gguf"); done
      llama=none
      [ -x "$B/llama-bench" ] && llama=$B
      "$B/velollm" bench-gpu "${args[@]}" --llama-bin "$llama" --json "$OUT/bench.json" ${BENCH_ARGS:-} 2>&1 | tee "$OUT/bench.txt"
      ;;
    memcheck8b)  # compute-sanitizer on a few decode steps of the full 32-layer model
      f=$M/llama-3.1-8b-bf16.gguf
      compute-sanitizer --tool memcheck --print-limit 5 "$B/velollm" run -m "$f" --device cuda -p "hello" -n 3 -v 2>&1 | grep -v "loading weights" | tail -n 30
      ;;
    memcheck)  # compute-sanitizer over the benchmark's code paths on a 2-layer 8B-shaped model
      for t in ${SYNTH_TYPES:-bf16 q4_k}; do
        f=$M/l8b-2layers-$t.gguf
        [ -f "$f" ] || "$B/velollm" synth --preset llama-3.1-8b --layers 2 --type "$t" --vocab-from "$M/velo-code-40m.Q8_0.gguf" -o "$f" 2>&1 | tail -n 1
        compute-sanitizer --tool memcheck --print-limit 5 "$B/velollm" bench-gpu -m "$f" --tg 4 --ttft 40,300 \
          --concurrency 2,9 --conc-prompt 20 --conc-gen 3 -r 1 --llama-bin none 2>&1 | tail -n 40
      done
      ;;
    *) echo "unknown step '$step'" ;;
  esac
done
