#include "server/proxy/error_response.h"

#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace forkd::proxy {
namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;
using ::testing::ElementsAre;
using ::testing::Pair;

Fields Of(const ErrorAnswer& a) {
  Fields f;
  for (const http1::Header& h : a.fields) f.emplace_back(h.name, h.value);
  return f;
}

// Both app sides of an HTTP/2 stream answer with this one function: what
// the client reads must not depend on which one failed.
TEST(ErrorAnswerTest, PlainAnswerForAStream) {
  ErrorAnswer a = BuildErrorAnswer(502, Failure::kUpstreamRefused,
                                   "app refused", /*head_request=*/false,
                                   /*grpc=*/false);
  EXPECT_FALSE(a.head_only);
  EXPECT_EQ(a.body, "Bad Gateway: app refused\n");
  EXPECT_THAT(Of(a),
              ElementsAre(Pair("Content-Type", "text/plain; charset=utf-8"),
                          Pair("Content-Length", "25")));
}

TEST(ErrorAnswerTest, HeadGetsTheFieldsWithoutTheBody) {
  ErrorAnswer a = BuildErrorAnswer(504, Failure::kUpstreamTimeout, "slow",
                                   /*head_request=*/true, /*grpc=*/false);
  EXPECT_TRUE(a.head_only);
  EXPECT_TRUE(a.body.empty());
  // The Content-Length a GET would get.
  EXPECT_THAT(Of(a),
              ElementsAre(Pair("Content-Type", "text/plain; charset=utf-8"),
                          Pair("Content-Length", "22")));
}

TEST(ErrorAnswerTest, QueueTimeoutSaysComeBackSoon) {
  ErrorAnswer a = BuildErrorAnswer(503, Failure::kQueueTimeout, "busy",
                                   /*head_request=*/false, /*grpc=*/false);
  EXPECT_THAT(Of(a), ::testing::Contains(Pair("Retry-After", "1")));
  ErrorAnswer b = BuildErrorAnswer(503, Failure::kOverCapacity, "busy",
                                   /*head_request=*/false, /*grpc=*/false);
  EXPECT_THAT(
      Of(b),
      ::testing::Not(::testing::Contains(Pair("Retry-After", ::testing::_))));
}

TEST(ErrorAnswerTest, GrpcCallGetsTrailersOnlyUnavailable) {
  ErrorAnswer a = BuildErrorAnswer(503, Failure::kDraining, "draining",
                                   /*head_request=*/false, /*grpc=*/true);
  EXPECT_TRUE(a.head_only);
  EXPECT_TRUE(a.body.empty());
  EXPECT_THAT(Of(a), ElementsAre(Pair("content-type", "application/grpc"),
                                 Pair("grpc-status", "14"),
                                 Pair("grpc-message",
                                      "503 Service Unavailable: draining")));
}

}  // namespace
}  // namespace forkd::proxy
