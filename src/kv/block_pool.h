// BlockPool: the physical KV blocks of one model, with reference counts, an
// O(1) LRU free list and a hash -> block map for prefix reuse (vLLM v1 style).
//
// A block is either in use (ref > 0) or free (ref == 0, in the free list).
// A free block may still hold a cached full block of tokens: it stays findable
// by its hash until allocate() takes it from the list head and evicts it.
// Released blocks without a hash go to the head (reused first), released cached
// blocks to the tail, so the least recently used cached block is evicted first.
#pragma once
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/result.h"
#include "kv/block_hash.h"

namespace velo::kv {

class BlockPool {
 public:
  // num_blocks >= 1, block_size >= 1 (checked by the caller).
  BlockPool(int32_t num_blocks, int32_t block_size);

  int32_t num_blocks() const { return num_blocks_; }
  int32_t block_size() const { return block_size_; }
  int32_t num_free() const { return num_free_; }  // ref == 0, cached or not
  int32_t num_cached() const { return static_cast<int32_t>(by_hash_.size()); }
  // Fraction of blocks in use (ref > 0).
  double usage() const { return 1.0 - static_cast<double>(num_free_) / num_blocks_; }

  // A block with ref 1 and no hash, from the free-list head (evicting its cached
  // hash if it had one); nullopt when every block is in use.
  std::optional<int32_t> allocate();
  // Takes one more reference on a block (a prefix-cache hit): a free block
  // leaves the free list.
  void touch(int32_t block);
  // Drops one reference; at 0 the block joins the free list (see above).
  void release(int32_t block);

  // The cached block holding exactly `tokens` after the prefix `parent`, or nullopt.
  std::optional<int32_t> lookup(BlockHash hash, BlockHash parent, std::span<const int32_t> tokens) const;
  // Records that `block` (in use, full, computed) holds `tokens` after `parent`.
  // Keeps the existing entry when the hash is already cached (an identical
  // block computed twice, or a 64-bit collision): the block then stays uncached.
  // Returns whether the block is now cached under `hash`.
  bool register_full(int32_t block, BlockHash hash, BlockHash parent, std::span<const int32_t> tokens);
  // Drops every cached hash of free blocks (e.g. after the model's KV was reset).
  void clear_cache();

  // Prefix-cache statistics, in tokens.
  void record_query(int64_t queried, int64_t hit) { queries_ += queried; hits_ += hit; }
  uint64_t prefix_queries() const { return queries_; }
  uint64_t prefix_hits() const { return hits_; }

  int32_t ref_count(int32_t block) const { return meta_[block].ref; }
  std::optional<BlockHash> hash_of(int32_t block) const;
  // Free blocks from the LRU head (next to evict) to the tail.
  std::vector<int32_t> free_list() const;
  // Checks every internal invariant (for tests); the message says which broke.
  Status check_invariants() const;

 private:
  struct Meta {
    int32_t ref = 0;
    int32_t prev = -1, next = -1;  // free-list links (the sentinel is num_blocks_)
    bool in_free_list = false;
    bool cached = false;
    BlockHash hash = 0, parent = 0;
  };

  void list_unlink(int32_t b);
  void list_push_back(int32_t b);
  void list_push_front(int32_t b);
  void uncache(int32_t b);
  std::span<const int32_t> tokens_of(int32_t b) const {
    return {tokens_.data() + static_cast<size_t>(b) * block_size_, static_cast<size_t>(block_size_)};
  }

  int32_t num_blocks_, block_size_;
  int32_t num_free_ = 0;
  std::vector<Meta> meta_;         // num_blocks_ + 1 (the last one is the list sentinel)
  std::vector<int32_t> tokens_;    // tokens of cached blocks, block_size_ per block
  std::unordered_map<BlockHash, int32_t> by_hash_;
  uint64_t queries_ = 0, hits_ = 0;
};

}  // namespace velo::kv
