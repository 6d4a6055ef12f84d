// `velollm serve`: OpenAI- and Ollama-compatible HTTP server with continuous batching.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <pthread.h>
#include <thread>

#include "command.h"
#include "device_flags.h"
#include "engine/engine.h"
#include "server/server.h"

namespace {

struct ServeOpts {
  std::string model;
  std::string alias;
  velo::server::ServerOptions server;
  int parallel = 4;
  int ctx_size = 4096;
  int threads = 0;
  int max_queue = 64;
  int step_tokens = 256;
  int drain_seconds = 30;
  double max_body_mb = 8;
  velo::cli::DeviceFlags dev;
};

int run_serve(const ServeOpts& o) {
  std::string path = o.model.empty() ? velo::cli::default_model_path() : o.model;
  if (path.empty()) return velo::cli::fail("no model given and the default model is not installed; pass -m MODEL.gguf or run scripts/install.sh");
  auto entry = velo::server::describe_model(path, o.alias);
  if (!entry.ok()) return velo::cli::fail(path + ": " + entry.message());

  // Signals go to one thread (sigwait) so SIGTERM can drain cleanly.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGTERM);
  sigaddset(&sigs, SIGINT);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  velo::server::ServerOptions so = o.server;
  so.drain = std::chrono::milliseconds(o.drain_seconds * 1000);
  so.max_body_bytes = static_cast<size_t>(o.max_body_mb * 1048576.0);
  so.http_threads = std::max(16, o.parallel * 2 + o.max_queue / 4 + 8);
  if (so.api_key.empty())
    if (const char* k = std::getenv("VELO_API_KEY")) so.api_key = k;
  velo::server::Server server(so);
  if (auto st = server.bind(); !st.ok()) return velo::cli::fail(st.message());
  std::fprintf(stderr, "velollm: listening on http://%s:%d (loading %s)\n", so.host.c_str(), server.port(), path.c_str());

  std::thread loader([&] {
    velo::RunnerOptions ro;
    ro.threads = o.threads;
    ro.ctx_size = o.ctx_size;
    ro.max_seqs = o.parallel;
    ro.max_batch_tokens = std::max(512, o.step_tokens);
    auto runner = [&]() -> velo::Result<std::unique_ptr<velo::ModelRunner>> {
      VELO_TRY(velo::cli::apply_device_flags(o.dev, ro));
      return velo::ModelRunner::load(path, ro);
    }();
    if (!runner.ok()) {
      std::fprintf(stderr, "velollm: error: %s\n", runner.message().c_str());
      server.set_load_error(runner.message());
      return;
    }
    velo::EngineOptions eo;
    eo.max_running = o.parallel;
    eo.max_waiting = o.max_queue;
    eo.max_step_tokens = o.step_tokens;
    auto engine = velo::Engine::create(std::move(runner).value(), eo);
    if (!engine.ok()) {
      std::fprintf(stderr, "velollm: error: %s\n", engine.message().c_str());
      server.set_load_error(engine.message());
      return;
    }
    const std::string where = engine.value()->runner().device();
    server.set_engine(std::move(engine).value(), *entry);
    std::fprintf(stderr, "velollm: ready: model '%s' on %s, %d parallel sequences, context %d\n", entry->id.c_str(),
                 where.c_str(), o.parallel, o.ctx_size);
  });
  std::thread signals([&] {
    int sig = 0;
    sigwait(&sigs, &sig);
    std::fprintf(stderr, "velollm: signal %d: draining running requests (up to %ds), refusing new ones\n", sig,
                 o.drain_seconds);
    if (loader.joinable()) loader.join();
    server.shutdown();
  });
  auto st = server.listen();
  if (loader.joinable()) loader.join();
  pthread_kill(signals.native_handle(), SIGTERM);  // release the signal thread if the server stopped on its own
  signals.join();
  if (!st.ok()) return velo::cli::fail(st.message());
  std::fprintf(stderr, "velollm: stopped\n");
  return 0;
}

const bool registered = velo::cli::register_command(
    {"serve", "Serve a model over OpenAI- and Ollama-compatible HTTP APIs", 40,
     [](CLI::App& sub) -> std::function<int()> {
       auto o = std::make_shared<ServeOpts>();
       sub.add_option("-m,--model", o->model, "GGUF model file (default: the model installed by scripts/install.sh)");
       sub.add_option("--alias", o->alias, "Model name clients use (default: the file name without .gguf)");
       sub.add_option("--host", o->server.host, "Address to bind; use 0.0.0.0 to accept other machines")->capture_default_str();
       sub.add_option("--port", o->server.port, "TCP port (0 picks a free one)")->capture_default_str()->check(CLI::Range(0, 65535));
       sub.add_option("--parallel", o->parallel, "Sequences decoded together (continuous batching slots)")->capture_default_str()->check(CLI::Range(1, 256));
       sub.add_option("--ctx-size", o->ctx_size, "Context length per sequence, in tokens")->capture_default_str()->check(CLI::Range(16, 1 << 20));
       sub.add_option("--threads", o->threads, "CPU threads (0: physical cores)")->capture_default_str()->check(CLI::Range(0, 1024));
       sub.add_option("--max-queue", o->max_queue, "Waiting requests before new ones get 429")->capture_default_str()->check(CLI::Range(1, 100000));
       sub.add_option("--step-tokens", o->step_tokens, "Token budget per engine step (chunked prefill)")->capture_default_str()->check(CLI::Range(1, 65536));
       sub.add_option("--api-key", o->server.api_key, "Require 'Authorization: Bearer KEY' (also VELO_API_KEY)");
       sub.add_option("--cors-origin", o->server.cors_origin, "Allow browser requests from this origin (off by default)");
       sub.add_option("--max-body-mb", o->max_body_mb, "Largest request body, in MiB")->capture_default_str()->check(CLI::Range(0.001, 1024.0));
       velo::cli::add_device_flags(sub, o->dev);
       sub.add_option("--drain-seconds", o->drain_seconds, "On SIGTERM, how long running requests may finish")->capture_default_str()->check(CLI::Range(0, 3600));
       return [o] { return run_serve(*o); };
     }});

}  // namespace
