#include "kv/kv_manager.h"

#include <string>

namespace velo::kv {

PrefixHit KvManager::find_prefix(std::span<const int32_t> tokens, int32_t limit) const {
  PrefixHit hit;
  hit.block_size = block_size();
  const int32_t bs = block_size();
  const int32_t n = std::min<int32_t>(limit, static_cast<int32_t>(tokens.size())) / bs;
  BlockHash parent = kRootHash;
  for (int32_t i = 0; i < n; ++i) {
    auto chunk = tokens.subspan(static_cast<size_t>(i) * bs, bs);
    const BlockHash h = hash_block(parent, chunk);
    auto b = pool_.lookup(h, parent, chunk);
    if (!b) break;
    hit.blocks.push_back(*b);
    hit.hashes.push_back(h);
    parent = h;
  }
  return hit;
}

bool KvManager::allocate(uint64_t seq, int32_t num_tokens, const PrefixHit* hit) {
  auto it = seqs_.find(seq);
  const bool fresh = it == seqs_.end() || it->second.blocks.empty();
  const bool use_hit = fresh && hit != nullptr && !hit->blocks.empty();
  const int32_t have = fresh ? 0 : static_cast<int32_t>(it->second.blocks.size());
  const int32_t from_hit = use_hit ? static_cast<int32_t>(hit->blocks.size()) : 0;
  const int32_t want = std::max(blocks_for(num_tokens), have + from_hit);
  const int32_t new_blocks = want - have - from_hit;
  // Hit blocks that are free right now leave the free list when touched.
  int32_t hit_free = 0;
  if (use_hit) {
    for (int32_t b : hit->blocks) hit_free += pool_.ref_count(b) == 0;
  }
  if (new_blocks + hit_free > pool_.num_free()) return false;
  if (new_blocks == 0 && from_hit == 0 && it != seqs_.end()) return true;

  Seq& s = seqs_[seq];
  if (use_hit) {
    for (size_t i = 0; i < hit->blocks.size(); ++i) {
      pool_.touch(hit->blocks[i]);
      s.blocks.push_back(hit->blocks[i]);
      s.hashes.push_back(hit->hashes[i]);
    }
  }
  for (int32_t i = 0; i < new_blocks; ++i) s.blocks.push_back(*pool_.allocate());
  return true;
}

void KvManager::commit(uint64_t seq, std::span<const int32_t> tokens, int32_t num_computed) {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return;
  Seq& s = it->second;
  const int32_t bs = block_size();
  const size_t full = std::min(static_cast<size_t>(num_computed / bs), s.blocks.size());
  while (s.hashes.size() < full) {
    const size_t i = s.hashes.size();
    const BlockHash parent = i == 0 ? kRootHash : s.hashes[i - 1];
    auto chunk = tokens.subspan(i * bs, bs);
    const BlockHash h = hash_block(parent, chunk);
    // A duplicate of an already cached block stays private; the chain goes on
    // with the hash, so later blocks are still found through the cached twin.
    pool_.register_full(s.blocks[i], h, parent, chunk);
    s.hashes.push_back(h);
  }
}

void KvManager::free(uint64_t seq) {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return;
  const auto& blocks = it->second.blocks;
  for (auto b = blocks.rbegin(); b != blocks.rend(); ++b) pool_.release(*b);
  seqs_.erase(it);
}

std::span<const int32_t> KvManager::block_table(uint64_t seq) const {
  auto it = seqs_.find(seq);
  if (it == seqs_.end()) return {};
  return it->second.blocks;
}

Status KvManager::check_invariants() const {
  VELO_TRY(pool_.check_invariants());
  std::vector<int32_t> owners(static_cast<size_t>(pool_.num_blocks()), 0);
  for (const auto& [id, s] : seqs_) {
    std::vector<char> mine(static_cast<size_t>(pool_.num_blocks()), 0);
    if (s.hashes.size() > s.blocks.size()) return make_error("seq " + std::to_string(id) + ": more hashes than blocks");
    for (int32_t b : s.blocks) {
      if (b < 0 || b >= pool_.num_blocks()) return make_error("seq " + std::to_string(id) + ": bad block id");
      if (mine[b]) return make_error("seq " + std::to_string(id) + " holds block " + std::to_string(b) + " twice");
      mine[b] = 1;
      ++owners[b];
    }
  }
  for (int32_t b = 0; b < pool_.num_blocks(); ++b) {
    if (owners[b] != pool_.ref_count(b)) {
      return make_error("block " + std::to_string(b) + ": ref " + std::to_string(pool_.ref_count(b)) + " but " +
                        std::to_string(owners[b]) + " owners");
    }
  }
  return {};
}

}  // namespace velo::kv
