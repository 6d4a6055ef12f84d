// StopMatcher: stop strings for streamed text. Generated text goes in piece by
// piece; what comes out is safe to show: text that could still turn out to be
// the start of a stop string is held back until it cannot, and when a stop
// string appears only the text before it is released (the match that ends
// first wins). A stop string never leaks, however the tokens split it.
//
// Held-back text is bounded by the longest stop string; no allocation once
// the buffers have grown to that size. Reused per request by the engine.
#pragma once
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace velo {

class StopMatcher {
 public:
  StopMatcher() = default;
  explicit StopMatcher(std::span<const std::string> stops) { reset(stops); }
  // Starts over with new stop strings (empty strings are ignored).
  void reset(std::span<const std::string> stops);

  // Adds `piece`; appends the text now safe to emit to `out`. Returns true when
  // a stop string has matched (now or earlier): `out` then ends just before it
  // and every later call appends nothing.
  bool push(std::string_view piece, std::string& out);
  // End of generation without a stop: appends the held-back text.
  void flush(std::string& out);

  bool stopped() const { return matched_ >= 0; }
  int matched() const { return matched_; }  // index into the stop strings, -1 when none matched
  size_t held() const { return pending_.size(); }

 private:
  std::vector<std::string> stops_;
  std::string pending_;  // text not yet released
  int matched_ = -1;
};

}  // namespace velo
