// Open-addressing hash map from string_view keys (owned elsewhere) to small values: the
// token-text and word-cache lookups are the tokenizers' hot path, and std::unordered_map
// costs a node allocation and a pointer chase per entry.
#pragma once
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace velo::tok {

inline uint64_t hash_bytes(std::string_view s) {
  uint64_t h = 0x9E3779B97F4A7C15ull ^ (s.size() * 0xFF51AFD7ED558CCDull);
  const char* p = s.data();
  size_t n = s.size();
  auto mix = [&](uint64_t v) {
    h ^= v;
    h *= 0xBF58476D1CE4E5B9ull;
    h ^= h >> 29;
  };
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    mix(v);
  }
  if (n > 0) {
    uint64_t v = 0;
    std::memcpy(&v, p, n);
    mix(v ^ 0xA5);
  }
  h ^= h >> 32;
  h *= 0x94D049BB133111EBull;
  return h ^ (h >> 29);
}

template <class V>
class StrMap {
 public:
  explicit StrMap(size_t expected = 16) { rehash(expected * 2 + 16); }

  // Inserts or overwrites; returns a reference to the value.
  V& put(std::string_view key, V value) {
    if ((size_ + 1) * 2 > slots_.size()) rehash(slots_.size() * 2);  // load <= 1/2: short misses
    uint64_t h = hash_bytes(key);
    Slot& s = probe(key, h);
    if (!s.tag) {
      s.tag = tag_of(h);
      s.data = key.data();
      s.len = key.size();
      ++size_;
    }
    s.value = value;
    return s.value;
  }
  const V* find(std::string_view key) const {
    uint64_t h = hash_bytes(key);
    uint32_t tag = tag_of(h);
    size_t mask = slots_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      const Slot& s = slots_[i];
      if (!s.tag) return nullptr;
      if (s.tag == tag && s.len == key.size() && std::memcmp(s.data, key.data(), key.size()) == 0) return &s.value;
    }
  }
  size_t size() const { return size_; }

 private:
  struct Slot {
    const char* data = nullptr;
    size_t len = 0;
    uint32_t tag = 0;  // 0: empty; else high hash bits | 1, checked before the bytes
    V value{};
  };
  static uint32_t tag_of(uint64_t h) { return static_cast<uint32_t>(h >> 32) | 1u; }
  Slot& probe(std::string_view key, uint64_t h) {
    uint32_t tag = tag_of(h);
    size_t mask = slots_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
      Slot& s = slots_[i];
      if (!s.tag || (s.tag == tag && s.len == key.size() && std::memcmp(s.data, key.data(), key.size()) == 0))
        return s;
    }
  }
  void rehash(size_t want) {
    size_t n = 16;
    while (n < want) n *= 2;
    std::vector<Slot> old;
    old.swap(slots_);
    slots_.assign(n, Slot{});
    size_ = 0;
    for (auto& s : old)
      if (s.tag) put(std::string_view(s.data, s.len), s.value);
  }
  std::vector<Slot> slots_;
  size_t size_ = 0;
};

// Open-addressing map from non-zero-able 64-bit keys to values (BPE merge pairs).
template <class V>
class U64Map {
 public:
  explicit U64Map(size_t expected = 16) {
    size_t n = 16;
    while (n < expected * 2 + 16) n *= 2;
    keys_.assign(n, kEmpty);
    vals_.resize(n);
  }
  // Keeps the first value for a key (like std::map::emplace); false when already present.
  bool emplace(uint64_t key, V v) {
    if ((size_ + 1) * 2 > keys_.size()) grow();
    size_t i = slot(key);
    if (keys_[i] == key) return false;
    keys_[i] = key;
    vals_[i] = v;
    ++size_;
    return true;
  }
  const V* find(uint64_t key) const {
    size_t i = slot(key);
    return keys_[i] == key ? &vals_[i] : nullptr;
  }

 private:
  static constexpr uint64_t kEmpty = ~0ull;
  size_t slot(uint64_t key) const {
    size_t mask = keys_.size() - 1;
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    for (size_t i = (h ^ (h >> 31)) & mask;; i = (i + 1) & mask)
      if (keys_[i] == key || keys_[i] == kEmpty) return i;
  }
  void grow() {
    std::vector<uint64_t> ok;
    std::vector<V> ov;
    ok.swap(keys_);
    ov.swap(vals_);
    keys_.assign(ok.size() * 2, kEmpty);
    vals_.resize(ok.size() * 2);
    size_ = 0;
    for (size_t i = 0; i < ok.size(); ++i)
      if (ok[i] != kEmpty) emplace(ok[i], ov[i]);
  }
  std::vector<uint64_t> keys_;
  std::vector<V> vals_;
  size_t size_ = 0;
};

}  // namespace velo::tok
