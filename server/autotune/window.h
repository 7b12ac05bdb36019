// What the autotune controllers read: one measurement window (throughput,
// latency histograms in the scoreboard's bucket layout, in-flight, queue,
// app CPU and memory, cgroup limits and throttling). Plain data filled by
// the master from the scoreboard, /proc and the cgroup files; the
// controllers never do I/O themselves.
#ifndef FORKD_SERVER_AUTOTUNE_WINDOW_H_
#define FORKD_SERVER_AUTOTUNE_WINDOW_H_

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "server/scoreboard/scoreboard.h"

namespace forkd::autotune {

// Request durations counted in scoreboard::kDurationBuckets (+Inf last), so
// a window is the difference of two scoreboard histogram snapshots.
class LatencyHistogram {
 public:
  static constexpr size_t kBuckets = scoreboard::kDurationBuckets.size() + 1;
  using Counts = std::array<uint64_t, kBuckets>;

  LatencyHistogram() = default;
  // From per-bucket (not cumulative) counts and the sum of the durations.
  LatencyHistogram(const Counts& counts, double sum_seconds);

  // Counts `n` durations of `seconds` each (negative counts as 0).
  void Observe(double seconds, uint64_t n = 1);
  // Adds another histogram's counts (merging windows).
  void Add(const LatencyHistogram& other);

  uint64_t count() const { return count_; }
  const Counts& counts() const { return counts_; }
  // Mean duration in seconds from the sum; 0 when empty.
  double Mean() const;
  // The q-quantile (0 < q <= 1) in seconds, interpolated linearly inside its
  // bucket as Prometheus' histogram_quantile does (the first bucket starts
  // at 0). A quantile in the +Inf bucket answers the last finite bound.
  // 0 when empty.
  double Quantile(double q) const;

 private:
  Counts counts_{};
  uint64_t count_ = 0;
  double sum_seconds_ = 0;
};

// One window of measurements. Gauges are time averages over the window;
// counters are deltas over it. Zero means "not known" for the limits.
struct Window {
  double end_seconds = 0;       // monotonic clock at the window's end
  double duration_seconds = 0;  // > 0 for a usable window

  // The configuration that was in force (what the controllers decided).
  int workers = 0;  // app processes
  int threads = 0;  // threads per app process
  int limit = 0;    // admission limit on requests in flight to the app

  uint64_t completed = 0;  // requests answered by the app
  uint64_t failed = 0;     // app errors, resets, timeouts
  uint64_t rejected = 0;   // refused by forkd (queue full / queue timeout)

  LatencyHistogram latency;      // whole request as clients see it
  LatencyHistogram app_latency;  // time in the app only (upstream)

  double mean_in_flight = 0;      // requests inside the app
  double mean_queue_length = 0;   // requests waiting in forkd's queue
  double mean_queue_seconds = 0;  // time a request waited in the queue

  double app_cpu_seconds = 0;       // sum over the app processes
  std::vector<uint64_t> rss_bytes;  // one entry per app process
  double cpu_limit_cores = 0;       // cgroup cpu.max (or host cores)
  uint64_t nr_periods = 0;          // cpu.stat deltas
  uint64_t nr_throttled = 0;
  uint64_t throttled_usec = 0;
  uint64_t memory_max_bytes = 0;  // cgroup memory.max, 0 = none

  // Completed requests per second; 0 for an empty window.
  double Throughput() const;
  // App CPU seconds per completed request; 0 when nothing completed.
  double CpuPerRequest() const;
  // Cores the app kept busy on average.
  double CpuCoresUsed() const;
  // Share of CFS periods that were throttled (0 when unknown).
  double ThrottledFraction() const;
  // Mean and total resident memory of the app processes.
  double MeanRssBytes() const;
  uint64_t TotalRssBytes() const;
};

}  // namespace forkd::autotune

#endif  // FORKD_SERVER_AUTOTUNE_WINDOW_H_
