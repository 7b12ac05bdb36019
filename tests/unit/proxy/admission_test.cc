#include "server/proxy/admission.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstdint>

#include "gtest/gtest.h"
#include "server/proxy/proxy_session.h"
#include "server/scoreboard/scoreboard.h"

namespace forkd::proxy {
namespace {

// The line never looks inside a session: distinct addresses are enough.
ProxySession* Fake(uintptr_t n) {
  return reinterpret_cast<ProxySession*>(n * 16);
}

uint64_t Drain(int fd) {
  uint64_t v = 0;
  if (read(fd, &v, sizeof(v)) != sizeof(v)) return 0;
  return v;
}

TEST(AdmissionTest, AdmitsUpToTheCapacityThenQueues) {
  Admission a(2);
  EXPECT_TRUE(a.TryEnter(Fake(1)));
  EXPECT_TRUE(a.TryEnter(Fake(2)));
  EXPECT_FALSE(a.TryEnter(Fake(3)));
  EXPECT_FALSE(a.TryEnter(Fake(3)));  // asking again does not queue twice
  EXPECT_EQ(a.in_use(), 2u);
}

TEST(AdmissionTest, AFreedSlotGoesToTheFirstInLineAndWakesItsThread) {
  int fd = eventfd(0, EFD_NONBLOCK);
  ASSERT_GE(fd, 0);
  Admission::SetThreadWakeFd(fd);
  Admission a(1);
  ASSERT_TRUE(a.TryEnter(Fake(1)));
  EXPECT_FALSE(a.TryEnter(Fake(2)));
  EXPECT_FALSE(a.TryEnter(Fake(3)));
  EXPECT_EQ(Drain(fd), 0u);
  a.Leave(Fake(1), /*entered=*/true);
  EXPECT_EQ(Drain(fd), 1u);
  EXPECT_EQ(a.Granted(fd), std::vector<ProxySession*>{Fake(2)});
  // A newcomer cannot take the slot handed to the line, nor overtake 3.
  EXPECT_FALSE(a.TryEnter(Fake(4)));
  EXPECT_FALSE(a.TryEnter(Fake(3)));
  EXPECT_TRUE(a.TryEnter(Fake(2)));
  EXPECT_EQ(a.in_use(), 1u);
  a.Leave(Fake(2), true);
  EXPECT_TRUE(a.TryEnter(Fake(3)));
  a.Leave(Fake(3), true);
  EXPECT_TRUE(a.TryEnter(Fake(4)));
  Admission::SetThreadWakeFd(-1);
  close(fd);
}

TEST(AdmissionTest, LeavingTheLineGivesBackAHandedSlot) {
  Admission a(1);
  ASSERT_TRUE(a.TryEnter(Fake(1)));
  EXPECT_FALSE(a.TryEnter(Fake(2)));
  EXPECT_FALSE(a.TryEnter(Fake(3)));
  a.Leave(Fake(1), true);   // handed to 2
  a.Leave(Fake(2), false);  // 2 gave up (a reset stream): on to 3
  EXPECT_TRUE(a.TryEnter(Fake(3)));
  EXPECT_EQ(a.in_use(), 1u);
}

TEST(AdmissionTest, GrowingHandsSlotsToTheLineAndShrinkingWaitsForLeaves) {
  Admission a(1);
  ASSERT_TRUE(a.TryEnter(Fake(1)));
  EXPECT_FALSE(a.TryEnter(Fake(2)));
  a.SetCapacity(3);
  EXPECT_TRUE(a.TryEnter(Fake(2)));
  EXPECT_TRUE(a.TryEnter(Fake(3)));
  a.SetCapacity(1);  // three stay in; nobody new until two left
  EXPECT_FALSE(a.TryEnter(Fake(4)));
  a.Leave(Fake(1), true);
  EXPECT_FALSE(a.TryEnter(Fake(4)));
  a.Leave(Fake(2), true);
  a.Leave(Fake(3), true);
  EXPECT_TRUE(a.TryEnter(Fake(4)));
}

// The rules every new request passes, HTTP/1.1 or an HTTP/2 stream, with
// an HTTP/1.1 or an h2c app (ProxySession and UpstreamBridge both ask).
TEST(AdmissionRulesTest, ADrainedServerRefusesUnlessTheWorkerIsStopping) {
  SessionContext ctx;
  EXPECT_FALSE(RefuseWhileDraining(ctx).has_value());
  std::atomic<uint32_t> draining{1};
  ctx.server_draining = &draining;
  std::optional<Refusal> r = RefuseWhileDraining(ctx);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->failure, Failure::kDraining);
  EXPECT_EQ(r->detail, "server is draining");
  std::atomic<bool> stopping{true};
  ctx.stopping = &stopping;
  EXPECT_FALSE(RefuseWhileDraining(ctx).has_value());
}

TEST(AdmissionRulesTest, TheInFlightCapRefusesAtTheCap) {
  auto board = scoreboard::Scoreboard::Create(1);
  ASSERT_TRUE(board.ok()) << board.status();
  SessionContext ctx;
  ctx.slot = &(*board)->slot(0);
  EXPECT_FALSE(RefuseOverInFlightCap(ctx).has_value());  // no cap
  std::atomic<uint32_t> cap{2};
  ctx.in_flight_cap = &cap;
  ctx.slot->in_flight.store(1);
  EXPECT_FALSE(RefuseOverInFlightCap(ctx).has_value());
  ctx.slot->in_flight.store(2);
  std::optional<Refusal> r = RefuseOverInFlightCap(ctx);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->failure, Failure::kOverCapacity);
  EXPECT_EQ(r->detail, "worker at its cap of 2 requests in flight");
  cap.store(0);  // 0: no cap
  EXPECT_FALSE(RefuseOverInFlightCap(ctx).has_value());
}

}  // namespace
}  // namespace forkd::proxy
