// Deterministic simulated apps for the autotune tests: a pre-forked app of
// `workers` processes x `threads` threads on `cores` CPUs, each process
// running one thread at a time on CPU (a GIL), under a closed loop of
// `clients`. Its best configuration is known by exhaustive search, so the
// controllers can be held to it. Noise comes from a seeded generator.
#ifndef FORKD_TESTS_UNIT_AUTOTUNE_SIM_APP_H_
#define FORKD_TESTS_UNIT_AUTOTUNE_SIM_APP_H_

#include <cstdint>
#include <random>
#include <vector>

#include "server/autotune/window.h"

namespace forkd::autotune::sim {

struct AppModel {
  double cpu_seconds = 0.005;      // CPU per request
  double wait_seconds = 0;         // off-CPU wait per request (I/O)
  double sigma = 0;                // USL contention on requests in flight
  double kappa = 0;                // USL coherency: past the knee X falls
  double cores = 2;                // cgroup CPU limit
  int clients = 64;                // closed-loop load
  double oversubscription = 0.04;  // loss per runnable process over cores
  double rss_base_bytes = 60e6;    // per process
  double rss_thread_bytes = 1e6;   // per thread
  double memory_max_bytes = 0;     // 0 = no limit
  double noise = 0.02;             // relative sd of a window's throughput
  // /proc reports CPU in clock ticks (USER_HZ 100: 10 ms) per process; 0
  // reports it exactly. With ticks, a window's CPU is each process's
  // cumulative CPU rounded down to a tick, minus that of the window before.
  double cpu_tick_seconds = 0;
};

inline AppModel CpuBound() { return AppModel{}; }
inline AppModel IoBound() {
  AppModel m;
  m.cpu_seconds = 0.0005;
  m.wait_seconds = 0.05;
  return m;
}
// The I/O-bound app as /proc shows a light Python app: 0.1 ms CPU per
// request read in 10 ms ticks, so a window's CPU per request jitters by
// tens of percent with nothing changed.
inline AppModel IoBoundInTicks() {
  AppModel m = IoBound();
  m.cpu_seconds = 0.0001;
  m.cpu_tick_seconds = 0.01;
  return m;
}
inline AppModel Mixed() {
  AppModel m;
  m.cpu_seconds = 0.005;
  m.wait_seconds = 0.02;
  return m;
}
// Throughput falls past ~22 in flight.
inline AppModel Knee() {
  AppModel m;
  m.cpu_seconds = 0.0005;  // the 2 cores are never the bottleneck
  m.wait_seconds = 0.0105;
  m.sigma = 0.02;
  m.kappa = 0.002;
  m.oversubscription = 0;  // a pure USL curve: its knee is the model's
  return m;
}

struct Best {
  int workers = 0;
  int threads = 0;
  double throughput = 0;
};

class SimApp {
 public:
  SimApp(const AppModel& m, uint64_t seed) : m_(m), rng_(seed) {}

  void set_model(const AppModel& m) { m_ = m; }
  const AppModel& model() const { return m_; }

  // Noise-free throughput (req/s) and mean app latency (s) of a config.
  double Throughput(int workers, int threads) const;
  double AppLatency(int workers, int threads) const;
  // Resident memory of the whole app.
  double MemoryBytes(int workers, int threads) const;
  bool FitsMemory(int workers, int threads) const;
  // The best configuration within the bounds (exhaustive).
  Best BestConfig(int max_workers, int max_threads) const;

  // One window of `duration` seconds ending at `end` with the app run as
  // workers x threads: what the master would measure.
  Window Run(int workers, int threads, double end, double duration = 1.0);

  int memory_violations() const { return memory_violations_; }

 private:
  double Uniform();
  double Normal();

  AppModel m_;
  std::mt19937_64 rng_;
  std::vector<double> cpu_exact_;  // per process, cumulative (ticks model)
  int memory_violations_ = 0;
};

// An app with `slots` parallel requests of `service_seconds` each behind an
// admission limit, under open-loop arrivals (requests over the limit wait
// in forkd's queue up to `max_queue_seconds`, then get a 503). Requests
// admitted beyond the slots queue inside the app, which is what the
// adaptive limit prevents.
class OverloadSim {
 public:
  OverloadSim(int slots, double service_seconds, double arrivals_per_second,
              double max_queue_seconds, uint64_t seed)
      : slots_(slots),
        service_(service_seconds),
        lambda_(arrivals_per_second),
        max_queue_(max_queue_seconds),
        rng_(seed) {}

  double capacity() const { return slots_ / service_; }
  // Runs one window with the admission limit `limit`.
  Window Run(int limit, double end, double duration = 1.0);

 private:
  double Uniform();

  int slots_;
  double service_;
  double lambda_;
  double max_queue_;
  std::mt19937_64 rng_;
  double in_app_ = 0;
  double queued_ = 0;
  double done_carry_ = 0;
};

}  // namespace forkd::autotune::sim

#endif  // FORKD_TESTS_UNIT_AUTOTUNE_SIM_APP_H_
