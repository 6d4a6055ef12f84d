#include "server/session.h"

namespace velo::server {
namespace {

using Clock = std::chrono::steady_clock;

// Per-choice timing, observed on the engine thread so latencies do not include HTTP delays.
struct Timing {
  Clock::time_point submitted = Clock::now();
  Clock::time_point last;
  bool first = true;
};

void observe(Metrics& m, Timing& t, const RequestOutput& out) {
  auto now = Clock::now();
  if (!out.tokens.empty()) {
    if (t.first) {
      m.ttft.observe(std::chrono::duration<double>(now - t.submitted).count());
      t.first = false;
    } else {
      // One observation per token: a step that produced k tokens spreads its gap evenly.
      double gap = std::chrono::duration<double>(now - t.last).count() / out.tokens.size();
      for (size_t i = 0; i < out.tokens.size(); ++i) m.itl.observe(gap);
    }
    t.last = now;
  }
  if (out.finished) {
    m.e2e.observe(std::chrono::duration<double>(now - t.submitted).count());
    if (out.finish_reason == FinishReason::Stop) m.success_stop++;
    else if (out.finish_reason == FinishReason::Length) m.success_length++;
    else m.aborted++;
  }
}

}  // namespace

std::variant<std::unique_ptr<Session>, ApiError> Session::start(ServerState& st, const GenJob& job) {
  std::unique_ptr<Session> s(new Session(st));
  for (int i = 0; i < job.n; ++i) {
    GenerationRequest req{job.prompt, job.params};
    // n > 1 with a fixed seed must still give different choices.
    if (job.n > 1 && req.params.seed != 0xFFFFFFFFFFFFFFFFull) req.params.seed += static_cast<uint64_t>(i);
    auto timing = std::make_shared<Timing>();
    auto ch = s->channel_;
    Metrics* m = &st.metrics;
    auto id = st.engine->submit(std::move(req), [ch, timing, m, i](const RequestOutput& out) {
      observe(*m, *timing, out);
      ch->push(ChoiceOutput{i, out});
    });
    if (!id.ok()) {
      // Already-submitted choices are cancelled by the destructor.
      const std::string& msg = id.message();
      if (msg.find("queue") != std::string::npos)
        return ApiError{429, "server busy: " + msg + "; retry later", "rate_limit_error", "queue_full", "", 1};
      return bad_request(msg);
    }
    s->ids_.push_back(*id);
    s->finished_.push_back(false);
    s->remaining_++;
  }
  return s;
}

std::optional<ChoiceOutput> Session::next(std::chrono::milliseconds timeout) {
  auto o = channel_->pop(timeout);
  if (o && o->out.finished && !finished_[o->choice]) {
    finished_[o->choice] = true;
    remaining_--;
  }
  return o;
}

Session::~Session() {
  for (size_t i = 0; i < ids_.size(); ++i)
    if (!finished_[i]) st_.engine->cancel(ids_[i]);
}

}  // namespace velo::server
