// The master's health as Kubernetes probes see it: liveness (the master
// loop turns), readiness (not draining, a worker ready, the app reachable)
// and startup (first worker ready and the app reached once). Computed by the
// probes module from the arbiter's snapshot and its app checks; read by the
// HTTP probe endpoints (/livez /readyz /startupz) and by the gRPC health
// service on the admin port.
#ifndef FORKD_SERVER_PROBES_HEALTH_STATE_H_
#define FORKD_SERVER_PROBES_HEALTH_STATE_H_

#include <functional>
#include <mutex>
#include <string>
#include <vector>

namespace forkd::probes {

struct ProbeResult {
  bool ok = false;
  std::string why;  // short reason, e.g. "draining", "app unreachable: ..."
  bool operator==(const ProbeResult&) const = default;
};

struct Health {
  ProbeResult live;
  ProbeResult ready;
  ProbeResult started;
  bool operator==(const Health&) const = default;
};

// Thread-safe holder of the current Health with change notification.
class HealthState {
 public:
  Health Get() const {
    std::lock_guard<std::mutex> lock(mu_);
    return health_;
  }

  // Replaces the state; runs every subscriber (on the caller's thread,
  // without the lock held) when it changed.
  void Set(const Health& h) {
    std::vector<std::function<void(const Health&)>> subs;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (h == health_ && initialised_) return;
      health_ = h;
      initialised_ = true;
      subs = subscribers_;
    }
    for (auto& s : subs) s(h);
  }

  // Registers a callback for changes. Call before the state starts moving.
  void Subscribe(std::function<void(const Health&)> fn) {
    std::lock_guard<std::mutex> lock(mu_);
    subscribers_.push_back(std::move(fn));
  }

 private:
  mutable std::mutex mu_;
  Health health_;
  bool initialised_ = false;
  std::vector<std::function<void(const Health&)>> subscribers_;
};

}  // namespace forkd::probes

#endif  // FORKD_SERVER_PROBES_HEALTH_STATE_H_
