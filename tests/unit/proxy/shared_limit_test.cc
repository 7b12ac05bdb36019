#include "server/proxy/shared_limit.h"

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "server/proxy/app_queue.h"
#include "server/scoreboard/scoreboard.h"

namespace forkd::proxy {
namespace {

using upstream::AppReservation;

std::unique_ptr<scoreboard::Scoreboard> Board(uint32_t workers = 2,
                                              uint32_t apps = 0) {
  auto sb = scoreboard::Scoreboard::Create(workers, apps);
  EXPECT_TRUE(sb.ok()) << sb.status();
  return std::move(*sb);
}

TEST(SharedLimit, ZeroMeansNoLimitButStillCounts) {
  auto sb = Board();
  SharedLimit limit(&sb->app_limit(), &sb->slot(0).limit_held);
  for (int i = 0; i < 100; ++i) ASSERT_TRUE(limit.TryAcquire());
  EXPECT_EQ(limit.in_flight(), 100u);
  EXPECT_EQ(sb->slot(0).limit_held.load(), 100u);
  for (int i = 0; i < 100; ++i) limit.Release();
  EXPECT_EQ(limit.in_flight(), 0u);
  EXPECT_EQ(sb->slot(0).limit_held.load(), 0u);
}

TEST(SharedLimit, TwoWorkersShareOneLimit) {
  auto sb = Board();
  sb->app_limit().limit.store(3);
  SharedLimit a(&sb->app_limit(), &sb->slot(0).limit_held);
  SharedLimit b(&sb->app_limit(), &sb->slot(1).limit_held);
  EXPECT_TRUE(a.TryAcquire());
  EXPECT_TRUE(b.TryAcquire());
  EXPECT_TRUE(a.TryAcquire());
  EXPECT_FALSE(b.TryAcquire());  // 3 in flight across both
  EXPECT_FALSE(a.TryAcquire());
  EXPECT_EQ(sb->app_limit().refused.load(), 2u);
  a.Release();
  EXPECT_TRUE(b.TryAcquire());
  EXPECT_EQ(sb->slot(0).limit_held.load(), 1u);
  EXPECT_EQ(sb->slot(1).limit_held.load(), 2u);
}

TEST(SharedLimit, LoweringTheLimitKeepsPlacesTakenUntilGivenBack) {
  auto sb = Board();
  sb->app_limit().limit.store(4);
  SharedLimit l(&sb->app_limit(), nullptr);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(l.TryAcquire());
  sb->app_limit().limit.store(2);
  EXPECT_FALSE(l.TryAcquire());
  l.Release();
  l.Release();
  EXPECT_FALSE(l.TryAcquire());  // 2 in flight, limit 2
  l.Release();
  EXPECT_TRUE(l.TryAcquire());
}

TEST(SharedLimit, ResetSlotGivesBackTheDeadWorkersPlaces) {
  auto sb = Board();
  sb->app_limit().limit.store(5);
  SharedLimit dead(&sb->app_limit(), &sb->slot(0).limit_held);
  SharedLimit alive(&sb->app_limit(), &sb->slot(1).limit_held);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(dead.TryAcquire());
  ASSERT_TRUE(alive.TryAcquire());
  sb->ResetSlot(0);  // the master reaped it mid-request
  EXPECT_EQ(sb->app_limit().in_flight.load(), 1u);
  alive.Release();
  EXPECT_EQ(sb->app_limit().in_flight.load(), 0u);
  alive.Release();  // never below zero
  EXPECT_EQ(sb->app_limit().in_flight.load(), 0u);
}

// Several takers at once never pass the limit, and every place comes back.
TEST(SharedLimit, ConcurrentTakersNeverPassTheLimit) {
  auto sb = Board(4);
  constexpr uint32_t kLimit = 5;
  sb->app_limit().limit.store(kLimit);
  std::atomic<uint32_t> peak{0};
  std::atomic<uint32_t> inside{0};
  std::vector<std::thread> threads;
  for (uint32_t t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      SharedLimit l(&sb->app_limit(), &sb->slot(t).limit_held);
      for (int i = 0; i < 20000; ++i) {
        if (!l.TryAcquire()) continue;
        uint32_t now = inside.fetch_add(1) + 1;
        uint32_t p = peak.load();
        while (now > p && !peak.compare_exchange_weak(p, now)) {
        }
        inside.fetch_sub(1);
        l.Release();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_LE(peak.load(), kLimit);
  EXPECT_GE(peak.load(), 1u);
  EXPECT_EQ(sb->app_limit().in_flight.load(), 0u);
}

// Sidecar mode: the queue holds requests over the limit, in order, and
// gives their places back with the reservation.
TEST(AppQueueWithLimit, SidecarQueueWaitsForAPlace) {
  auto sb = Board();
  sb->app_limit().limit.store(1);
  SharedLimit limit(&sb->app_limit(), &sb->slot(0).limit_held);
  std::atomic<uint64_t> timeouts{0};
  AppQueue queue(nullptr, /*max_wait_ms=*/100,
                 AppQueueMetrics{.timeouts = &timeouts}, &limit);
  EXPECT_FALSE(queue.routes());
  int a, b, c;
  AppReservation ra, rb, rc;
  ASSERT_EQ(queue.TryEnter(&a, 0, &ra), AppQueue::Result::kReserved);
  EXPECT_TRUE(ra.limited);
  EXPECT_EQ(queue.TryEnter(&b, 1, &rb), AppQueue::Result::kWaiting);
  EXPECT_EQ(queue.TryEnter(&c, 2, &rc), AppQueue::Result::kWaiting);
  EXPECT_EQ(queue.Release(ra, true), &b);
  EXPECT_EQ(queue.TryEnter(&c, 3, &rc), AppQueue::Result::kWaiting);
  EXPECT_EQ(queue.TryEnter(&b, 3, &rb), AppQueue::Result::kReserved);
  EXPECT_EQ(queue.TryEnter(&c, 102, &rc), AppQueue::Result::kTimedOut);
  EXPECT_EQ(timeouts.load(), 1u);
  queue.Release(rb, false);
  EXPECT_EQ(limit.in_flight(), 0u);
}

// App mode: a place of the limit and a process are taken together; a
// process that is full gives the place back at once.
TEST(AppQueueWithLimit, AppModeTakesBothOrNeither) {
  auto sb = Board(1, 1);
  sb->app_slot(0).cap.store(1);
  sb->app_slot(0).state.store(
      static_cast<uint32_t>(scoreboard::AppState::kReady));
  upstream::AppRouter router(sb.get());
  SharedLimit limit(&sb->app_limit(), nullptr);
  AppQueue queue(&router, 0, AppQueueMetrics{}, &limit);
  int a, b;
  AppReservation ra, rb;
  ASSERT_EQ(queue.TryEnter(&a, 0, &ra), AppQueue::Result::kReserved);
  EXPECT_EQ(limit.in_flight(), 1u);
  EXPECT_EQ(queue.TryEnter(&b, 0, &rb), AppQueue::Result::kWaiting);
  EXPECT_EQ(limit.in_flight(), 1u);  // the process was full: no place kept
  queue.Release(ra, true);
  EXPECT_EQ(limit.in_flight(), 0u);
  EXPECT_EQ(sb->app_slot(0).in_flight.load(), 0u);
  // The limit full, the process free: still waiting.
  sb->app_limit().limit.store(1);
  ASSERT_TRUE(limit.TryAcquire());
  EXPECT_EQ(queue.TryEnter(&b, 1, &rb), AppQueue::Result::kWaiting);
  EXPECT_EQ(sb->app_slot(0).in_flight.load(), 0u);
  limit.Release();
  EXPECT_EQ(queue.TryEnter(&b, 2, &rb), AppQueue::Result::kReserved);
  queue.Release(rb, true);
}

}  // namespace
}  // namespace forkd::proxy
