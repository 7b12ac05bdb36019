#include "server/upstream/app_router.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "server/scoreboard/scoreboard.h"
#include "server/upstream/upstream_pool.h"

namespace forkd::upstream {
namespace {

using scoreboard::AppSlot;
using scoreboard::AppState;
using scoreboard::Scoreboard;

// A real scoreboard with `n` app slots, each kReady with `cap`, driven by
// the test as the master would.
struct Board {
  Board(uint32_t n, uint32_t cap) {
    sb = *Scoreboard::Create(1, n);
    for (uint32_t i = 0; i < n; ++i) {
      Set(i, AppState::kReady, cap);
    }
  }
  AppSlot& slot(uint32_t i) { return sb->app_slot(i); }
  void Set(uint32_t i, AppState s, uint32_t cap) {
    slot(i).cap.store(cap);
    slot(i).state.store(static_cast<uint32_t>(s), std::memory_order_release);
  }
  // A new process in slot i, as the master starts one.
  void Replace(uint32_t i) {
    slot(i).state.store(static_cast<uint32_t>(AppState::kEmpty));
    slot(i).incarnation.fetch_add(1);
    slot(i).in_flight.store(0);
    slot(i).state.store(static_cast<uint32_t>(AppState::kReady),
                        std::memory_order_release);
  }
  std::unique_ptr<Scoreboard> sb;
};

// Sequential requests (each done before the next) tie at zero in flight:
// they rotate over the ready processes even when the slot capacity is far
// above the processes in use (a start index into all slots would wrap to
// slot 0 for most of them).
TEST(AppRouter, IdleTiesRotateEvenlyWhenFewSlotsOfManyAreUsed) {
  Board b(64, 8);
  for (uint32_t i = 3; i < 64; ++i) b.Set(i, AppState::kEmpty, 8);
  int64_t now = 1000;
  AppRouter router(&b.slot(0), 64, [&now] { return now; });
  std::vector<int> hits(3, 0);
  for (int i = 0; i < 30; ++i) {
    auto r = router.TryReserve();
    ASSERT_TRUE(r.has_value());
    ASSERT_LT(r->slot, 3u);
    ++hits[r->slot];
    router.Release(*r, true);
  }
  EXPECT_EQ(hits, (std::vector<int>{10, 10, 10}));
}

// A request whose connect a process refused (dead, not yet reaped) never
// gets that process again, however the ties fall; a new process in the
// same slot (new incarnation) is fair game.
TEST(AppRouter, AvoidSkipsTheRefusingProcessUntilItsSlotIsReplaced) {
  Board b(2, 8);
  int64_t now = 1000;
  AppRouter router(&b.slot(0), 2, [&now] { return now; });
  AppReservation dead{0, b.slot(0).incarnation.load()};
  for (int i = 0; i < 10; ++i) {
    auto r = router.TryReserve(&dead);
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->slot, 1u);
    router.Release(*r, true);
  }
  b.Set(1, AppState::kEmpty, 8);  // only the refusing one is left
  EXPECT_FALSE(router.TryReserve(&dead).has_value());
  b.Replace(0);
  auto r = router.TryReserve(&dead);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->slot, 0u);
}

// A refusal is counted for the process the request reserved, never for
// the one that replaced it in the slot meanwhile.
TEST(AppRouter, ReportRefusedCountsOnlyTheReservedIncarnation) {
  Board b(1, 8);
  AppRouter router(&b.slot(0), 1);
  auto r = router.TryReserve();
  ASSERT_TRUE(r.has_value());
  router.ReportRefused(*r);
  EXPECT_EQ(b.slot(0).refused.load(), 1u);
  b.Replace(0);
  router.ReportRefused(*r);
  EXPECT_EQ(b.slot(0).refused.load(), 1u);
  router.ReportRefused(AppReservation{7, r->incarnation});  // no such slot
}

TEST(AppRouter, SpreadsOverEveryReadyProcess) {
  Board b(4, 8);
  int64_t now = 1000;
  AppRouter router(&b.slot(0), 4, [&now] { return now; });
  std::set<uint32_t> used;
  for (int i = 0; i < 4; ++i) {
    auto r = router.TryReserve();
    ASSERT_TRUE(r.has_value());
    used.insert(r->slot);
  }
  EXPECT_EQ(used.size(), 4u);  // the fewest in flight: one each
  for (uint32_t i = 0; i < 4; ++i) {
    EXPECT_EQ(b.slot(i).in_flight.load(), 1u);
    EXPECT_EQ(b.slot(i).last_progress_ms.load(), 1000);  // 0 -> 1
  }
}

TEST(AppRouter, EqualIdleProcessesTakeTurns) {
  Board b(3, 1);
  AppRouter router(&b.slot(0), 3);
  std::set<uint32_t> used;
  // One request at a time: each is released before the next, so every
  // slot is equally idle and only the round-robin start spreads them.
  for (int i = 0; i < 3; ++i) {
    auto r = router.TryReserve();
    ASSERT_TRUE(r.has_value());
    used.insert(r->slot);
    router.Release(*r, true);
  }
  EXPECT_EQ(used.size(), 3u);
}

TEST(AppRouter, PicksTheLeastLoaded) {
  Board b(3, 10);
  b.slot(0).in_flight.store(5);
  b.slot(1).in_flight.store(2);
  b.slot(2).in_flight.store(7);
  AppRouter router(&b.slot(0), 3);
  for (int i = 0; i < 3; ++i) {
    auto r = router.TryReserve();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->slot, 1u);
  }
  EXPECT_EQ(b.slot(1).in_flight.load(), 5u);
}

TEST(AppRouter, FullEverywhereIsNoReservation) {
  Board b(2, 1);
  AppRouter router(&b.slot(0), 2);
  auto a = router.TryReserve();
  auto c = router.TryReserve();
  ASSERT_TRUE(a && c);
  EXPECT_FALSE(router.TryReserve().has_value());
  router.Release(*a, true);
  auto d = router.TryReserve();
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->slot, a->slot);
  EXPECT_EQ(b.slot(a->slot).requests.load(), 1u);
}

TEST(AppRouter, RetiringAndStartingGetNothingButFinishTheirs) {
  Board b(3, 4);
  AppRouter router(&b.slot(0), 3);
  b.slot(0).in_flight.store(0);
  auto held = router.TryReserve();
  ASSERT_TRUE(held.has_value());
  b.Set(held->slot, AppState::kRetiring, 4);
  const uint32_t other_starting = (held->slot + 1) % 3;
  b.Set(other_starting, AppState::kStarting, 4);
  for (int i = 0; i < 4; ++i) {
    auto r = router.TryReserve();
    ASSERT_TRUE(r.has_value());
    EXPECT_NE(r->slot, held->slot);
    EXPECT_NE(r->slot, other_starting);
  }
  EXPECT_TRUE(router.StillServes(*held));  // retiring: its request finishes
  router.Release(*held, true);
  EXPECT_EQ(b.slot(held->slot).in_flight.load(), 0u);
  EXPECT_EQ(b.slot(held->slot).requests.load(), 1u);
}

TEST(AppRouter, ReleaseOfAnOldIncarnationLeavesTheNewOneAlone) {
  Board b(1, 2);
  AppRouter router(&b.slot(0), 1);
  auto old = router.TryReserve();
  ASSERT_TRUE(old.has_value());
  b.Replace(0);
  EXPECT_FALSE(router.StillServes(*old));
  auto fresh = router.TryReserve();
  ASSERT_TRUE(fresh.has_value());
  EXPECT_NE(fresh->incarnation, old->incarnation);
  router.Release(*old, true);
  EXPECT_EQ(b.slot(0).in_flight.load(), 1u);  // the new one's request
  EXPECT_EQ(b.slot(0).requests.load(), 0u);
}

TEST(AppRouter, CapNeverExceededByConcurrentReservers) {
  constexpr uint32_t kSlots = 3;
  constexpr uint32_t kCap = 2;
  Board b(kSlots, kCap);
  // Two routers: two proxy workers sharing the scoreboard.
  AppRouter r1(&b.slot(0), kSlots);
  AppRouter r2(&b.slot(0), kSlots);
  std::atomic<bool> over{false};
  std::atomic<uint64_t> reserved{0};
  auto run = [&](AppRouter* router) {
    for (int i = 0; i < 20000; ++i) {
      auto r = router->TryReserve();
      if (!r) continue;
      reserved.fetch_add(1);
      if (b.slot(r->slot).in_flight.load() > kCap) over = true;
      router->Release(*r, true);
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) threads.emplace_back(run, t % 2 ? &r1 : &r2);
  // A watcher samples the counts while the reservers run.
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    while (!done) {
      for (uint32_t i = 0; i < kSlots; ++i) {
        if (b.slot(i).in_flight.load() > kCap) over = true;
      }
    }
  });
  for (auto& t : threads) t.join();
  done = true;
  watcher.join();
  EXPECT_FALSE(over.load());
  EXPECT_GT(reserved.load(), 0u);
  uint64_t finished = 0;
  for (uint32_t i = 0; i < kSlots; ++i) {
    EXPECT_EQ(b.slot(i).in_flight.load(), 0u);
    finished += b.slot(i).requests.load();
  }
  EXPECT_EQ(finished, reserved.load());
}

// AppPools: pooled connections follow the process, not the slot.
struct PoolsFixture {
  PoolsFixture() : b(2, 4), router(&b.slot(0), 2), pools(&router, 4) {
    for (uint32_t i = 0; i < 2; ++i) {
      std::string path = "/tmp/forkd-app-" + std::to_string(i) + ".sock";
      strncpy(b.slot(i).socket_path, path.c_str(),
              sizeof(b.slot(i).socket_path) - 1);
    }
    pools.SetDiscard([this](std::unique_ptr<Connection> c) {
      ++discarded;
      c.reset();
    });
  }
  // A connected pair standing in for a dialed app connection.
  std::unique_ptr<Connection> Conn() {
    int sv[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    peers.push_back(sv[1]);
    auto c = std::make_unique<Connection>();
    c->fd = sv[0];
    return c;
  }
  ~PoolsFixture() {
    for (int fd : peers) close(fd);
  }
  Board b;
  AppRouter router;
  AppPools pools;
  int discarded = 0;
  std::vector<int> peers;
};

TEST(AppPools, ReusesAConnectionOfTheSameProcess) {
  PoolsFixture f;
  AppReservation r{0, f.b.slot(0).incarnation.load()};
  f.pools.Release(r, f.Conn());
  EXPECT_EQ(f.pools.idle_count(), 1u);
  EXPECT_NE(f.pools.TakeIdle(r), nullptr);
  EXPECT_EQ(f.pools.TakeIdle(AppReservation{1, 0}), nullptr);  // other slot
  EXPECT_EQ(f.pools.Display(r), "unix:/tmp/forkd-app-0.sock");
}

TEST(AppPools, ANewIncarnationNeverGetsAnOldConnection) {
  PoolsFixture f;
  AppReservation old{0, f.b.slot(0).incarnation.load()};
  f.pools.Release(old, f.Conn());
  f.b.Replace(0);
  AppReservation fresh{0, f.b.slot(0).incarnation.load()};
  EXPECT_EQ(f.pools.TakeIdle(fresh), nullptr);
  EXPECT_EQ(f.discarded, 1);
  EXPECT_EQ(f.pools.idle_count(), 0u);
  // A connection of the old process coming back after is closed too.
  f.pools.Release(old, f.Conn());
  EXPECT_EQ(f.discarded, 2);
  EXPECT_EQ(f.pools.idle_count(), 0u);
}

TEST(AppPools, SweepClosesConnectionsOfRetiredAndReplacedProcesses) {
  PoolsFixture f;
  AppReservation r0{0, f.b.slot(0).incarnation.load()};
  AppReservation r1{1, f.b.slot(1).incarnation.load()};
  f.pools.Release(r0, f.Conn());
  f.pools.Release(r1, f.Conn());
  f.pools.Sweep();
  EXPECT_EQ(f.pools.idle_count(), 2u);  // both still in the rotation
  f.b.Set(0, AppState::kRetiring, 4);
  f.pools.Sweep();
  EXPECT_EQ(f.pools.idle_count(), 1u);
  EXPECT_EQ(f.discarded, 1);
  // A retiring process's finished exchange is not pooled either.
  f.pools.Release(r0, f.Conn());
  EXPECT_EQ(f.discarded, 2);
  f.b.Set(1, AppState::kEmpty, 4);
  f.pools.Sweep();
  EXPECT_EQ(f.pools.idle_count(), 0u);
  EXPECT_EQ(f.discarded, 3);
}

}  // namespace
}  // namespace forkd::upstream
