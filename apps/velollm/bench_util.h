// Helpers shared by `velollm bench` and `velollm bench-gpu`.
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/result.h"
#include "engine/model_runner.h"
#include "engine/step_plan.h"
#include "gguf/gguf.h"

namespace velo::cli {

// Samples (tokens/s, or ms) with their median, min and max.
struct Stats {
  std::vector<double> samples;
  double median = 0, min = 0, max = 0;
  bool ok() const { return !samples.empty(); }
};
Stats summarize(std::vector<double> s);

// Bytes of weights one generated token reads: every tensor, except that the
// token embedding is only gathered (one row) when a separate output matrix exists.
uint64_t weight_bytes_per_token(const gguf::File& f);

// Runs a program (no shell) and returns its stdout (and stderr with `with_stderr`, else discarded).
Result<std::string> capture(const std::vector<std::string>& argv, bool with_stderr = false);

// Fills plan.seqs[i] for one step of sequence i: `tokens` at positions
// [pos, pos + n), blocks [first_block, ...) contiguous, logits wanted.
void fill_seq(ScheduledSeq& s, uint64_t id, std::span<const int32_t> tokens, int32_t pos, int32_t first_block,
              int32_t block_size);

}  // namespace velo::cli
