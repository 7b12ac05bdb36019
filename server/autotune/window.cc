#include "server/autotune/window.h"

#include <algorithm>
#include <numeric>

namespace forkd::autotune {

LatencyHistogram::LatencyHistogram(const Counts& counts, double sum_seconds)
    : counts_(counts), sum_seconds_(sum_seconds) {
  count_ = std::accumulate(counts_.begin(), counts_.end(), uint64_t{0});
}

void LatencyHistogram::Observe(double seconds, uint64_t n) {
  if (n == 0) return;
  seconds = std::max(seconds, 0.0);
  size_t i = 0;
  while (i < scoreboard::kDurationBuckets.size() &&
         seconds > scoreboard::kDurationBuckets[i]) {
    ++i;
  }
  counts_[i] += n;
  count_ += n;
  sum_seconds_ += seconds * static_cast<double>(n);
}

void LatencyHistogram::Add(const LatencyHistogram& other) {
  for (size_t i = 0; i < kBuckets; ++i) counts_[i] += other.counts_[i];
  count_ += other.count_;
  sum_seconds_ += other.sum_seconds_;
}

double LatencyHistogram::Mean() const {
  return count_ == 0 ? 0 : sum_seconds_ / static_cast<double>(count_);
}

double LatencyHistogram::Quantile(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  const double rank = q * static_cast<double>(count_);
  double below = 0;
  for (size_t i = 0; i < kBuckets; ++i) {
    const double in_bucket = static_cast<double>(counts_[i]);
    if (in_bucket > 0 && below + in_bucket >= rank) {
      if (i == kBuckets - 1) return scoreboard::kDurationBuckets.back();
      const double lo = i == 0 ? 0.0 : scoreboard::kDurationBuckets[i - 1];
      const double hi = scoreboard::kDurationBuckets[i];
      return lo + (hi - lo) * std::max(rank - below, 0.0) / in_bucket;
    }
    below += in_bucket;
  }
  return scoreboard::kDurationBuckets.back();
}

double Window::Throughput() const {
  return duration_seconds > 0
             ? static_cast<double>(completed) / duration_seconds
             : 0;
}

double Window::CpuPerRequest() const {
  return completed == 0 ? 0 : app_cpu_seconds / static_cast<double>(completed);
}

double Window::CpuCoresUsed() const {
  return duration_seconds > 0 ? app_cpu_seconds / duration_seconds : 0;
}

double Window::ThrottledFraction() const {
  return nr_periods == 0 ? 0
                         : static_cast<double>(nr_throttled) /
                               static_cast<double>(nr_periods);
}

double Window::MeanRssBytes() const {
  return rss_bytes.empty() ? 0
                           : static_cast<double>(TotalRssBytes()) /
                                 static_cast<double>(rss_bytes.size());
}

uint64_t Window::TotalRssBytes() const {
  return std::accumulate(rss_bytes.begin(), rss_bytes.end(), uint64_t{0});
}

}  // namespace forkd::autotune
