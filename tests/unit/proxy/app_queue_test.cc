#include "server/proxy/app_queue.h"

#include <atomic>
#include <memory>

#include "gtest/gtest.h"
#include "server/scoreboard/scoreboard.h"

namespace forkd::proxy {
namespace {

using scoreboard::AppState;
using upstream::AppReservation;
using upstream::AppRouter;

// One ready app process with `cap`, its router, and a queue counting into
// plain atomics the test reads.
struct QueueFixture {
  explicit QueueFixture(uint32_t cap, int64_t max_wait_ms = 1000) {
    sb = *scoreboard::Scoreboard::Create(1, 1);
    sb->app_slot(0).cap.store(cap);
    sb->app_slot(0).state.store(static_cast<uint32_t>(AppState::kReady));
    router = std::make_unique<AppRouter>(sb.get());
    queue = std::make_unique<AppQueue>(
        router.get(), max_wait_ms,
        AppQueueMetrics{&queued, &timeouts, &waits, &wait_us});
  }
  std::unique_ptr<scoreboard::Scoreboard> sb;
  std::unique_ptr<AppRouter> router;
  std::unique_ptr<AppQueue> queue;
  std::atomic<uint32_t> queued{0};
  std::atomic<uint64_t> timeouts{0}, waits{0}, wait_us{0};
};

TEST(AppQueue, EntersAtOnceWhileThereIsRoom) {
  QueueFixture f(2);
  int a, b;
  AppReservation r;
  EXPECT_EQ(f.queue->TryEnter(&a, 0, &r), AppQueue::Result::kReserved);
  EXPECT_EQ(f.queue->TryEnter(&b, 0, &r), AppQueue::Result::kReserved);
  EXPECT_EQ(f.sb->app_slot(0).in_flight.load(), 2u);
  EXPECT_EQ(f.queue->size(), 0u);
}

TEST(AppQueue, WaitersGetProcessesInArrivalOrder) {
  QueueFixture f(1);
  int running, first, second, third;
  AppReservation held, r;
  ASSERT_EQ(f.queue->TryEnter(&running, 0, &held), AppQueue::Result::kReserved);
  EXPECT_EQ(f.queue->TryEnter(&first, 1, &r), AppQueue::Result::kWaiting);
  EXPECT_EQ(f.queue->TryEnter(&second, 2, &r), AppQueue::Result::kWaiting);
  EXPECT_EQ(f.queued.load(), 2u);
  // A freed process wakes the head of the line, not whoever asks first.
  EXPECT_EQ(f.queue->Release(held, true), &first);
  EXPECT_EQ(f.queue->TryEnter(&second, 10, &r), AppQueue::Result::kWaiting);
  EXPECT_EQ(f.queue->TryEnter(&third, 10, &r), AppQueue::Result::kWaiting);
  EXPECT_EQ(f.queue->TryEnter(&first, 11, &r), AppQueue::Result::kReserved);
  EXPECT_EQ(f.waits.load(), 1u);
  EXPECT_EQ(f.wait_us.load(), 10u * 1000);  // joined at 1, in at 11
  EXPECT_EQ(f.queue->Release(r, true), &second);
  EXPECT_EQ(f.queue->TryEnter(&second, 12, &r), AppQueue::Result::kReserved);
  EXPECT_EQ(f.queue->Release(r, true), &third);
  EXPECT_EQ(f.queue->TryEnter(&third, 13, &r), AppQueue::Result::kReserved);
  EXPECT_EQ(f.queue->Release(r, true), nullptr);
  EXPECT_EQ(f.queued.load(), 0u);
  EXPECT_EQ(f.sb->app_slot(0).requests.load(), 4u);
}

// The worker's loop wakes whoever Head names: the front of the line, then
// the next once the front got its process or left.
TEST(AppQueue, HeadIsTheFrontOfTheLineAsItMoves) {
  QueueFixture f(1);
  int running, first, second;
  AppReservation held, r;
  EXPECT_EQ(f.queue->Head(), nullptr);
  ASSERT_EQ(f.queue->TryEnter(&running, 0, &held), AppQueue::Result::kReserved);
  EXPECT_EQ(f.queue->Head(), nullptr);  // it got in: nobody waits
  ASSERT_EQ(f.queue->TryEnter(&first, 1, &r), AppQueue::Result::kWaiting);
  ASSERT_EQ(f.queue->TryEnter(&second, 2, &r), AppQueue::Result::kWaiting);
  EXPECT_EQ(f.queue->Head(), &first);
  f.queue->Release(held, true);
  ASSERT_EQ(f.queue->TryEnter(&first, 3, &r), AppQueue::Result::kReserved);
  EXPECT_EQ(f.queue->Head(), &second);
  f.queue->Leave(&second);
  EXPECT_EQ(f.queue->Head(), nullptr);
}

TEST(AppQueue, ANewcomerDoesNotJumpTheLine) {
  QueueFixture f(1);
  int running, waiting, newcomer;
  AppReservation held, r;
  ASSERT_EQ(f.queue->TryEnter(&running, 0, &held), AppQueue::Result::kReserved);
  ASSERT_EQ(f.queue->TryEnter(&waiting, 0, &r), AppQueue::Result::kWaiting);
  f.queue->Release(held, true);
  // Room now, but someone is waiting: the newcomer queues behind it.
  EXPECT_EQ(f.queue->TryEnter(&newcomer, 1, &r), AppQueue::Result::kWaiting);
  EXPECT_EQ(f.queue->TryEnter(&waiting, 1, &r), AppQueue::Result::kReserved);
}

TEST(AppQueue, TimesOutAfterTheLimitAndCountsIt) {
  QueueFixture f(1, 30000);
  int running, waiting;
  AppReservation held, r;
  ASSERT_EQ(f.queue->TryEnter(&running, 0, &held), AppQueue::Result::kReserved);
  ASSERT_EQ(f.queue->TryEnter(&waiting, 100, &r), AppQueue::Result::kWaiting);
  EXPECT_EQ(f.queue->TryEnter(&waiting, 30099, &r), AppQueue::Result::kWaiting);
  EXPECT_EQ(f.queue->TryEnter(&waiting, 30100, &r),
            AppQueue::Result::kTimedOut);
  EXPECT_EQ(f.timeouts.load(), 1u);
  EXPECT_EQ(f.queued.load(), 0u);
  EXPECT_EQ(f.queue->size(), 0u);
  EXPECT_EQ(f.sb->app_slot(0).in_flight.load(), 1u);  // only `running`
}

TEST(AppQueue, ANonHeadTimesOutWhileTheHeadStillWaits) {
  QueueFixture f(1, 50);
  int running, head, behind;
  AppReservation held, r;
  ASSERT_EQ(f.queue->TryEnter(&running, 0, &held), AppQueue::Result::kReserved);
  ASSERT_EQ(f.queue->TryEnter(&head, 40, &r), AppQueue::Result::kWaiting);
  ASSERT_EQ(f.queue->TryEnter(&behind, 0, &r), AppQueue::Result::kWaiting);
  EXPECT_EQ(f.queue->TryEnter(&behind, 0 + 50, &r),
            AppQueue::Result::kTimedOut);
  EXPECT_EQ(f.queue->TryEnter(&head, 60, &r), AppQueue::Result::kWaiting);
}

TEST(AppQueue, LeavingGivesUpThePlace) {
  QueueFixture f(1);
  int running, gone, next;
  AppReservation held, r;
  ASSERT_EQ(f.queue->TryEnter(&running, 0, &held), AppQueue::Result::kReserved);
  ASSERT_EQ(f.queue->TryEnter(&gone, 0, &r), AppQueue::Result::kWaiting);
  ASSERT_EQ(f.queue->TryEnter(&next, 0, &r), AppQueue::Result::kWaiting);
  f.queue->Leave(&gone);
  f.queue->Leave(&gone);  // twice is harmless
  EXPECT_EQ(f.queued.load(), 1u);
  EXPECT_EQ(f.queue->Release(held, true), &next);
  EXPECT_EQ(f.queue->TryEnter(&next, 1, &r), AppQueue::Result::kReserved);
}

// Two proxy workers' lines over one app process: the worker that frees it
// does not keep it for its own younger head while an older head waits in
// the other worker (within QueueHeads::kSlackMs), and a newcomer does not
// jump ahead of either. Without QueueHeads worker B would serve b first.
TEST(QueueHeads, TheOldestHeadAcrossWorkersGoesFirst) {
  auto sb = *scoreboard::Scoreboard::Create(2, 1);
  sb->app_slot(0).cap.store(1);
  sb->app_slot(0).state.store(static_cast<uint32_t>(AppState::kReady));
  AppRouter router(sb.get());
  QueueHeads heads_a(sb.get(), 0, 0), heads_b(sb.get(), 1, 0);
  AppQueue a(&router, 0, AppQueueMetrics{}, nullptr, &heads_a);
  AppQueue b(&router, 0, AppQueueMetrics{}, nullptr, &heads_b);
  int running, old_a, young_b, newcomer;
  AppReservation held, r;
  ASSERT_EQ(b.TryEnter(&running, 0, &held), AppQueue::Result::kReserved);
  EXPECT_EQ(a.TryEnter(&old_a, 10, &r), AppQueue::Result::kWaiting);
  EXPECT_EQ(sb->slot(0).queue_head_ms.load(), 10);
  EXPECT_EQ(b.TryEnter(&young_b, 50, &r), AppQueue::Result::kWaiting);
  EXPECT_EQ(b.Release(held, true), &young_b);  // B's loop wakes its head...
  EXPECT_EQ(b.TryEnter(&young_b, 60, &r), AppQueue::Result::kWaiting);
  EXPECT_EQ(b.TryEnter(&newcomer, 60, &r), AppQueue::Result::kWaiting);
  // ...which defers to A's, older by more than the slack, on A's recheck.
  ASSERT_EQ(a.TryEnter(&old_a, 62, &r), AppQueue::Result::kReserved);
  EXPECT_EQ(sb->slot(0).queue_head_ms.load(), 0);  // A's line is empty
  EXPECT_EQ(a.Release(r, true), nullptr);
  EXPECT_EQ(b.TryEnter(&young_b, 70, &r), AppQueue::Result::kReserved);
  b.Release(r, true);
  EXPECT_EQ(b.TryEnter(&newcomer, 71, &r), AppQueue::Result::kReserved);
}

// Heads within the slack do not wait for each other (no idle process for
// the sake of a few milliseconds), and a dead worker's stale head is
// ignored.
TEST(QueueHeads, SlackAndStaleHeads) {
  auto sb = *scoreboard::Scoreboard::Create(3, 1);
  QueueHeads mine(sb.get(), 0, /*stale_ms=*/1000);
  sb->SetQueueHead(1, 100);
  EXPECT_EQ(sb->queue_heads().load(), 1u);
  EXPECT_FALSE(mine.OtherWaitsLonger(105, 200));
  EXPECT_FALSE(mine.OtherWaitsLonger(100 + QueueHeads::kSlackMs, 200));
  EXPECT_TRUE(mine.OtherWaitsLonger(100 + QueueHeads::kSlackMs + 1, 200));
  EXPECT_FALSE(mine.OtherWaitsLonger(500, 1200));  // slot 1's is stale
  mine.Publish(42);
  EXPECT_EQ(sb->slot(0).queue_head_ms.load(), 42);
  EXPECT_EQ(sb->queue_heads().load(), 2u);
  sb->ResetSlot(1);  // the master, for a worker that died waiting
  mine.Publish(0);
  EXPECT_EQ(sb->queue_heads().load(), 0u);
  EXPECT_FALSE(mine.OtherWaitsLonger(500, 600));
}

}  // namespace
}  // namespace forkd::proxy
