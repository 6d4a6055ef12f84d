// Session: the engine requests behind one HTTP request (n choices), their
// outputs, and the metrics they produce. Destroying a session cancels what is
// still running, so a client that disconnects frees its KV blocks.
#pragma once
#include <chrono>
#include <memory>
#include <optional>
#include <variant>
#include <vector>

#include "server/channel.h"
#include "server/state.h"

namespace velo::server {

struct GenJob {
  std::vector<int32_t> prompt;
  SamplingParams params;
  int n = 1;
};

class Session {
 public:
  static std::variant<std::unique_ptr<Session>, ApiError> start(ServerState& st, const GenJob& job);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // The next output of any choice; nullopt on timeout.
  std::optional<ChoiceOutput> next(std::chrono::milliseconds timeout);
  bool done() const { return remaining_ == 0; }
  int n() const { return static_cast<int>(ids_.size()); }

 private:
  explicit Session(ServerState& st) : st_(st) {}
  ServerState& st_;
  std::shared_ptr<OutputChannel> channel_ = std::make_shared<OutputChannel>();
  std::vector<uint64_t> ids_;
  std::vector<bool> finished_;
  int remaining_ = 0;
};

}  // namespace velo::server
