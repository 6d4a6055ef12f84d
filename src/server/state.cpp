#include "server/state.h"

namespace velo::server {

std::optional<ApiError> ServerState::check_serving() {
  if (draining) return ApiError{503, "server is shutting down", "server_error", "shutting_down", "", 5};
  if (!ready) {
    std::lock_guard<std::mutex> lk(load_mu);
    if (!load_error.empty())
      return ApiError{503, "model failed to load: " + load_error, "server_error", "model_load_failed", "", 0};
    return ApiError{503, "model is loading, try again shortly", "server_error", "loading", "", 2};
  }
  return std::nullopt;
}

bool ServerState::model_matches(const std::string& name) const {
  if (name == model.id || name == model.id + ":latest") return true;
  auto slash = model.path.find_last_of('/');
  std::string file = slash == std::string::npos ? model.path : model.path.substr(slash + 1);
  return name == file;
}

}  // namespace velo::server
