#include "server/proxy/app_queue.h"

#include <algorithm>
#include <optional>

namespace forkd::proxy {

QueueHeads::QueueHeads(scoreboard::Scoreboard* board, uint32_t own,
                       int64_t stale_ms)
    : board_(board), own_(own), stale_ms_(stale_ms) {}

void QueueHeads::Publish(int64_t since_ms) {
  board_->SetQueueHead(own_, since_ms);
}

bool QueueHeads::OtherWaitsLonger(int64_t since_ms, int64_t now_ms) const {
  uint32_t waiting = board_->queue_heads().load(std::memory_order_relaxed);
  bool mine =
      board_->slot(own_).queue_head_ms.load(std::memory_order_relaxed) != 0;
  if (waiting <= (mine ? 1u : 0u)) return false;
  for (uint32_t i = 0; i < board_->capacity(); ++i) {
    if (i == own_) continue;
    int64_t other =
        board_->slot(i).queue_head_ms.load(std::memory_order_relaxed);
    if (other == 0 || (stale_ms_ > 0 && now_ms - other > stale_ms_)) continue;
    if (other + kSlackMs < since_ms) return true;
  }
  return false;
}

AppQueue::AppQueue(upstream::AppRouter* router, int64_t max_wait_ms,
                   AppQueueMetrics metrics, SharedLimit* limit,
                   QueueHeads* heads)
    : router_(router),
      limit_(limit),
      heads_(heads),
      max_wait_ms_(max_wait_ms),
      metrics_(metrics) {}

bool AppQueue::Reserve(const upstream::AppReservation* avoid,
                       upstream::AppReservation* out) {
  if (limit_ != nullptr && !limit_->TryAcquire()) return false;
  upstream::AppReservation r;
  if (router_ != nullptr) {
    std::optional<upstream::AppReservation> p = router_->TryReserve(avoid);
    if (!p) {
      if (limit_ != nullptr) limit_->Release();
      return false;
    }
    r = *p;
  }
  r.limited = limit_ != nullptr;
  *out = r;
  return true;
}

void AppQueue::PublishHead() {
  if (heads_ != nullptr) {
    heads_->Publish(line_.empty() ? 0 : line_.front().since_ms);
  }
}

void AppQueue::Gauge(int delta) {
  if (metrics_.queued == nullptr) return;
  if (delta > 0) {
    metrics_.queued->fetch_add(delta, std::memory_order_relaxed);
  } else {
    metrics_.queued->fetch_sub(-delta, std::memory_order_relaxed);
  }
}

AppQueue::Result AppQueue::TryEnter(const void* waiter, int64_t now_ms,
                                    upstream::AppReservation* out,
                                    const upstream::AppReservation* avoid) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = std::find_if(line_.begin(), line_.end(),
                         [waiter](const Waiter& w) { return w.id == waiter; });
  auto defer = [this, now_ms](int64_t since_ms) {
    return heads_ != nullptr && heads_->OtherWaitsLonger(since_ms, now_ms);
  };
  if (it == line_.end()) {
    if (line_.empty() && !defer(now_ms) && Reserve(avoid, out)) {
      return Result::kReserved;
    }
    line_.push_back(Waiter{waiter, now_ms});
    if (line_.size() == 1) PublishHead();
    Gauge(1);
    return Result::kWaiting;
  }
  if (it == line_.begin() && !defer(it->since_ms)) {
    if (Reserve(avoid, out)) {
      Count(metrics_.waits, 1);
      Count(metrics_.wait_us_sum,
            static_cast<uint64_t>(std::max<int64_t>(0, now_ms - it->since_ms)) *
                1000);
      line_.pop_front();
      PublishHead();
      Gauge(-1);
      return Result::kReserved;
    }
  }
  if (max_wait_ms_ > 0 && now_ms - it->since_ms >= max_wait_ms_) {
    bool head = it == line_.begin();
    line_.erase(it);
    if (head) PublishHead();
    Gauge(-1);
    Count(metrics_.timeouts, 1);
    return Result::kTimedOut;
  }
  return Result::kWaiting;
}

void AppQueue::Leave(const void* waiter) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = std::find_if(line_.begin(), line_.end(),
                         [waiter](const Waiter& w) { return w.id == waiter; });
  if (it == line_.end()) return;
  bool head = it == line_.begin();
  line_.erase(it);
  if (head) PublishHead();
  Gauge(-1);
}

const void* AppQueue::Release(const upstream::AppReservation& r,
                              bool finished) {
  if (router_ != nullptr) router_->Release(r, finished);
  if (r.limited && limit_ != nullptr) limit_->Release();
  std::lock_guard<std::mutex> lock(mu_);
  return line_.empty() ? nullptr : line_.front().id;
}

const void* AppQueue::Head() {
  std::lock_guard<std::mutex> lock(mu_);
  return line_.empty() ? nullptr : line_.front().id;
}

size_t AppQueue::size() {
  std::lock_guard<std::mutex> lock(mu_);
  return line_.size();
}

}  // namespace forkd::proxy
