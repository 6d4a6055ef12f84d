// `velollm quantize IN.gguf OUT.gguf TYPE [--threads N]`: rewrite a model's
// weight matrices in another type, tensor by tensor (memory stays around one
// output chunk plus one row per thread, whatever the model size).
//
// Policy (as llama.cpp's): 2-D+ tensors named "*weight" (norms excluded) become
// TYPE; when their row length is not a whole number of TYPE blocks they fall
// back to a compatible type (reported); 1-D tensors (norms, biases) are stored
// as F32; integer tensors and tensors already in their output type are copied.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <unistd.h>
#include <vector>

#include "command.h"
#include "core/checked.h"
#include "gguf/file_type.h"
#include "gguf/gguf.h"
#include "gguf/utf8.h"
#include "gguf/writer.h"
#include "quant/quant.h"

namespace {

using namespace velo;
using gguf::File;
using gguf::TensorInfo;

constexpr GgmlType kTargets[] = {GgmlType::F32,  GgmlType::F16,  GgmlType::BF16, GgmlType::Q4_0, GgmlType::Q4_1,
                                 GgmlType::Q5_0, GgmlType::Q5_1, GgmlType::Q8_0, GgmlType::Q2_K, GgmlType::Q3_K,
                                 GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K};
constexpr uint64_t kChunkBytes = 8u << 20;  // output bytes converted per step

std::string target_list() {
  std::string s;
  for (GgmlType t : kTargets) s += (s.empty() ? "" : ", ") + type_name(t);
  return s;
}

bool is_integer(GgmlType t) {
  return t == GgmlType::I8 || t == GgmlType::I16 || t == GgmlType::I32 || t == GgmlType::I64;
}

size_t effective_dims(const TensorInfo& t) {
  size_t n = t.ne.size();
  while (n > 1 && t.ne[n - 1] == 1) --n;
  return n;
}

bool fits(GgmlType t, uint64_t row) { return row % type_traits(t)->block_elems == 0; }

// Next type to try when rows do not fit `t`'s blocks: K-quants step to a
// 32-element format of similar quality, 32-element formats to F16.
GgmlType fallback(GgmlType t) {
  switch (t) {
    case GgmlType::Q2_K: case GgmlType::Q3_K: return GgmlType::Q4_0;
    case GgmlType::Q4_K: return GgmlType::Q5_0;
    case GgmlType::Q5_K: return GgmlType::Q5_1;
    case GgmlType::Q6_K: return GgmlType::Q8_0;
    default: return GgmlType::F16;
  }
}

struct Step {
  const TensorInfo* src;
  GgmlType out;
  std::string note;  // why `out` differs from the target, if it does
};

Result<Step> plan_tensor(const TensorInfo& t, GgmlType target) {
  const std::string name = gguf::printable(t.name);
  Step s{&t, t.type, ""};
  if (is_integer(t.type)) return s;  // ids/indices: never converted
  const bool matrix = effective_dims(t) >= 2 && t.name.ends_with("weight") && t.name.find("_norm") == std::string_view::npos;
  if (!matrix) {
    s.out = GgmlType::F32;
  } else {
    s.out = target;
    while (!fits(s.out, t.ne[0])) {
      const GgmlType next = fallback(s.out);
      s.note = "row length " + std::to_string(t.ne[0]) + " is not a multiple of the " + type_name(s.out) +
               " block size " + std::to_string(type_traits(s.out)->block_elems) + ", using " + type_name(next);
      s.out = next;
    }
  }
  if (s.out != t.type && !quant::can_dequantize(t.type))
    return make_error("tensor '" + name + "' is " + type_name(t.type) + ", which velollm cannot convert");
  return s;
}

// Converts rows [r0, r1) of `s` into `out` (row-major, output row size `out_row`).
Status convert_rows(const Step& s, uint64_t r0, uint64_t r1, uint8_t* out, uint64_t out_row, std::vector<float>& buf) {
  const uint64_t n = s.src->ne[0];
  const uint64_t in_row = *row_bytes(s.src->type, n);
  for (uint64_t r = r0; r < r1; ++r) {
    VELO_TRY(quant::dequantize_row(s.src->type, s.src->data + r * in_row, buf.data(), static_cast<int64_t>(n)));
    VELO_TRY(quant::quantize_row(s.out, buf.data(), out + (r - r0) * out_row, static_cast<int64_t>(n)));
  }
  return {};
}

// Streams one converted tensor to `emit`, kChunkBytes of output at a time,
// each chunk's rows split across `threads` workers.
Status convert_tensor(const Step& s, unsigned threads, const gguf::Writer::Emit& emit) {
  const uint64_t n = s.src->ne[0];
  const uint64_t rows = s.src->n_elements / n;
  const uint64_t out_row = *row_bytes(s.out, n);
  const uint64_t chunk_rows = std::max<uint64_t>(1, kChunkBytes / out_row);
  std::vector<uint8_t> out(std::min(rows, chunk_rows) * out_row);
  std::vector<std::vector<float>> bufs(threads, std::vector<float>(n));
  for (uint64_t c0 = 0; c0 < rows; c0 += chunk_rows) {
    const uint64_t c1 = std::min(rows, c0 + chunk_rows);
    const uint64_t per = (c1 - c0 + threads - 1) / threads;
    std::mutex mu;
    Status first_error;
    std::vector<std::thread> pool;
    for (unsigned w = 0; w < threads; ++w) {
      const uint64_t r0 = c0 + w * per, r1 = std::min(c1, r0 + per);
      if (r0 >= r1) break;
      pool.emplace_back([&, w, r0, r1] {
        Status st = convert_rows(s, r0, r1, out.data() + (r0 - c0) * out_row, out_row, bufs[w]);
        std::lock_guard lock(mu);
        if (!st.ok() && first_error.ok()) first_error = st;
      });
    }
    for (auto& th : pool) th.join();
    VELO_TRY(first_error);
    VELO_TRY(emit({out.data(), (c1 - c0) * out_row}));
  }
  return {};
}

struct Options {
  std::string in, out, type;
  unsigned threads = 0;
};

int run_quantize(const Options& o) {
  auto target = type_from_name(o.type);
  if (!target || std::find(std::begin(kTargets), std::end(kTargets), *target) == std::end(kTargets))
    return cli::fail("unknown or unsupported output type '" + gguf::printable(o.type) + "' (choose one of " +
                     target_list() + ")");
  auto in = File::open(o.in);
  if (!in.ok()) return cli::fail(in.message());
  std::error_code ec;
  if (std::filesystem::exists(o.out, ec) && std::filesystem::equivalent(o.in, o.out, ec))
    return cli::fail("output " + o.out + " is the input file; choose another path");
  const File& f = **in;

  std::vector<Step> steps;
  for (const auto& t : f.tensors()) {
    auto s = plan_tensor(t, *target);
    if (!s.ok()) return cli::fail(s.message());
    steps.push_back(std::move(*s));
  }

  for (const auto& s : steps)
    if (s.out != s.src->type && type_traits(s.src->type)->block_elems > 1) {
      std::fprintf(stderr, "note: %s is already quantized (%s); requantizing loses more accuracy than "
                           "quantizing from F16/F32\n", o.in.c_str(), type_name(s.src->type).c_str());
      break;
    }
  gguf::Writer w(f.alignment());
  for (const auto& kv : f.metadata()) w.set(std::string(kv.key), gguf::OwnedValue::from(kv.value));
  if (auto ft = gguf::file_type_for(*target)) w.set("general.file_type", gguf::OwnedValue::u32(*ft));
  if (type_traits(*target)->block_elems > 1) w.set("general.quantization_version", gguf::OwnedValue::u32(2));
  for (const auto& s : steps) {
    auto st = w.declare_tensor(std::string(s.src->name), s.out, s.src->ne);
    if (!st.ok()) return cli::fail(st.message());
  }

  const unsigned threads = o.threads ? o.threads : std::max(1u, std::thread::hardware_concurrency());
  const std::string tmp = o.out + ".tmp-" + std::to_string(::getpid());
  const auto t0 = std::chrono::steady_clock::now();
  auto st = w.write_streaming(tmp, [&](size_t i, const gguf::Writer::Emit& emit) -> Status {
    const Step& s = steps[i];
    std::string shape;
    for (size_t d = 0; d < s.src->ne.size(); ++d) shape += (d ? "x" : "") + std::to_string(s.src->ne[d]);
    std::fprintf(stderr, "[%zu/%zu] %-32s %-9s %s -> %s%s%s\n", i + 1, steps.size(), gguf::printable(s.src->name).c_str(),
                 shape.c_str(), type_name(s.src->type).c_str(), type_name(s.out).c_str(),
                 s.note.empty() ? "" : "  (", s.note.empty() ? "" : (s.note + ")").c_str());
    if (s.out == s.src->type) return emit({s.src->data, s.src->n_bytes});
    return convert_tensor(s, threads, emit);
  });
  if (!st.ok()) {
    std::remove(tmp.c_str());
    return cli::fail(st.message());
  }
  std::filesystem::rename(tmp, o.out, ec);
  if (ec) {
    std::remove(tmp.c_str());
    return cli::fail("cannot move " + tmp + " to " + o.out + ": " + ec.message());
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const auto out_size = std::filesystem::file_size(o.out, ec);
  std::fprintf(stderr, "wrote %s: %.2f MiB -> %.2f MiB (%s), %.1f s, %u threads\n", o.out.c_str(),
               f.file_size() / 1048576.0, out_size / 1048576.0, type_name(*target).c_str(), secs, threads);
  return 0;
}

const bool registered = cli::register_command(
    {"quantize", "Convert a GGUF model's weights to another type (F16, Q8_0, Q4_K, ...)", 30,
     [](CLI::App& sub) -> std::function<int()> {
       auto o = std::make_shared<Options>();
       sub.add_option("input", o->in, "GGUF model to read")->required();
       sub.add_option("output", o->out, "GGUF file to write")->required();
       sub.add_option("type", o->type, "weight type: " + target_list())->required();
       sub.add_option("--threads,-t", o->threads, "worker threads (default: all hardware threads)")
           ->check(CLI::Range(1u, 1024u));
       return [o] { return run_quantize(*o); };
     }});

}  // namespace
