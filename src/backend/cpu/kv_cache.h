// Paged KV storage for the CPU backend. Per layer, K and V are each
// [num_blocks][block_size][n_kv_heads][head_dim] halves (F16, llama.cpp's
// default cache type, so attention numerics match the oracle). Which blocks
// a sequence owns is the scheduler's business: we only read and write
// through the block tables it hands us.
#pragma once
#include <cstdint>
#include <vector>

#include "core/result.h"

namespace velo::cpu {

// One layer's K and V as raw pointers plus geometry (what the kernels need).
struct KvLayerView {
  uint16_t* k = nullptr;
  uint16_t* v = nullptr;
  int32_t block_size = 0;
  int32_t n_kv_heads = 0;
  int32_t head_dim = 0;
  int64_t row_elems() const { return static_cast<int64_t>(n_kv_heads) * head_dim; }
  // Halves of token slot `slot` of block `block` (all kv heads).
  uint16_t* k_at(int32_t block, int32_t slot) const {
    return k + (static_cast<int64_t>(block) * block_size + slot) * row_elems();
  }
  uint16_t* v_at(int32_t block, int32_t slot) const {
    return v + (static_cast<int64_t>(block) * block_size + slot) * row_elems();
  }
};

class KvCache {
 public:
  // Allocates n_layers x 2 x num_blocks x block_size x n_kv_heads x head_dim halves.
  static Result<KvCache> create(int32_t n_layers, int32_t num_blocks, int32_t block_size,
                                int32_t n_kv_heads, int32_t head_dim);
  KvCache() = default;

  int32_t num_blocks() const { return num_blocks_; }
  int32_t block_size() const { return block_size_; }
  uint64_t bytes() const { return static_cast<uint64_t>(k_.size() + v_.size()) * 2; }

  KvLayerView layer(int32_t il) {
    return KvLayerView{k_.data() + il * layer_elems_, v_.data() + il * layer_elems_,
                       block_size_, n_kv_heads_, head_dim_};
  }
  // Copies block src's K/V (every layer) into block dst. Ids must be in range.
  void copy_block(int32_t src, int32_t dst);

 private:
  int32_t n_layers_ = 0, num_blocks_ = 0, block_size_ = 0, n_kv_heads_ = 0, head_dim_ = 0;
  int64_t layer_elems_ = 0;  // halves per layer for K (same for V)
  std::vector<uint16_t> k_, v_;
};

// Store one token's K and V rows (f32, [n_kv_heads * head_dim]) at position
// `pos` of the sequence whose block table is `blocks`, rounding to F16.
void kv_store(const KvLayerView& kv, const int32_t* blocks, int32_t pos, const float* k, const float* v);

}  // namespace velo::cpu
