// A small persistent thread pool: the caller thread takes chunk 0, workers take the rest.
// Workers spin briefly after a job (kernels come in bursts) and then sleep, so they do not
// compete with OpenBLAS threads while a gemm runs.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace fb {

class Pool {
 public:
  static Pool& get();
  ~Pool();
  // Total threads including the caller (>= 1).
  void resize(int n);
  int size() const { return static_cast<int>(workers_.size()) + 1; }
  // Calls fn(tid, begin, end) over [0, n) split into at most size() contiguous chunks, none
  // smaller than grain (so small jobs stay on the calling thread).
  void run(int64_t n, int64_t grain, const std::function<void(int, int64_t, int64_t)>& fn);

 private:
  Pool();
  void loop(int tid, uint64_t seen);
  void stop_all();

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  std::atomic<uint64_t> gen_{0};
  std::atomic<int> pending_{0};
  bool stop_ = false;
  // The current job, valid while pending_ > 0.
  const std::function<void(int, int64_t, int64_t)>* fn_ = nullptr;
  int64_t n_ = 0;
  int chunks_ = 0;
};

// Parallel loop helper: f(begin, end).
template <class F>
inline void parallel_for(int64_t n, int64_t grain, F&& f) {
  Pool& p = Pool::get();
  if (p.size() == 1 || n <= grain) {
    if (n > 0) f(int64_t(0), n);
    return;
  }
  std::function<void(int, int64_t, int64_t)> fn = [&](int, int64_t b, int64_t e) { f(b, e); };
  p.run(n, grain, fn);
}

// Parallel loop with the thread index: f(tid, begin, end); tid < Pool::get().size().
template <class F>
inline void parallel_for_tid(int64_t n, int64_t grain, F&& f) {
  Pool& p = Pool::get();
  if (p.size() == 1 || n <= grain) {
    if (n > 0) f(0, int64_t(0), n);
    return;
  }
  std::function<void(int, int64_t, int64_t)> fn = [&](int t, int64_t b, int64_t e) { f(t, b, e); };
  p.run(n, grain, fn);
}

// Thread-local scratch that only grows: hot kernels must not allocate per call. Slots
// [0, kScratchSlots) are separate buffers (a kernel that needs several at once takes different slots).
constexpr int kScratchSlots = 8;
float* scratch(size_t n, int slot = 0);

// Thread settings shared by the pool and OpenBLAS (they never run at the same time).
void set_threads(int n);
int get_threads();

// True while a BlasSingle is alive: gemms then run on the calling thread (they are themselves one
// of several tasks the pool runs).
bool blas_single_active();

// While alive, OpenBLAS runs single-threaded so pool threads may each call it.
class BlasSingle {
 public:
  BlasSingle();
  ~BlasSingle();
 private:
  bool changed_;
};

}  // namespace fb
