#include "server/proxy/admission.h"

#include <unistd.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "server/proxy/proxy_session.h"

namespace forkd::proxy {
namespace {

thread_local int t_wake_fd = -1;

}  // namespace

std::optional<Refusal> RefuseWhileDraining(const SessionContext& ctx) {
  bool stopping = ctx.stopping != nullptr && ctx.stopping->load();
  if (!stopping && ctx.server_draining != nullptr &&
      ctx.server_draining->load(std::memory_order_relaxed) != 0) {
    return Refusal{Failure::kDraining, "server is draining"};
  }
  return std::nullopt;
}

std::optional<Refusal> RefuseOverInFlightCap(const SessionContext& ctx) {
  if (ctx.in_flight_cap == nullptr) return std::nullopt;
  uint32_t cap = ctx.in_flight_cap->load(std::memory_order_relaxed);
  if (cap > 0 && ctx.slot->in_flight.load(std::memory_order_relaxed) >= cap) {
    return Refusal{
        Failure::kOverCapacity,
        absl::StrCat("worker at its cap of ", cap, " requests in flight")};
  }
  return std::nullopt;
}

void Admission::SetThreadWakeFd(int fd) { t_wake_fd = fd; }

bool Admission::TryEnter(ProxySession* s) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = std::find_if(line_.begin(), line_.end(),
                         [s](const Waiter& w) { return w.session == s; });
  if (it != line_.end()) {
    if (!it->granted) return false;
    line_.erase(it);  // its slot is already counted in used_
    return true;
  }
  // Only when nobody waits: a newcomer must not overtake the line.
  bool waiting = std::any_of(line_.begin(), line_.end(),
                             [](const Waiter& w) { return !w.granted; });
  if (!waiting && used_ < capacity_) {
    ++used_;
    return true;
  }
  line_.push_back({s, t_wake_fd, false});
  return false;
}

void Admission::Leave(ProxySession* s, bool entered) {
  std::lock_guard<std::mutex> lock(mu_);
  if (entered) {
    if (used_ > 0) --used_;
  } else {
    auto it = std::find_if(line_.begin(), line_.end(),
                           [s](const Waiter& w) { return w.session == s; });
    if (it == line_.end()) return;
    if (it->granted && used_ > 0) --used_;
    line_.erase(it);
  }
  GrantLocked();
}

void Admission::GrantLocked() {
  for (Waiter& w : line_) {
    if (used_ >= capacity_) return;
    if (w.granted) continue;
    w.granted = true;
    ++used_;
    if (w.wake_fd >= 0) {
      uint64_t one = 1;
      (void)!write(w.wake_fd, &one, sizeof(one));
    }
  }
}

std::vector<ProxySession*> Admission::Granted(int wake_fd) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<ProxySession*> out;
  for (const Waiter& w : line_) {
    if (w.granted && w.wake_fd == wake_fd) out.push_back(w.session);
  }
  return out;
}

void Admission::SetCapacity(uint32_t capacity) {
  std::lock_guard<std::mutex> lock(mu_);
  capacity_ = std::max<uint32_t>(1, capacity);
  GrantLocked();
}

uint32_t Admission::in_use() {
  std::lock_guard<std::mutex> lock(mu_);
  return used_;
}

}  // namespace forkd::proxy
