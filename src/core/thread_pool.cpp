#include "core/thread_pool.h"

#include <algorithm>

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
// Spin this many relax iterations (~tens of µs) before sleeping: long enough to
// bridge the gap between the back-to-back kernels of one decode step, short
// enough not to burn a shared machine's cores while idle.
constexpr int kSpinIters = 1 << 14;
// Pool whose job the current thread is running (detects nested calls).
thread_local const ThreadPool* tls_running = nullptr;
thread_local int tls_index = 0;  // its thread index there
}  // namespace

struct ThreadPool::Job {
  enum class Kind { kStatic, kDynamic } kind;
  int64_t n;
  const std::function<void(int64_t, int64_t, int)>* range_fn;
  const std::function<void(int64_t, int)>* chunk_fn;
  int n_threads;
  std::atomic<int64_t> next{0};  // next chunk for kDynamic
};

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
  workers_.reserve(n_threads_ - 1);
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_main(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(submit_mu_);
    stop_.store(true, std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
    generation_.notify_all();
  }
  for (auto& t : workers_) t.join();
}

void ThreadPool::execute(Job& job, int thread_index) {
  if (job.kind == Job::Kind::kStatic) {
    const int64_t chunk = (job.n + job.n_threads - 1) / job.n_threads;
    const int64_t begin = chunk * thread_index;
    const int64_t end = std::min(job.n, begin + chunk);
    if (begin < end) (*job.range_fn)(begin, end, thread_index);
    return;
  }
  for (;;) {
    const int64_t c = job.next.fetch_add(1, std::memory_order_relaxed);
    if (c >= job.n) break;
    (*job.chunk_fn)(c, thread_index);
  }
}

void ThreadPool::worker_main(int index) {
  uint32_t seen = 0;
  for (;;) {
    uint32_t g = generation_.load(std::memory_order_acquire);
    for (int i = 0; g == seen && i < kSpinIters; ++i) {
      VELO_CPU_RELAX();
      g = generation_.load(std::memory_order_acquire);
    }
    if (g == seen) {
      generation_.wait(seen, std::memory_order_acquire);
      continue;
    }
    seen = g;
    if (stop_.load(std::memory_order_relaxed)) return;
    tls_running = this;
    tls_index = index;
    execute(*job_, index);
    tls_running = nullptr;
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) pending_.notify_one();
  }
}

void ThreadPool::run(Job& job) {
  std::lock_guard<std::mutex> lock(submit_mu_);
  job_ = &job;
  pending_.store(static_cast<uint32_t>(n_threads_ - 1), std::memory_order_relaxed);
  generation_.fetch_add(1, std::memory_order_release);
  generation_.notify_all();
  tls_running = this;
  tls_index = 0;
  execute(job, 0);
  tls_running = nullptr;
  uint32_t p = pending_.load(std::memory_order_acquire);
  for (int i = 0; p != 0 && i < kSpinIters; ++i) {
    VELO_CPU_RELAX();
    p = pending_.load(std::memory_order_acquire);
  }
  while (p != 0) {
    pending_.wait(p, std::memory_order_acquire);
    p = pending_.load(std::memory_order_acquire);
  }
  job_ = nullptr;
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn) {
  if (n <= 0) return;
  if (n_threads_ == 1 || n == 1 || tls_running == this) {
    fn(0, n, tls_running == this ? tls_index : 0);
    return;
  }
  Job job{Job::Kind::kStatic, n, &fn, nullptr, n_threads_};
  run(job);
}

void ThreadPool::parallel_chunks(int64_t n_chunks, const std::function<void(int64_t, int)>& fn) {
  if (n_chunks <= 0) return;
  if (n_threads_ == 1 || n_chunks == 1 || tls_running == this) {
    const int index = tls_running == this ? tls_index : 0;
    for (int64_t c = 0; c < n_chunks; ++c) fn(c, index);
    return;
  }
  Job job{Job::Kind::kDynamic, n_chunks, nullptr, &fn, n_threads_};
  run(job);
}

}  // namespace velo
