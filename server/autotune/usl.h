// The Universal Scalability Law, X(N) = lambda*N / (1 + sigma*(N-1) +
// kappa*N*(N-1)), fitted by least squares to (concurrency, throughput)
// points; the knee sqrt((1-sigma)/kappa) is where throughput peaks.
#ifndef FORKD_SERVER_AUTOTUNE_USL_H_
#define FORKD_SERVER_AUTOTUNE_USL_H_

#include <vector>

#include "absl/status/statusor.h"

namespace forkd::autotune {

struct UslPoint {
  double concurrency = 0;  // > 0
  double throughput = 0;   // > 0
};

struct UslFit {
  double lambda = 0;  // throughput of one, > 0
  double sigma = 0;   // contention, clamped to [0, 1)
  double kappa = 0;   // coherency, clamped to >= 0
  // Throughput the fit predicts at concurrency n.
  double Predict(double n) const;
  // Concurrency of peak throughput; 0 when kappa == 0 (no retrograde).
  double Knee() const;
};

// Least squares on N/X = a + b*(N-1) + c*N*(N-1) (linear in a, b, c), then
// lambda = 1/a, sigma = b/a, kappa = c/a. Needs three distinct
// concurrencies; FailedPrecondition otherwise or when the points do not
// describe a throughput curve (a <= 0).
absl::StatusOr<UslFit> FitUsl(const std::vector<UslPoint>& points);

}  // namespace forkd::autotune

#endif  // FORKD_SERVER_AUTOTUNE_USL_H_
