#include "server/proxy/shared_limit.h"

namespace forkd::proxy {
namespace {

// Decrements without wrapping: a place the master already took back (its
// worker was presumed dead) must not turn the counter into 2^32 - 1.
void DecrementFloor(std::atomic<uint32_t>* a) {
  uint32_t cur = a->load(std::memory_order_relaxed);
  while (cur > 0 &&
         !a->compare_exchange_weak(cur, cur - 1, std::memory_order_acq_rel,
                                   std::memory_order_relaxed)) {
  }
}

}  // namespace

SharedLimit::SharedLimit(scoreboard::AppLimit* limit,
                         std::atomic<uint32_t>* held)
    : limit_(limit), held_(held) {}

bool SharedLimit::TryAcquire() {
  uint32_t cur = limit_->in_flight.load(std::memory_order_relaxed);
  while (true) {
    const uint32_t max = limit_->limit.load(std::memory_order_relaxed);
    if (max != 0 && cur >= max) {
      limit_->refused.fetch_add(1, std::memory_order_relaxed);
      return false;
    }
    if (limit_->in_flight.compare_exchange_weak(cur, cur + 1,
                                                std::memory_order_acq_rel,
                                                std::memory_order_relaxed)) {
      break;
    }
  }
  if (held_ != nullptr) held_->fetch_add(1, std::memory_order_relaxed);
  return true;
}

void SharedLimit::Release() {
  if (held_ != nullptr) DecrementFloor(held_);
  DecrementFloor(&limit_->in_flight);
}

uint32_t SharedLimit::in_flight() const {
  return limit_->in_flight.load(std::memory_order_relaxed);
}

uint32_t SharedLimit::limit() const {
  return limit_->limit.load(std::memory_order_relaxed);
}

}  // namespace forkd::proxy
