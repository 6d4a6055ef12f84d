#include "kv/block_pool.h"

#include <algorithm>
#include <cassert>

namespace velo::kv {

BlockPool::BlockPool(int32_t num_blocks, int32_t block_size)
    : num_blocks_(num_blocks), block_size_(block_size),
      meta_(static_cast<size_t>(num_blocks) + 1),
      tokens_(static_cast<size_t>(num_blocks) * block_size, 0) {
  assert(num_blocks >= 1 && block_size >= 1);
  const int32_t s = num_blocks_;  // sentinel
  meta_[s].prev = meta_[s].next = s;
  by_hash_.reserve(static_cast<size_t>(num_blocks));
  for (int32_t b = 0; b < num_blocks_; ++b) list_push_back(b);
  num_free_ = num_blocks_;
}

void BlockPool::list_unlink(int32_t b) {
  Meta& m = meta_[b];
  assert(m.in_free_list);
  meta_[m.prev].next = m.next;
  meta_[m.next].prev = m.prev;
  m.prev = m.next = -1;
  m.in_free_list = false;
}

void BlockPool::list_push_back(int32_t b) {
  const int32_t s = num_blocks_;
  Meta& m = meta_[b];
  m.prev = meta_[s].prev;
  m.next = s;
  meta_[m.prev].next = b;
  meta_[s].prev = b;
  m.in_free_list = true;
}

void BlockPool::list_push_front(int32_t b) {
  const int32_t s = num_blocks_;
  Meta& m = meta_[b];
  m.next = meta_[s].next;
  m.prev = s;
  meta_[m.next].prev = b;
  meta_[s].next = b;
  m.in_free_list = true;
}

void BlockPool::uncache(int32_t b) {
  Meta& m = meta_[b];
  if (!m.cached) return;
  auto it = by_hash_.find(m.hash);
  assert(it != by_hash_.end() && it->second == b);
  by_hash_.erase(it);
  m.cached = false;
}

std::optional<int32_t> BlockPool::allocate() {
  const int32_t s = num_blocks_;
  const int32_t b = meta_[s].next;
  if (b == s) return std::nullopt;
  list_unlink(b);
  uncache(b);  // evicts the least recently used cached block
  meta_[b].ref = 1;
  --num_free_;
  return b;
}

void BlockPool::touch(int32_t b) {
  Meta& m = meta_[b];
  if (m.ref == 0) {
    list_unlink(b);
    --num_free_;
  }
  ++m.ref;
}

void BlockPool::release(int32_t b) {
  Meta& m = meta_[b];
  assert(m.ref > 0);
  if (--m.ref > 0) return;
  if (m.cached) {
    list_push_back(b);
  } else {
    list_push_front(b);
  }
  ++num_free_;
}

std::optional<int32_t> BlockPool::lookup(BlockHash hash, BlockHash parent,
                                         std::span<const int32_t> tokens) const {
  auto it = by_hash_.find(hash);
  if (it == by_hash_.end()) return std::nullopt;
  const int32_t b = it->second;
  if (meta_[b].parent != parent || tokens.size() != static_cast<size_t>(block_size_) ||
      !std::equal(tokens.begin(), tokens.end(), tokens_of(b).begin())) {
    return std::nullopt;  // a 64-bit collision: not the same block
  }
  return b;
}

bool BlockPool::register_full(int32_t b, BlockHash hash, BlockHash parent,
                              std::span<const int32_t> tokens) {
  Meta& m = meta_[b];
  assert(m.ref > 0 && tokens.size() == static_cast<size_t>(block_size_));
  if (m.cached) return m.hash == hash;
  if (by_hash_.count(hash)) return false;
  by_hash_.emplace(hash, b);
  m.cached = true;
  m.hash = hash;
  m.parent = parent;
  std::copy(tokens.begin(), tokens.end(), tokens_.begin() + static_cast<ptrdiff_t>(b) * block_size_);
  return true;
}

void BlockPool::clear_cache() {
  for (int32_t b = 0; b < num_blocks_; ++b) {
    if (meta_[b].ref == 0 && meta_[b].cached) {
      uncache(b);
      list_unlink(b);
      list_push_front(b);
    }
  }
}

std::optional<BlockHash> BlockPool::hash_of(int32_t b) const {
  if (!meta_[b].cached) return std::nullopt;
  return meta_[b].hash;
}

std::vector<int32_t> BlockPool::free_list() const {
  std::vector<int32_t> out;
  const int32_t s = num_blocks_;
  for (int32_t b = meta_[s].next; b != s && static_cast<int32_t>(out.size()) <= num_blocks_; b = meta_[b].next) {
    out.push_back(b);
  }
  return out;
}

Status BlockPool::check_invariants() const {
  const int32_t s = num_blocks_;
  // Walk the list both ways: links consistent, only ref-0 blocks, no cycles.
  int32_t n = 0, last = s;
  std::vector<char> seen(static_cast<size_t>(num_blocks_), 0);
  for (int32_t b = meta_[s].next, prev = s; b != s; prev = b, b = meta_[b].next) {
    if (b < 0 || b >= num_blocks_) return make_error("free list: bad link " + std::to_string(b));
    if (seen[b]) return make_error("free list: cycle at block " + std::to_string(b));
    seen[b] = 1;
    if (meta_[b].prev != prev) return make_error("free list: bad prev link at " + std::to_string(b));
    if (meta_[b].ref != 0) return make_error("free list: block " + std::to_string(b) + " has ref > 0");
    if (!meta_[b].in_free_list) return make_error("free list: flag unset on " + std::to_string(b));
    ++n;
    last = b;
  }
  if (meta_[s].prev != last) return make_error("free list: bad tail link");
  if (n != num_free_) {
    return make_error("free count " + std::to_string(num_free_) + " != list length " + std::to_string(n));
  }
  for (int32_t b = 0; b < num_blocks_; ++b) {
    const Meta& m = meta_[b];
    if (m.ref < 0) return make_error("negative ref on block " + std::to_string(b));
    if ((m.ref == 0) != static_cast<bool>(seen[b])) {
      return make_error("block " + std::to_string(b) + ": ref == 0 iff in free list broken");
    }
    if (m.cached) {
      auto it = by_hash_.find(m.hash);
      if (it == by_hash_.end() || it->second != b) return make_error("cached block " + std::to_string(b) + " not in map");
      if (hash_block(m.parent, tokens_of(b)) != m.hash) return make_error("cached block " + std::to_string(b) + ": hash mismatch");
    }
  }
  for (const auto& [h, b] : by_hash_) {
    if (b < 0 || b >= num_blocks_ || !meta_[b].cached || meta_[b].hash != h) {
      return make_error("hash map entry points at a block that does not hold it");
    }
  }
  return {};
}

}  // namespace velo::kv
