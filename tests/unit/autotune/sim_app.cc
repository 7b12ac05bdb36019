#include "tests/unit/autotune/sim_app.h"

#include <algorithm>
#include <cmath>

namespace forkd::autotune::sim {

double SimApp::Uniform() {
  // 53 random bits: the same sequence on every standard library.
  return static_cast<double>(rng_() >> 11) * 0x1.0p-53;
}

double SimApp::Normal() {
  double s = 0;
  for (int i = 0; i < 12; ++i) s += Uniform();
  return s - 6;
}

double SimApp::Throughput(int workers, int threads) const {
  const double per_request = m_.cpu_seconds + m_.wait_seconds;
  const double n = std::min<double>(m_.clients, double(workers) * threads);
  const double per_process_concurrency = n / workers;
  // A process runs one thread at a time on CPU (GIL).
  const double per_process =
      std::min(per_process_concurrency / per_request, 1 / m_.cpu_seconds);
  double x = std::min({workers * per_process, m_.cores / m_.cpu_seconds,
                       m_.clients / per_request});
  const double runnable =
      workers *
      std::min(1.0, per_process_concurrency * m_.cpu_seconds / per_request);
  x /= 1 + m_.oversubscription * std::max(0.0, runnable - m_.cores);
  x /= 1 + m_.sigma * (n - 1) + m_.kappa * n * (n - 1);
  return x;
}

double SimApp::AppLatency(int workers, int threads) const {
  const double n = std::min<double>(m_.clients, double(workers) * threads);
  return n / Throughput(workers, threads);
}

double SimApp::MemoryBytes(int workers, int threads) const {
  return workers * (m_.rss_base_bytes + threads * m_.rss_thread_bytes);
}

bool SimApp::FitsMemory(int workers, int threads) const {
  return m_.memory_max_bytes <= 0 ||
         MemoryBytes(workers, threads) <= m_.memory_max_bytes;
}

Best SimApp::BestConfig(int max_workers, int max_threads) const {
  Best best;
  for (int w = 1; w <= max_workers; ++w) {
    for (int t = 1; t <= max_threads; ++t) {
      if (!FitsMemory(w, t)) continue;
      const double x = Throughput(w, t);
      if (x > best.throughput) best = {w, t, x};
    }
  }
  return best;
}

Window SimApp::Run(int workers, int threads, double end, double duration) {
  if (!FitsMemory(workers, threads)) ++memory_violations_;
  const double x =
      Throughput(workers, threads) * std::max(0.0, 1 + m_.noise * Normal());
  const double n = std::min<double>(m_.clients, double(workers) * threads);
  const double app = n / Throughput(workers, threads);
  const double floor = m_.cpu_seconds + m_.wait_seconds;
  const double queue = (m_.clients - n) / Throughput(workers, threads);

  Window w;
  w.end_seconds = end;
  w.duration_seconds = duration;
  w.workers = workers;
  w.threads = threads;
  w.completed = static_cast<uint64_t>(std::lround(x * duration));
  for (uint64_t i = 0; i < w.completed; ++i) {
    const double a = floor * (0.9 + 0.2 * Uniform()) +
                     (app - floor) * -std::log(1 - Uniform());
    w.app_latency.Observe(a);
    w.latency.Observe(a + queue * (0.5 + Uniform()));
  }
  w.mean_in_flight = n;
  w.mean_queue_length = m_.clients - n;
  w.mean_queue_seconds = queue;
  w.app_cpu_seconds = w.completed * m_.cpu_seconds;
  if (m_.cpu_tick_seconds > 0) {
    // Each process's cumulative CPU, read in whole ticks at both ends of
    // the window (processes keep their CPU across windows; new ones start
    // at a random phase of a tick).
    const double tick = m_.cpu_tick_seconds;
    while (static_cast<int>(cpu_exact_.size()) < workers) {
      cpu_exact_.push_back(tick * Uniform());
    }
    double read = 0;
    for (int i = 0; i < workers; ++i) {
      const double before = std::floor(cpu_exact_[i] / tick) * tick;
      cpu_exact_[i] += w.app_cpu_seconds / workers * (0.8 + 0.4 * Uniform());
      read += std::floor(cpu_exact_[i] / tick) * tick - before;
    }
    w.app_cpu_seconds = read;
  }
  w.rss_bytes.assign(
      workers,
      static_cast<uint64_t>(m_.rss_base_bytes + threads * m_.rss_thread_bytes));
  w.cpu_limit_cores = m_.cores;
  w.nr_periods = static_cast<uint64_t>(duration * 10);
  if (w.CpuCoresUsed() >= 0.97 * m_.cores) w.nr_throttled = w.nr_periods / 2;
  w.memory_max_bytes = static_cast<uint64_t>(m_.memory_max_bytes);
  return w;
}

double OverloadSim::Uniform() {
  return static_cast<double>(rng_() >> 11) * 0x1.0p-53;
}

Window OverloadSim::Run(int limit, double end, double duration) {
  constexpr double kTick = 0.005;
  Window w;
  w.end_seconds = end;
  w.duration_seconds = duration;
  w.limit = limit;
  double in_flight_sum = 0, queue_sum = 0, rejected = 0;
  const int ticks = static_cast<int>(duration / kTick + 0.5);
  for (int i = 0; i < ticks; ++i) {
    queued_ += lambda_ * kTick;
    const double admit = std::min(queued_, std::max(0.0, limit - in_app_));
    queued_ -= admit;
    in_app_ += admit;
    if (queued_ > lambda_ * max_queue_) {
      rejected += queued_ - lambda_ * max_queue_;
      queued_ = lambda_ * max_queue_;
    }
    const double rate = std::min<double>(in_app_, slots_) / service_;
    const double done = std::min(in_app_, rate * kTick);
    // Little's law: what a request finishing now spent in the app and in
    // forkd's queue.
    const double app = service_ * std::max(1.0, in_app_ / slots_);
    const double wait = rate > 0 ? queued_ / std::max(rate, 1e-9) : 0;
    in_app_ -= done;
    done_carry_ += done;
    while (done_carry_ >= 1) {
      done_carry_ -= 1;
      const double a = app * (0.7 + 0.6 * Uniform());
      w.app_latency.Observe(a);
      w.latency.Observe(a + wait * Uniform());
      ++w.completed;
    }
    in_flight_sum += in_app_;
    queue_sum += queued_;
  }
  w.rejected = static_cast<uint64_t>(rejected);
  w.mean_in_flight = in_flight_sum / ticks;
  w.mean_queue_length = queue_sum / ticks;
  return w;
}

}  // namespace forkd::autotune::sim
