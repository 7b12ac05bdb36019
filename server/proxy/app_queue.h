// The line a request waits in when the app has no room for it: in app
// mode every app process is at its cap; in either mode the shared
// in-flight limit (--autotune limit, SharedLimit) is full. FIFO per proxy
// worker, bounded in time by --max-queue-time (then the caller answers 503
// with Retry-After). Capacity is shared with the other proxy workers
// through the scoreboard, which cannot wake this one, so the worker's loop
// tries the head again whenever it may have freed a place and every
// kRecheckMs while anyone waits (see Head). No I/O.
#ifndef FORKD_SERVER_PROXY_APP_QUEUE_H_
#define FORKD_SERVER_PROXY_APP_QUEUE_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>

#include "server/proxy/shared_limit.h"
#include "server/scoreboard/scoreboard.h"
#include "server/upstream/app_router.h"

namespace forkd::proxy {

// The heads of every proxy worker's line, one value per worker in the
// scoreboard (Slot::queue_head_ms). Each worker keeps its own line, but
// capacity is shared: without this the worker that frees a place would
// give it to its own head at once while older heads elsewhere wait for
// their next recheck, and their requests starve (a burst's p99 grew with
// the number of proxy workers). A head defers to one that has waited more
// than kSlackMs longer in another worker. Any thread.
class QueueHeads {
 public:
  // Two rechecks: within that, order by arrival is not worth idle capacity.
  static constexpr int64_t kSlackMs = 10;

  // `board` must outlive this; `own` is this worker's slot. `stale_ms` > 0:
  // a head older than that is a dead worker's (no head waits that long).
  QueueHeads(scoreboard::Scoreboard* board, uint32_t own, int64_t stale_ms);
  // This worker's head waits since `since_ms`; 0: nobody waits here.
  void Publish(int64_t since_ms);
  // True when another worker's head has waited more than kSlackMs longer
  // than one waiting since `since_ms`, at `now_ms`.
  bool OtherWaitsLonger(int64_t since_ms, int64_t now_ms) const;

 private:
  scoreboard::Scoreboard* board_;
  uint32_t own_;
  int64_t stale_ms_;
};

// Where the queue counts (the worker's scoreboard slot); any may be null.
struct AppQueueMetrics {
  std::atomic<uint32_t>* queued = nullptr;       // gauge: waiting now
  std::atomic<uint64_t>* timeouts = nullptr;     // gave up after the limit
  std::atomic<uint64_t>* waits = nullptr;        // waited, then got a slot
  std::atomic<uint64_t>* wait_us_sum = nullptr;  // their total wait
};

class AppQueue {
 public:
  // How long a waiting request's head should sleep before trying again:
  // other proxy workers free capacity without telling this one.
  static constexpr int64_t kRecheckMs = 5;

  enum class Result { kReserved, kWaiting, kTimedOut };

  // `router` (app mode; null in sidecar mode, where a reservation is only
  // a place of `limit`) and `limit` (null: none) must outlive the queue.
  // A reservation takes a place of `limit` first, then an app process.
  // max_wait_ms <= 0: wait without limit.
  // `heads` (null: this worker's line alone decides) must outlive it too.
  AppQueue(upstream::AppRouter* router, int64_t max_wait_ms,
           AppQueueMetrics metrics, SharedLimit* limit = nullptr,
           QueueHeads* heads = nullptr);

  // Asks for an app process for `waiter` (one request) at `now_ms`.
  // kReserved: *out holds the reservation, give it back with Release.
  // kWaiting: `waiter` is in the line (joined on its first call); call again
  // after kRecheckMs. kTimedOut: it waited max_wait_ms and left the line.
  // Only the head of the line (or a newcomer to an empty line) reserves,
  // so requests get processes in arrival order, and across proxy workers
  // the oldest head goes first (QueueHeads). Any thread.
  // `avoid`: as AppRouter::TryReserve.
  Result TryEnter(const void* waiter, int64_t now_ms,
                  upstream::AppReservation* out,
                  const upstream::AppReservation* avoid = nullptr);
  // `waiter` gives up its place (its client went away). No-op when absent.
  void Leave(const void* waiter);
  // Gives a reservation back (AppRouter::Release, and its place of the
  // limit). Returns the head of the line, which should try again now
  // (nullptr: nobody waits).
  const void* Release(const upstream::AppReservation& r, bool finished);

  // AppRouter::ReportRefused.
  void ReportRefused(const upstream::AppReservation& r) {
    if (router_ != nullptr) router_->ReportRefused(r);
  }

  // The request at the front of the line (nullptr: nobody waits). It is
  // alive: a request leaves the line before it goes away.
  const void* Head();
  size_t size();
  int64_t max_wait_ms() const { return max_wait_ms_; }
  // True in app mode: a reservation names an app process.
  bool routes() const { return router_ != nullptr; }

 private:
  struct Waiter {
    const void* id;
    int64_t since_ms;
  };
  void Count(std::atomic<uint64_t>* c, uint64_t n) {
    if (c != nullptr) c->fetch_add(n, std::memory_order_relaxed);
  }
  void Gauge(int delta);
  // A place of the limit, then an app process (app mode).
  bool Reserve(const upstream::AppReservation* avoid,
               upstream::AppReservation* out);
  // Tells the other workers how long this line's head waits. mu_ held.
  void PublishHead();

  upstream::AppRouter* router_;
  SharedLimit* limit_;
  QueueHeads* heads_;
  const int64_t max_wait_ms_;
  AppQueueMetrics metrics_;
  std::mutex mu_;
  std::deque<Waiter> line_;
};

}  // namespace forkd::proxy

#endif  // FORKD_SERVER_PROXY_APP_QUEUE_H_
