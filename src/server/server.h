// The HTTP server: routes, authentication, CORS, body limits, readiness, draining.
#pragma once
#include <memory>
#include <string>

#include "core/result.h"
#include "server/state.h"

namespace httplib { class Server; }

namespace velo::server {

class Server {
 public:
  explicit Server(ServerOptions opts);
  ~Server();

  ServerState& state() { return *st_; }
  // Binds the socket (port 0 picks a free port); call before listen().
  Status bind();
  int port() const { return port_; }
  // Serves until stop(); blocks.
  Status listen();
  // Marks the model loaded (readiness turns 200) or failed.
  void set_engine(std::unique_ptr<Engine> engine, ModelEntry model);
  void set_load_error(const std::string& msg);
  // Refuse new requests, let running ones finish for up to opts.drain, then stop listening.
  void shutdown();

 private:
  std::unique_ptr<ServerState> st_;
  std::unique_ptr<httplib::Server> http_;
  int port_ = 0;
};

// Builds the /v1/models and /api/* description of a GGUF model file.
Result<ModelEntry> describe_model(const std::string& path, const std::string& alias);

}  // namespace velo::server
