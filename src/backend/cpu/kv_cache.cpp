#include "backend/cpu/kv_cache.h"

#include <algorithm>
#include <new>
#include <optional>
#include <string>

#include "backend/cpu/ops.h"
#include "core/checked.h"

namespace velo::cpu {

Result<KvCache> KvCache::create(int32_t n_layers, int32_t num_blocks, int32_t block_size,
                                int32_t n_kv_heads, int32_t head_dim) {
  if (n_layers <= 0 || num_blocks <= 0 || block_size <= 0 || n_kv_heads <= 0 || head_dim <= 0)
    return make_error("KV cache: every dimension must be positive");
  auto per_layer = checked_mul(static_cast<uint64_t>(num_blocks), static_cast<uint64_t>(block_size));
  if (per_layer) per_layer = checked_mul(*per_layer, static_cast<uint64_t>(n_kv_heads) * head_dim);
  std::optional<uint64_t> total;
  if (per_layer) total = checked_mul(*per_layer, static_cast<uint64_t>(n_layers) * 4);  // K+V, 2 bytes each
  if (!total || *total > (uint64_t{1} << 40))
    return make_error("KV cache too large: reduce ctx_size, max_seqs or num_kv_blocks");
  KvCache c;
  c.n_layers_ = n_layers;
  c.num_blocks_ = num_blocks;
  c.block_size_ = block_size;
  c.n_kv_heads_ = n_kv_heads;
  c.head_dim_ = head_dim;
  c.layer_elems_ = static_cast<int64_t>(*per_layer);
  try {
    c.k_.resize(static_cast<size_t>(*per_layer) * n_layers);
    c.v_.resize(static_cast<size_t>(*per_layer) * n_layers);
  } catch (const std::bad_alloc&) {
    return make_error("KV cache: out of memory allocating " + std::to_string(*total >> 20) + " MiB");
  }
  return c;
}

void KvCache::copy_block(int32_t src, int32_t dst) {
  const int64_t blk = static_cast<int64_t>(block_size_) * n_kv_heads_ * head_dim_;
  for (int32_t il = 0; il < n_layers_; ++il) {
    const int64_t base = il * layer_elems_;
    std::copy_n(k_.data() + base + src * blk, blk, k_.data() + base + dst * blk);
    std::copy_n(v_.data() + base + src * blk, blk, v_.data() + base + dst * blk);
  }
}

void kv_store(const KvLayerView& kv, const int32_t* blocks, int32_t pos, const float* k, const float* v) {
  const int32_t block = blocks[pos / kv.block_size];
  const int32_t slot = pos % kv.block_size;
  const int n = static_cast<int>(kv.row_elems());
  to_f16(k, kv.k_at(block, slot), n);
  to_f16(v, kv.v_at(block, slot), n);
}

}  // namespace velo::cpu
