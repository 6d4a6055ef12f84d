#!/usr/bin/env bash
# Stages what a GPU machine needs into .device/ (git-ignored; carried by the
# device tool): the CUDA build of velollm, test_cuda and bench_cuda_matmul,
# llama.cpp's CUDA llama-bench / llama-batched-bench (or its trimmed source
# when they are not built yet), and the small test models.
#   scripts/cuda_stage.sh [models...]   models: velo-code (default), smol12, smol34
# SmolLM2 (94 MiB) is over one call's 64 MiB, so it travels in quarters, two
# per call (smol12, smol34), to the same warm machine; scripts/cuda_check.sh
# joins them. Calls that carry only model parts skip the build.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
STAGE=$ROOT/.device
MODELS=${VELO_MODEL_CACHE:-$HOME/.cache/velollm/models}
LLAMA=$ROOT/.cache/llama.cpp-cuda
rm -rf "$STAGE"
mkdir -p "$STAGE/bin" "$STAGE/models"

want_bins=1
case "${1:-}" in smol*) want_bins=0 ;; esac
if [ "$want_bins" = 1 ]; then
  # BUILD: the build directory (e.g. one configured with CMAKE_CUDA_ARCHITECTURES=90-real
  # builds faster when only the H100 will run it).
  BUILD=${BUILD:-build}
  cmake -S . -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DVELO_CUDA=ON >/dev/null
  TARGETS=${TARGETS:-velollm test_cuda bench_cuda_matmul bench_prefill_attention}
  # shellcheck disable=SC2086
  cmake --build "$BUILD" -j"$(nproc)" --target $TARGETS
  for t in $TARGETS; do
    b=$(find "$BUILD" -maxdepth 2 -type f -name "$t" -perm -u+x | head -n 1)
    [ -n "$b" ] && strip -o "$STAGE/bin/$t" "$b"
  done
  # Shared libraries from Debian's packages that a GPU image may lack (the CUDA ones it has).
  mkdir -p "$STAGE/bin/lib"
  for lib in $(ldd "$BUILD/velollm" | awk '/httplib|brotli/ {print $3}'); do cp -L "$lib" "$STAGE/bin/lib/"; done
  if [ -x "$LLAMA/build/bin/llama-bench" ] && [ -x "$LLAMA/build/bin/llama-batched-bench" ]; then
    strip -o "$STAGE/bin/llama-bench" "$LLAMA/build/bin/llama-bench"
    strip -o "$STAGE/bin/llama-batched-bench" "$LLAMA/build/bin/llama-batched-bench"
  elif [ -d "$LLAMA/llama_cpp_python-0.3.36/vendor/llama.cpp" ]; then
    # Not built here yet: send the sources the two tools need; cuda_check.sh builds them there.
    tar -C "$LLAMA/llama_cpp_python-0.3.36/vendor" -cf - --exclude='llama.cpp/models' --exclude='*/tools/ui' \
      --exclude='*/docs' --exclude='*/examples' --exclude='*/tests' --exclude='*/gguf-py' --exclude='*/media' \
      --exclude='*/ggml-sycl' --exclude='*/ggml-vulkan' --exclude='*/ggml-opencl' --exclude='*/ggml-cann' \
      --exclude='*/ggml-musa' --exclude='*/ggml-hip' --exclude='*/ggml-metal' --exclude='*/ggml-webgpu' \
      llama.cpp | gzip -6 > "$STAGE/llama-src.tar.gz"
  fi
fi
# Binaries compress about 4x: the call's 64 MiB limit then leaves room for a model.
if [ -n "$(ls "$STAGE/bin")" ]; then
  tar -C "$STAGE/bin" -cf - . | gzip -6 > "$STAGE/bin.tar.gz"
fi
rm -rf "$STAGE/bin"
for m in "${@:-velo-code}"; do
  case "$m" in
    velo-code) cp "$MODELS/velo-code-40m.Q8_0.gguf" "$STAGE/models/" ;;
    velo-code-q4)  # Q4_1 and Q4_K versions of velo-code: end-to-end checks of those kernels
      for t in Q4_1 Q4_K; do build/velollm quantize "$MODELS/velo-code-40m.Q8_0.gguf" "$STAGE/models/velo-code-40m.$t.gguf" $t >/dev/null; done ;;
    smol12 | smol34)
      q=$(( ($(stat -c %s "$MODELS/SmolLM2-135M-Instruct.Q4_1.gguf") + 3) / 4 ))
      first=${m:4:1}
      for i in $first $((first + 1)); do
        dd if="$MODELS/SmolLM2-135M-Instruct.Q4_1.gguf" of="$STAGE/models/smol.part$i" bs=$q skip=$((i - 1)) count=1 status=none
      done ;;
    *) echo "unknown model '$m' (velo-code, velo-code-q4, smol12, smol34)" >&2; exit 2 ;;
  esac
done
du -sh "$STAGE"
