// Persistent worker pool for data-parallel kernels. A decode step calls
// parallel_for ~100+ times, so dispatch is a generation counter that workers
// spin on briefly before sleeping on a futex (std::atomic::wait).
//
// Work is handed out as chunks claimed with one atomic compare-and-swap, and the
// caller claims chunks too: on a machine shared with other processes a worker
// that is not scheduled does not hold the job up, the caller simply runs the
// chunks that worker would have run (only a chunk already claimed is waited for).
#pragma once
#include <atomic>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace velo {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);  // n_threads total including the caller (clamped to >= 1)
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Runs fn(begin, end, thread_index) over [0, n) split in min(n, size())
  // contiguous chunks of near-equal size, caller participates; returns when all
  // done. thread_index is the chunk's index in [0, size()): unique among the calls
  // running at one time (use it to pick per-thread scratch), though a chunk may
  // run on any pool thread. fn must not throw. A call from inside a running fn
  // (nested) runs fn(0, n, thread_index) inline. Calls from several threads are
  // serialized.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn);

  // Runs fn(chunk, thread_index) for every chunk in [0, n_chunks), handed out
  // dynamically; thread_index in [0, size()) identifies the running thread.
  // fn's results must depend only on `chunk`, not on which thread runs it.
  void parallel_chunks(int64_t n_chunks, const std::function<void(int64_t, int)>& fn);

 private:
  struct Job {
    int64_t n = 0;  // chunks
    int64_t range_n = 0;  // parallel_for: elements split over the n chunks
    const std::function<void(int64_t, int64_t, int)>* range_fn = nullptr;
    const std::function<void(int64_t, int)>* chunk_fn = nullptr;
  };
  void worker_main(int index);
  void run(int64_t n_chunks);
  // Claims and runs chunks of job `gen` until none are left; true if it ran any.
  void work(uint32_t gen, int thread_index);
  void run_chunk(int64_t c, int thread_index);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex submit_mu_;               // one job at a time from any number of callers
  Job job_;                            // valid while its chunks run
  std::atomic<uint64_t> state_{0};     // (job generation << 32) | next chunk; kClosed when done
  std::atomic<int64_t> job_n_{0};      // chunks of the current job
  std::atomic<uint32_t> wake_{0};      // bumped per job; idle workers futex-wait on it
  std::atomic<uint32_t> done_{0};      // chunks finished in the current job
  std::atomic<bool> stop_{false};
};

}  // namespace velo
