// libFuzzer target: File::parse on arbitrary bytes, then every accessor on every
// key, every tensor's bytes, and a writer round trip of whatever parsed.
#include <cstdint>
#include <cstdlib>
#include <span>
#include <string>

#include "gguf/gguf.h"
#include "gguf/writer.h"

using namespace velo;
using namespace velo::gguf;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto r = File::parse(std::span<const uint8_t>(data, size));
  if (!r.ok()) {
    if (r.message().empty() || r.message().find('\n') != std::string::npos) std::abort();
    return 0;
  }
  const File& f = **r;
  volatile uint64_t sink = 0;
  for (const auto& kv : f.metadata()) {
    if (f.find(kv.key) != &kv.value) std::abort();
    if (auto x = f.get_uint(kv.key); x.ok()) sink = sink + *x;
    if (auto x = f.get_int(kv.key); x.ok()) sink = sink + static_cast<uint64_t>(*x);
    if (auto x = f.get_float(kv.key); x.ok()) sink = sink + (*x == 0.0);
    if (auto x = f.get_bool(kv.key); x.ok()) sink = sink + *x;
    if (auto x = f.get_string(kv.key); x.ok()) sink = sink + x->size();
    if (auto x = f.get_string_array(kv.key); x.ok())
      for (auto s : *x) sink = sink + (s.empty() ? 0 : static_cast<uint8_t>(s.back()));
    if (auto x = f.get_float_array(kv.key); x.ok()) sink = sink + x->size();
    if (auto x = f.get_int_array(kv.key); x.ok()) sink = sink + x->size();
    (void)f.get_uint_or(kv.key, 1);
    (void)f.get_float_or(kv.key, 1);
  }
  for (const auto& t : f.tensors()) {
    if (f.find_tensor(t.name) != &t) std::abort();
    // Touch the first and last byte: ASan flags any pointer the checks let slip.
    sink = sink + t.data[0] + t.data[t.n_bytes - 1];
  }
  // Whatever parsed must survive a write and parse back with the same content.
  Writer w(f.alignment());
  for (const auto& kv : f.metadata()) w.set(std::string(kv.key), OwnedValue::from(kv.value));
  for (const auto& t : f.tensors())
    if (!w.add_tensor(std::string(t.name), t.type, t.ne, {t.data, t.n_bytes}).ok()) std::abort();
  const auto bytes = w.to_bytes();
  auto again = File::parse(bytes);
  if (!again.ok()) std::abort();
  if ((*again)->tensors().size() != f.tensors().size()) std::abort();
  for (const auto& kv : f.metadata())
    if (!(*again)->find(kv.key)) std::abort();
  return 0;
}
