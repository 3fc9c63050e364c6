#include "pool.h"

#include <immintrin.h>
#include <cblas.h>

#include <cstdlib>

namespace fb {

static int default_threads() {
  if (const char* s = std::getenv("FEDBIOT_THREADS")) {
    int n = std::atoi(s);
    if (n > 0) return n;
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc > 0 ? static_cast<int>(hc) : 1;
}

Pool& Pool::get() {
  static Pool pool;
  return pool;
}

Pool::Pool() {}

Pool::~Pool() { stop_all(); }

void Pool::stop_all() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
    gen_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
  stop_ = false;
}

void Pool::resize(int n) {
  if (n < 1) n = 1;
  if (n == size()) return;
  stop_all();
  // Workers start from the current generation, read here: a worker that read it itself could
  // start after the next run() and miss that job.
  const uint64_t gen = gen_.load();
  for (int i = 1; i < n; i++) workers_.emplace_back([this, i, gen] { loop(i, gen); });
}

static inline void chunk(int64_t n, int chunks, int c, int64_t& b, int64_t& e) {
  b = n * c / chunks;
  e = n * (c + 1) / chunks;
}

void Pool::loop(int tid, uint64_t seen) {
  for (;;) {
    // Short spin: the next kernel usually follows within microseconds.
    for (int i = 0; i < 4000 && gen_.load(std::memory_order_acquire) == seen; i++) _mm_pause();
    if (gen_.load(std::memory_order_acquire) == seen) {
      std::unique_lock<std::mutex> lk(mu_);
      wake_.wait(lk, [&] { return gen_.load(std::memory_order_acquire) != seen; });
    }
    seen = gen_.load(std::memory_order_acquire);
    if (stop_) return;
    if (tid < chunks_) {
      int64_t b, e;
      chunk(n_, chunks_, tid, b, e);
      (*fn_)(tid, b, e);
    }
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lk(mu_);
      done_.notify_one();
    }
  }
}

void Pool::run(int64_t n, int64_t grain, const std::function<void(int, int64_t, int64_t)>& fn) {
  if (grain < 1) grain = 1;
  int64_t maxChunks = (n + grain - 1) / grain;
  int chunks = static_cast<int>(maxChunks < size() ? maxChunks : size());
  if (chunks <= 1) {
    if (n > 0) fn(0, 0, n);
    return;
  }
  fn_ = &fn;
  n_ = n;
  chunks_ = chunks;
  pending_.store(static_cast<int>(workers_.size()), std::memory_order_release);
  {
    std::lock_guard<std::mutex> lk(mu_);
    gen_.fetch_add(1, std::memory_order_acq_rel);
  }
  wake_.notify_all();
  int64_t b, e;
  chunk(n, chunks, 0, b, e);
  fn(0, b, e);
  for (int i = 0; i < 100000 && pending_.load(std::memory_order_acquire) != 0; i++) _mm_pause();
  if (pending_.load(std::memory_order_acquire) != 0) {
    std::unique_lock<std::mutex> lk(mu_);
    done_.wait(lk, [&] { return pending_.load(std::memory_order_acquire) == 0; });
  }
  fn_ = nullptr;
}

float* scratch(size_t n, int slot) {
  thread_local std::vector<float> bufs[kScratchSlots];
  if (slot < 0 || slot >= kScratchSlots) std::abort();  // a slot past the array would corrupt memory
  std::vector<float>& v = bufs[slot];
  if (v.size() < n) v.resize(n);
  return v.data();
}

static int g_threads = 0;

void set_threads(int n) {
  if (n < 1) n = 1;
  if (n > 64) n = 64;  // per-thread partial sums are sized for 64
  g_threads = n;
  Pool::get().resize(n);
  openblas_set_num_threads(n);
}

int get_threads() {
  if (g_threads == 0) set_threads(default_threads());
  return g_threads;
}

static std::atomic<int> g_single{0};

bool blas_single_active() { return g_single.load(std::memory_order_relaxed) > 0; }

BlasSingle::BlasSingle() : changed_(get_threads() > 1) {
  g_single.fetch_add(1, std::memory_order_relaxed);
  if (changed_) openblas_set_num_threads(1);
}

BlasSingle::~BlasSingle() {
  if (changed_) openblas_set_num_threads(g_threads);
  g_single.fetch_sub(1, std::memory_order_relaxed);
}

}  // namespace fb
