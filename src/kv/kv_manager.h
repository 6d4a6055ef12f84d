// KvManager: the KV blocks of each sequence on top of one BlockPool.
//
// A sequence's block table grows as its computed tokens grow; blocks that
// become full (and computed) are registered under hash(parent, tokens) so later
// sequences with the same prefix share them by reference count. Only full
// blocks are ever shared, so a shared block is never written again.
#pragma once
#include <cstdint>
#include <span>
#include <unordered_map>
#include <vector>

#include "core/result.h"
#include "kv/block_hash.h"
#include "kv/block_pool.h"

namespace velo::kv {

// Cached blocks found for the start of a token sequence (no references taken yet).
struct PrefixHit {
  std::vector<int32_t> blocks;
  std::vector<BlockHash> hashes;  // hash chain of those blocks
  int32_t num_tokens() const { return static_cast<int32_t>(blocks.size()) * block_size; }
  int32_t block_size = 0;
};

class KvManager {
 public:
  KvManager(int32_t num_blocks, int32_t block_size) : pool_(num_blocks, block_size) {}

  BlockPool& pool() { return pool_; }
  const BlockPool& pool() const { return pool_; }
  int32_t block_size() const { return pool_.block_size(); }
  int32_t blocks_for(int32_t num_tokens) const { return (num_tokens + block_size() - 1) / block_size(); }

  // The longest run of cached full blocks that starts `tokens` and lies within
  // its first `limit` tokens. Callers pass limit = num_tokens - 1 so the last
  // known token is always recomputed (its logits are needed).
  PrefixHit find_prefix(std::span<const int32_t> tokens, int32_t limit) const;

  // Makes `seq`'s block table cover positions [0, num_tokens). On a sequence
  // with no blocks yet, `hit` (from find_prefix) supplies the leading blocks.
  // All or nothing: returns false and changes nothing when the pool is short.
  bool allocate(uint64_t seq, int32_t num_tokens, const PrefixHit* hit = nullptr);
  // Registers the blocks of `seq` that are full within tokens[0, num_computed).
  void commit(uint64_t seq, std::span<const int32_t> tokens, int32_t num_computed);
  // Releases every block of `seq` (tail first, so its tail is evicted first).
  void free(uint64_t seq);

  bool has(uint64_t seq) const { return seqs_.count(seq) != 0; }
  std::span<const int32_t> block_table(uint64_t seq) const;
  size_t num_seqs() const { return seqs_.size(); }

  // Pool invariants, plus: every block's ref count equals the number of
  // sequences that hold it, and no sequence holds a block twice.
  Status check_invariants() const;

 private:
  struct Seq {
    std::vector<int32_t> blocks;
    std::vector<BlockHash> hashes;  // hashes of blocks[0, hashes.size()), all full and computed
  };
  BlockPool pool_;
  std::unordered_map<uint64_t, Seq> seqs_;
};

}  // namespace velo::kv
