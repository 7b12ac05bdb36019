#include "server/autotune/usl.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <set>

#include "absl/status/status.h"

namespace forkd::autotune {
namespace {

using Vec3 = std::array<double, 3>;
using Mat3 = std::array<Vec3, 3>;

// Solves m*x = v by Gaussian elimination with partial pivoting; false when
// m is singular.
bool Solve3(Mat3 m, Vec3 v, Vec3* x) {
  for (int col = 0; col < 3; ++col) {
    int pivot = col;
    for (int r = col + 1; r < 3; ++r) {
      if (std::abs(m[r][col]) > std::abs(m[pivot][col])) pivot = r;
    }
    if (std::abs(m[pivot][col]) < 1e-12) return false;
    std::swap(m[col], m[pivot]);
    std::swap(v[col], v[pivot]);
    for (int r = col + 1; r < 3; ++r) {
      const double f = m[r][col] / m[col][col];
      for (int c = col; c < 3; ++c) m[r][c] -= f * m[col][c];
      v[r] -= f * v[col];
    }
  }
  for (int r = 2; r >= 0; --r) {
    double s = v[r];
    for (int c = r + 1; c < 3; ++c) s -= m[r][c] * (*x)[c];
    (*x)[r] = s / m[r][r];
  }
  return true;
}

}  // namespace

double UslFit::Predict(double n) const {
  if (n <= 0) return 0;
  return lambda * n / (1 + sigma * (n - 1) + kappa * n * (n - 1));
}

double UslFit::Knee() const {
  if (kappa <= 0) return 0;
  return std::sqrt((1 - sigma) / kappa);
}

absl::StatusOr<UslFit> FitUsl(const std::vector<UslPoint>& points) {
  std::set<double> distinct;
  for (const UslPoint& p : points) {
    if (p.concurrency > 0 && p.throughput > 0) distinct.insert(p.concurrency);
  }
  if (distinct.size() < 3) {
    return absl::FailedPreconditionError(
        "USL fit needs three distinct concurrencies");
  }
  // Normal equations of the linearised model. Each row is weighted by 1/y
  // so that the fit is on relative error: without it the points at high
  // concurrency (large N/X) dominate and the knee drifts.
  Mat3 ata{};
  Vec3 aty{};
  for (const UslPoint& p : points) {
    if (p.concurrency <= 0 || p.throughput <= 0) continue;
    const double n = p.concurrency;
    const double y = n / p.throughput;
    const Vec3 row = {1.0, n - 1, n * (n - 1)};
    const double w = 1.0 / (y * y);
    for (int i = 0; i < 3; ++i) {
      aty[i] += w * row[i] * y;
      for (int j = 0; j < 3; ++j) ata[i][j] += w * row[i] * row[j];
    }
  }
  Vec3 x{};
  if (!Solve3(ata, aty, &x) || x[0] <= 0) {
    return absl::FailedPreconditionError(
        "USL fit: the points do not describe a throughput curve");
  }
  UslFit fit;
  fit.lambda = 1 / x[0];
  fit.sigma = std::clamp(x[1] / x[0], 0.0, 0.999);
  fit.kappa = std::max(x[2] / x[0], 0.0);
  return fit;
}

}  // namespace forkd::autotune
