#include "kv/block_hash.h"

namespace velo::kv {
namespace {

constexpr uint64_t kP0 = 0xa0761d6478bd642full;
constexpr uint64_t kP1 = 0xe7037ed1a0b428dbull;

inline uint64_t mix(uint64_t a, uint64_t b) {
  unsigned __int128 r = static_cast<unsigned __int128>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}

inline uint64_t fmix64(uint64_t k) {
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdull;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ull;
  k ^= k >> 33;
  return k;
}

}  // namespace

BlockHash hash_block(BlockHash parent, std::span<const int32_t> tokens) {
  uint64_t h = parent ^ kP0;
  for (int32_t t : tokens) {
    // The rotated old state keeps the step from collapsing to 0 when h ^ t == 0.
    h = mix(h ^ static_cast<uint32_t>(t), kP1) ^ ((h << 29) | (h >> 35));
  }
  h = mix(h ^ tokens.size(), kP0);
  return fmix64(h);
}

}  // namespace velo::kv
