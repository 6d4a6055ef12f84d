// Operational endpoints: liveness, readiness, Prometheus metrics.
#include "server/routes.h"

namespace velo::server {

void register_ops_routes(httplib::Server& http, ServerState& st) {
  // Alive as long as the process answers.
  http.Get("/health", [](const httplib::Request&, httplib::Response& r) { send_json(r, {{"status", "ok"}}); });
  // Ready once the model is loaded (and not draining).
  http.Get("/ready", [&st](const httplib::Request&, httplib::Response& r) {
    if (auto e = st.check_serving()) {
      if (e->retry_after > 0) r.set_header("Retry-After", std::to_string(e->retry_after));
      return send_json(r, {{"status", e->code}, {"message", e->message}}, 503);
    }
    send_json(r, {{"status", "ready"}, {"model", st.model.id}});
  });
  http.Get("/metrics", [&st](const httplib::Request&, httplib::Response& r) {
    EngineStats s = st.ready ? st.engine->stats() : EngineStats{};
    r.set_content(st.metrics.render(st.model.id, s), "text/plain; version=0.0.4; charset=utf-8");
  });
}

}  // namespace velo::server
