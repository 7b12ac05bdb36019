#include "server/autotune/usl.h"

#include <cmath>

#include "gtest/gtest.h"

namespace forkd::autotune {
namespace {

std::vector<UslPoint> Curve(double lambda, double sigma, double kappa,
                            std::vector<double> ns) {
  UslFit truth{lambda, sigma, kappa};
  std::vector<UslPoint> pts;
  for (double n : ns) pts.push_back({n, truth.Predict(n)});
  return pts;
}

TEST(Usl, RecoversTheParametersOfAnExactCurve) {
  auto fit = FitUsl(Curve(100, 0.05, 0.002, {1, 4, 8, 16, 32, 64}));
  ASSERT_TRUE(fit.ok()) << fit.status();
  EXPECT_NEAR(fit->lambda, 100, 1e-6);
  EXPECT_NEAR(fit->sigma, 0.05, 1e-9);
  EXPECT_NEAR(fit->kappa, 0.002, 1e-9);
  EXPECT_NEAR(fit->Knee(), std::sqrt(0.95 / 0.002), 1e-6);
}

TEST(Usl, NoCoherencyMeansNoKnee) {
  auto fit = FitUsl(Curve(50, 0.1, 0, {2, 5, 10, 20}));
  ASSERT_TRUE(fit.ok());
  EXPECT_NEAR(fit->kappa, 0, 1e-9);
  EXPECT_EQ(fit->Knee(), 0);
}

TEST(Usl, NoisyPointsStillFindTheKneeRoughly) {
  auto pts = Curve(100, 0.02, 0.002, {1, 5, 10, 25, 55, 95});
  const double wiggle[] = {1.02, 0.98, 1.01, 0.99, 1.03, 0.97};
  for (size_t i = 0; i < pts.size(); ++i) pts[i].throughput *= wiggle[i];
  auto fit = FitUsl(pts);
  ASSERT_TRUE(fit.ok());
  EXPECT_NEAR(fit->Knee(), 22.1, 4);
}

TEST(Usl, NeedsThreeDistinctConcurrencies) {
  EXPECT_EQ(FitUsl({{1, 10}, {2, 19}, {2, 18}}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(FitUsl({}).status().code(), absl::StatusCode::kFailedPrecondition);
  // Points with no throughput are ignored.
  EXPECT_FALSE(FitUsl({{1, 10}, {2, 0}, {3, 25}}).ok());
}

}  // namespace
}  // namespace forkd::autotune
