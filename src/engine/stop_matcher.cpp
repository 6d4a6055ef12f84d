// StopMatcher: see stop_matcher.h.
#include "engine/stop_matcher.h"

#include <algorithm>

namespace velo {

void StopMatcher::reset(std::span<const std::string> stops) {
  stops_.clear();
  size_t longest = 0;
  for (const auto& s : stops)
    if (!s.empty()) {
      stops_.push_back(s);
      longest = std::max(longest, s.size());
    }
  pending_.clear();
  pending_.reserve(longest * 2 + 64);
  matched_ = -1;
}

bool StopMatcher::push(std::string_view piece, std::string& out) {
  if (matched_ >= 0) return true;
  if (stops_.empty()) {
    out.append(piece);
    return false;
  }
  const size_t old = pending_.size();
  pending_.append(piece);

  // A match not seen before must end in the new bytes. The match that ends
  // first wins (then the longer one), so the result does not depend on how the
  // text was split into pieces.
  size_t best = std::string::npos, best_end = std::string::npos;
  for (size_t i = 0; i < stops_.size(); ++i) {
    const std::string& s = stops_[i];
    size_t from = old >= s.size() - 1 ? old - (s.size() - 1) : 0;
    size_t pos = pending_.find(s, from);
    if (pos == std::string::npos) continue;
    size_t end = pos + s.size();
    if (end < best_end || (end == best_end && pos < best)) {
      best = pos;
      best_end = end;
      matched_ = static_cast<int>(i);
    }
  }
  if (best != std::string::npos) {
    out.append(pending_, 0, best);
    pending_.clear();
    return true;
  }

  // Hold back the longest tail that is a proper prefix of some stop string.
  size_t hold = 0;
  for (const auto& s : stops_) {
    for (size_t len = std::min(s.size() - 1, pending_.size()); len > hold; --len) {
      if (pending_.compare(pending_.size() - len, len, s, 0, len) == 0) {
        hold = len;
        break;
      }
    }
  }
  size_t emit = pending_.size() - hold;
  // Never split a UTF-8 sequence (only possible with a stop string that starts mid-character).
  while (emit > 0 && emit < pending_.size() && (static_cast<unsigned char>(pending_[emit]) & 0xC0) == 0x80) --emit;
  out.append(pending_, 0, emit);
  pending_.erase(0, emit);
  return false;
}

void StopMatcher::flush(std::string& out) {
  if (matched_ >= 0) return;
  out.append(pending_);
  pending_.clear();
}

}  // namespace velo
