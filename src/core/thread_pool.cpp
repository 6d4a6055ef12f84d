#include "core/thread_pool.h"

#include <algorithm>
#include <chrono>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define VELO_CPU_RELAX() _mm_pause()
#elif defined(__aarch64__)
#define VELO_CPU_RELAX() asm volatile("yield")
#else
#define VELO_CPU_RELAX() ((void)0)
#endif

namespace velo {

namespace {

// Spin this long before sleeping: bridges the gap between the back-to-back
// kernels of one decode step, without burning a shared machine's cores while idle.
constexpr auto kSpin = std::chrono::microseconds(100);
constexpr uint64_t kClosed = 0xffffffffu;  // next-chunk value of a finished job

// Spins until pred() or the spin budget runs out; returns pred().
template <class Pred>
bool spin_until(Pred pred) {
  const auto deadline = std::chrono::steady_clock::now() + kSpin;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (pred()) return true;
      VELO_CPU_RELAX();
    }
    if (std::chrono::steady_clock::now() > deadline) return pred();
  }
}

// Pool whose job the current thread is running, and its thread index there (nested calls).
thread_local const ThreadPool* tls_running = nullptr;
thread_local int tls_index = 0;

struct RunningScope {
  RunningScope(const ThreadPool* p, int index) : prev(tls_running), prev_index(tls_index) {
    tls_running = p;
    tls_index = index;
  }
  ~RunningScope() {
    tls_running = prev;
    tls_index = prev_index;
  }
  const ThreadPool* prev;
  int prev_index;
};

}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
  workers_.reserve(n_threads_ - 1);
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_main(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(submit_mu_);
    stop_.store(true);
    wake_.fetch_add(1);
    wake_.notify_all();
  }
  for (auto& t : workers_) t.join();
}

void ThreadPool::run_chunk(int64_t c, int thread_index) {
  if (job_.range_fn) {
    // Near-equal contiguous chunks: the first n % k chunks get one extra element.
    const int64_t k = job_.n, n = job_.range_n;
    const int64_t base = n / k, extra = n % k;
    const int64_t begin = c * base + std::min(c, extra);
    const int64_t end = begin + base + (c < extra ? 1 : 0);
    (*job_.range_fn)(begin, end, static_cast<int>(c));
  } else {
    (*job_.chunk_fn)(c, thread_index);
  }
}

void ThreadPool::work(uint32_t gen, int thread_index) {
  RunningScope scope(this, thread_index);
  for (;;) {
    uint64_t s = state_.load();
    if ((s >> 32) != gen) return;
    const uint64_t c = s & 0xffffffffu;
    // Read after s: if the job has been closed and replaced meanwhile, the CAS fails.
    const int64_t n = job_n_.load();
    if (c >= static_cast<uint64_t>(n)) return;
    if (!state_.compare_exchange_weak(s, s + 1)) continue;
    // Claimed chunk c of job `gen`: the job cannot finish (or change) before done_ counts it.
    if (job_.range_fn) tls_index = static_cast<int>(c);
    run_chunk(static_cast<int64_t>(c), thread_index);
    tls_index = thread_index;
    if (done_.fetch_add(1) + 1 == static_cast<uint32_t>(n)) done_.notify_one();
  }
}

void ThreadPool::worker_main(int index) {
  uint32_t seen = 0;
  for (;;) {
    if (!spin_until([&] { return wake_.load(std::memory_order_acquire) != seen; })) {
      wake_.wait(seen, std::memory_order_acquire);
      continue;
    }
    seen = wake_.load(std::memory_order_acquire);
    if (stop_.load()) return;
    work(seen, index);
  }
}

void ThreadPool::run(int64_t n_chunks) {
  // Caller holds submit_mu_; job_ is filled in.
  job_n_.store(n_chunks);
  done_.store(0);
  const uint32_t gen = wake_.load() + 1;
  state_.store(static_cast<uint64_t>(gen) << 32);
  wake_.store(gen, std::memory_order_release);
  wake_.notify_all();
  work(gen, 0);
  const auto target = static_cast<uint32_t>(n_chunks);
  if (!spin_until([&] { return done_.load(std::memory_order_acquire) == target; })) {
    for (uint32_t d = done_.load(); d != target; d = done_.load()) done_.wait(d);
  }
  state_.store((static_cast<uint64_t>(gen) << 32) | kClosed);
  job_ = Job{};
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn) {
  if (n <= 0) return;
  if (tls_running == this) {
    fn(0, n, tls_index);
    return;
  }
  if (n_threads_ == 1 || n == 1) {
    fn(0, n, 0);
    return;
  }
  std::lock_guard<std::mutex> lock(submit_mu_);
  job_ = Job{std::min<int64_t>(n, n_threads_), n, &fn, nullptr};
  run(job_.n);
}

void ThreadPool::parallel_chunks(int64_t n_chunks, const std::function<void(int64_t, int)>& fn) {
  if (n_chunks <= 0) return;
  if (tls_running == this || n_threads_ == 1 || n_chunks == 1) {
    const int index = tls_running == this ? tls_index : 0;
    for (int64_t c = 0; c < n_chunks; ++c) fn(c, index);
    return;
  }
  std::lock_guard<std::mutex> lock(submit_mu_);
  job_ = Job{n_chunks, 0, nullptr, &fn};
  run(n_chunks);
}

}  // namespace velo
