// Persistent worker pool for data-parallel kernels. A decode step calls
// parallel_for ~100+ times, so dispatch is a generation counter that workers
// spin on briefly before sleeping on a futex (std::atomic::wait).
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

  // Runs fn(begin, end, thread_index) over [0, n) split in contiguous chunks, one
  // chunk per thread (thread t gets the t-th chunk; empty chunks are skipped),
  // caller participates as thread 0; returns when all done. fn must not throw.
  // Called from inside a running fn (nested), it runs fn(0, n, thread_index) inline.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn);

  // Runs fn(chunk, thread_index) for every chunk in [0, n_chunks), handing chunks
  // out dynamically (atomic counter), so a thread that is descheduled on a
  // shared machine does not hold up the others. Which thread runs which chunk
  // varies from call to call: fn must write results that depend only on `chunk`.
  void parallel_chunks(int64_t n_chunks, const std::function<void(int64_t, int)>& fn);

 private:
  struct Job;
  void worker_main(int index);
  void run(Job& job);
  static void execute(Job& job, int thread_index);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex submit_mu_;                 // one job at a time from any number of callers
  std::atomic<uint32_t> generation_{0};  // bumped per job; workers wait on it
  std::atomic<uint32_t> pending_{0};     // workers still running the current job
  std::atomic<bool> stop_{false};
  Job* job_ = nullptr;                   // current job, published by generation_
};

}  // namespace velo
