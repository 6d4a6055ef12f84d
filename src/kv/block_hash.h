// Prefix-cache block hashing: a full block of tokens is identified by
// hash(parent_hash, tokens), so equal hashes mean equal whole prefixes (up to
// 64-bit collisions, which the pool guards against by also comparing the
// parent hash and the tokens on lookup).
#pragma once
#include <cstdint>
#include <span>

namespace velo::kv {

using BlockHash = uint64_t;

// Parent hash of the first block of a sequence.
inline constexpr BlockHash kRootHash = 0x9E3779B97F4A7C15ull;

// 64-bit hash of (parent, tokens): each token is folded in with a 128-bit
// multiply-xor step (wyhash-style mixing), finished with the murmur3 avalanche.
BlockHash hash_block(BlockHash parent, std::span<const int32_t> tokens);

}  // namespace velo::kv
