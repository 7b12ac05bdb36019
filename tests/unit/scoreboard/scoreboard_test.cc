#include "server/scoreboard/scoreboard.h"

#include <unistd.h>

#include <cstring>

#include "gtest/gtest.h"

namespace forkd::scoreboard {
namespace {

TEST(HistogramTest, ObservationsLandInTheirLeBucket) {
  Histogram h;
  h.Observe(0.0001);  // <= 0.0005
  h.Observe(0.0005);  // exactly on a bound: that bucket ("le")
  h.Observe(0.0006);  // <= 0.001
  h.Observe(0.3);     // <= 0.5
  h.Observe(10.0);    // <= 10
  h.Observe(11.0);    // +Inf
  EXPECT_EQ(h.buckets[0].load(), 2u);
  EXPECT_EQ(h.buckets[1].load(), 1u);
  EXPECT_EQ(h.buckets[9].load(), 1u);
  EXPECT_EQ(h.buckets[13].load(), 1u);
  EXPECT_EQ(h.buckets[kDurationBuckets.size()].load(), 1u);
  uint64_t total = 0;
  for (const auto& b : h.buckets) total += b.load();
  EXPECT_EQ(total, 6u);
  // 100 + 500 + 600 + 300000 + 10000000 + 11000000 microseconds.
  EXPECT_NEAR(static_cast<double>(h.sum_us.load()), 21301200.0, 2.0);
}

TEST(CounterTotalsTest, AddsCountersAndOtherTotals) {
  Counters c;
  c.requests[static_cast<size_t>(Method::kGet)][1] = 3;   // GET 2xx
  c.requests[static_cast<size_t>(Method::kPost)][4] = 2;  // POST 5xx
  c.rejected[static_cast<size_t>(Rejection::kOverCapacity)] = 4;
  c.upstream_errors[static_cast<size_t>(UpstreamError::kTimeout)] = 1;
  c.bytes_in = 100;
  c.bytes_out = 200;
  c.connections_accepted = 7;
  c.request_duration.Observe(0.002);
  c.upstream_duration.Observe(0.2);

  CounterTotals t;
  t.Add(c);
  t.Add(c);
  EXPECT_EQ(t.TotalRequests(), 10u);
  EXPECT_EQ(t.requests[static_cast<size_t>(Method::kGet)][1], 6u);
  EXPECT_EQ(t.rejected[static_cast<size_t>(Rejection::kOverCapacity)], 8u);
  EXPECT_EQ(t.upstream_errors[static_cast<size_t>(UpstreamError::kTimeout)],
            2u);
  EXPECT_EQ(t.bytes_in, 200u);
  EXPECT_EQ(t.bytes_out, 400u);
  EXPECT_EQ(t.connections_accepted, 14u);
  EXPECT_EQ(t.request_duration.buckets[2], 2u);   // le 0.0025
  EXPECT_EQ(t.upstream_duration.buckets[8], 2u);  // le 0.25
  EXPECT_EQ(t.request_duration.sum_us, 4000u);

  CounterTotals sum;
  sum.Add(t);
  sum.Add(t);
  EXPECT_EQ(sum.TotalRequests(), 20u);
  EXPECT_EQ(sum.bytes_out, 800u);
  EXPECT_EQ(sum.request_duration.buckets[2], 4u);
  EXPECT_EQ(sum.upstream_duration.sum_us, 800000u);
}

TEST(CounterTotalsTest, AddsProtocolAndHttp2Counters) {
  Counters c;
  c.requests_by_protocol[static_cast<size_t>(Protocol::kHttp2)][1] = 3;
  c.requests_by_protocol[static_cast<size_t>(Protocol::kHttp1)][4] = 1;
  c.http2.connections = 2;
  c.http2.streams = 5;
  c.http2.rst_sent[Http2Counters::Slot(0xb)] = 1;
  c.http2.rst_received[Http2Counters::Slot(0x8)] = 4;
  c.http2.goaway_sent[Http2Counters::Slot(0x1234)] = 1;  // unknown: last slot
  c.http2.rapid_resets = 1;
  c.http2.header_lists_too_large = 6;
  c.fields_dropped[static_cast<size_t>(FieldDrop::kUntrustedForwarding)] = 2;
  c.proxy_protocol_accepted = 7;
  c.proxy_protocol_rejected[static_cast<size_t>(
      ProxyProtocolReject::kTimeout)] = 1;

  CounterTotals t;
  t.Add(c);
  t.Add(c);
  CounterTotals sum;
  sum.Add(t);
  sum.Add(c);
  EXPECT_EQ(sum.requests_by_protocol[static_cast<size_t>(Protocol::kHttp2)][1],
            9u);
  EXPECT_EQ(sum.requests_by_protocol[static_cast<size_t>(Protocol::kHttp1)][4],
            3u);
  EXPECT_EQ(sum.http2.connections, 6u);
  EXPECT_EQ(sum.http2.streams, 15u);
  EXPECT_EQ(sum.http2.rst_sent[0xb], 3u);
  EXPECT_EQ(sum.http2.rst_received[0x8], 12u);
  EXPECT_EQ(sum.http2.goaway_sent[Http2Counters::kCodeSlots - 1], 3u);
  EXPECT_EQ(sum.http2.rapid_resets, 3u);
  EXPECT_EQ(sum.http2.header_lists_too_large, 18u);
  EXPECT_EQ(
      sum.fields_dropped[static_cast<size_t>(FieldDrop::kUntrustedForwarding)],
      6u);
  EXPECT_EQ(sum.proxy_protocol_accepted, 21u);
  EXPECT_EQ(sum.proxy_protocol_rejected[static_cast<size_t>(
                ProxyProtocolReject::kTimeout)],
            3u);
  EXPECT_STREQ(ProtocolName(Protocol::kHttp1), "http1");
  EXPECT_STREQ(ProtocolName(Protocol::kHttp2), "http2");
}

TEST(ScoreboardTest, AggregatesSlotsAndResetsOne) {
  auto sb = Scoreboard::Create(4);
  ASSERT_TRUE(sb.ok()) << sb.status();
  Scoreboard& board = **sb;
  EXPECT_EQ(board.capacity(), 4u);
  for (uint32_t i = 0; i < 4; ++i) {
    EXPECT_EQ(board.slot(i).state.load(),
              static_cast<uint32_t>(WorkerState::kEmpty));
    board.slot(i).pid = 100 + i;
    board.slot(i).state = static_cast<uint32_t>(WorkerState::kReady);
    board.slot(i).counters.requests[0][1] = i + 1;  // 1+2+3+4
    board.slot(i).counters.bytes_out = 10;
  }
  CounterTotals all;
  for (uint32_t i = 0; i < 4; ++i) all.Add(board.slot(i).counters);
  EXPECT_EQ(all.TotalRequests(), 10u);
  EXPECT_EQ(all.bytes_out, 40u);

  board.slot(2).counters.request_duration.Observe(1.0);
  board.slot(2).exit_reason = static_cast<uint32_t>(ExitReason::kMaxRequests);
  board.slot(2).heartbeat_ms = 12345;
  board.ResetSlot(2);
  const Slot& s = board.slot(2);
  EXPECT_EQ(s.pid.load(), 0);
  EXPECT_EQ(s.state.load(), static_cast<uint32_t>(WorkerState::kEmpty));
  EXPECT_EQ(s.heartbeat_ms.load(), 0);
  EXPECT_EQ(s.exit_reason.load(), 0u);
  EXPECT_EQ(s.counters.requests[0][1].load(), 0u);
  EXPECT_EQ(s.counters.bytes_out.load(), 0u);
  for (const auto& b : s.counters.request_duration.buckets) {
    EXPECT_EQ(b.load(), 0u);
  }
  // Neighbours are untouched.
  EXPECT_EQ(board.slot(1).pid.load(), 101);
  EXPECT_EQ(board.slot(3).counters.requests[0][1].load(), 4u);
}

TEST(ScoreboardTest, WorkersAttachToTheSameMemory) {
  auto sb = Scoreboard::Create(2);
  ASSERT_TRUE(sb.ok());
  (*sb)->settings().threads = 8;
  auto view = Scoreboard::Attach(dup((*sb)->fd()));
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ((*view)->capacity(), 2u);
  EXPECT_EQ((*view)->settings().threads.load(), 8u);
  (*view)->slot(1).heartbeat_ms = 777;
  EXPECT_EQ((*sb)->slot(1).heartbeat_ms.load(), 777);
}

TEST(ScoreboardTest, AppSlotsFollowTheWorkerSlotsAndAreShared) {
  auto sb = Scoreboard::Create(3, 5);
  ASSERT_TRUE(sb.ok());
  EXPECT_EQ((*sb)->app_capacity(), 5u);
  (*sb)->slot(2).heartbeat_ms = 99;  // the last worker slot
  AppSlot& app = (*sb)->app_slot(4);
  std::strcpy(app.socket_path, "/tmp/forkd-app/app-4.sock");
  app.cap = 8;
  app.state.store(static_cast<uint32_t>(AppState::kReady),
                  std::memory_order_release);
  auto view = Scoreboard::Attach(dup((*sb)->fd()));
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ((*view)->app_capacity(), 5u);
  const AppSlot& seen = (*view)->app_slot(4);
  EXPECT_EQ(seen.state.load(std::memory_order_acquire),
            static_cast<uint32_t>(AppState::kReady));
  EXPECT_STREQ(seen.socket_path, "/tmp/forkd-app/app-4.sock");
  EXPECT_EQ(seen.cap.load(), 8u);
  EXPECT_EQ((*view)->slot(2).heartbeat_ms.load(), 99);  // no overlap
  (*view)->app_slot(0).in_flight = 3;
  EXPECT_EQ((*sb)->app_slot(0).in_flight.load(), 3u);
  EXPECT_STREQ(AppStateName(AppState::kRetiring), "retiring");
}

TEST(ScoreboardTest, SidecarModeHasNoAppSlots) {
  auto sb = Scoreboard::Create(2);
  ASSERT_TRUE(sb.ok());
  EXPECT_EQ((*sb)->app_capacity(), 0u);
}

TEST(ScoreboardTest, AttachRejectsOtherFiles) {
  int fds[2];
  ASSERT_EQ(pipe(fds), 0);
  EXPECT_FALSE(Scoreboard::Attach(fds[0]).ok());
  close(fds[0]);
  close(fds[1]);
}

// Every field of `a` is at least the same field of `b`.
void ExpectNoFieldLower(const CounterTotals& a, const CounterTotals& b) {
  for (size_t m = 0; m < a.requests.size(); ++m) {
    for (size_t k = 0; k < 5; ++k)
      EXPECT_GE(a.requests[m][k], b.requests[m][k]);
  }
  for (size_t i = 0; i < a.rejected.size(); ++i) {
    EXPECT_GE(a.rejected[i], b.rejected[i]);
  }
  for (size_t i = 0; i < a.upstream_errors.size(); ++i) {
    EXPECT_GE(a.upstream_errors[i], b.upstream_errors[i]);
  }
  EXPECT_GE(a.bytes_in, b.bytes_in);
  EXPECT_GE(a.bytes_out, b.bytes_out);
  EXPECT_GE(a.connections_accepted, b.connections_accepted);
  for (size_t i = 0; i < a.request_duration.buckets.size(); ++i) {
    EXPECT_GE(a.request_duration.buckets[i], b.request_duration.buckets[i]);
    EXPECT_GE(a.upstream_duration.buckets[i], b.upstream_duration.buckets[i]);
  }
  EXPECT_GE(a.request_duration.sum_us, b.request_duration.sum_us);
  EXPECT_GE(a.upstream_duration.sum_us, b.upstream_duration.sum_us);
}

// The master's aggregation: retired totals plus every live slot. Folding a
// leaving worker's slot into the retired totals before the slot is reset
// keeps every total where it was, and the next worker in that slot adds on.
TEST(CounterTotalsTest, FoldingARetiredSlotNeverLowersTheTotals) {
  auto sb = Scoreboard::Create(2);
  ASSERT_TRUE(sb.ok());
  Scoreboard& board = **sb;
  CounterTotals retired;
  auto aggregate = [&] {
    CounterTotals t = retired;
    for (uint32_t i = 0; i < board.capacity(); ++i) {
      t.Add(board.slot(i).counters);
    }
    return t;
  };
  auto work = [&](uint32_t i, uint64_t n) {
    Counters& c = board.slot(i).counters;
    c.requests[static_cast<size_t>(Method::kGet)][1] += n;
    c.rejected[static_cast<size_t>(Rejection::kDraining)] += 1;
    c.upstream_errors[static_cast<size_t>(UpstreamError::kReset)] += 1;
    c.bytes_in += 10 * n;
    c.bytes_out += 20 * n;
    c.connections_accepted += n;
    for (uint64_t k = 0; k < n; ++k) {
      c.request_duration.Observe(0.002);
      c.upstream_duration.Observe(0.3);
    }
  };
  work(0, 5);
  work(1, 7);
  CounterTotals before = aggregate();
  EXPECT_EQ(before.TotalRequests(), 12u);

  retired.Add(board.slot(0).counters);  // worker in slot 0 exits
  board.ResetSlot(0);
  CounterTotals after_exit = aggregate();
  ExpectNoFieldLower(after_exit, before);
  ExpectNoFieldLower(before, after_exit);  // equal: nothing lost or doubled

  work(0, 2);  // its replacement serves
  CounterTotals later = aggregate();
  ExpectNoFieldLower(later, after_exit);
  EXPECT_EQ(later.TotalRequests(), 14u);
  EXPECT_EQ(later.request_duration.buckets[2], 14u);  // le 0.0025
  EXPECT_EQ(later.bytes_out, 280u);
}

TEST(ScoreboardTest, MethodIndexAndNames) {
  EXPECT_EQ(MethodIndex("GET", 3), Method::kGet);
  EXPECT_EQ(MethodIndex("DELETE", 6), Method::kDelete);
  EXPECT_EQ(MethodIndex("BREW", 4), Method::kOther);
  EXPECT_EQ(MethodIndex("GETX", 3), Method::kGet);  // length-bounded
  EXPECT_STREQ(MethodName(Method::kPatch), "PATCH");
  EXPECT_STREQ(WorkerStateName(WorkerState::kDraining), "draining");
}

}  // namespace
}  // namespace forkd::scoreboard
