#include <algorithm>

#include "absl/strings/str_format.h"
#include "server/arbiter/arbiter.h"
#include "server/arbiter/arbiter_internal.h"
#include "server/common/log.h"

// The master: feeding the Autotuner and applying its changes.
namespace forkd::arbiter {

// --- Autotune ----------------------------------------------------------------

autotune::Sample Arbiter::MakeSample(int64_t now) const {
  autotune::Sample s;
  s.now_ms = now;
  s.totals = retired_;
  for (const auto& [pid, w] : workers_) {
    const scoreboard::Slot& slot = scoreboard_->slot(w.slot);
    s.totals.Add(slot.counters);
    s.queued += slot.queued.load(std::memory_order_relaxed);
  }
  s.in_flight =
      scoreboard_->app_limit().in_flight.load(std::memory_order_relaxed);
  s.workers = DesiredWorkers();
  s.threads = Threads();
  int64_t per_worker = 1;
  if (config_.worker_class == config::WorkerClass::kGthread) {
    per_worker = Threads();
  } else if (config_.worker_class == config::WorkerClass::kAsync) {
    per_worker = WorkerConnections();
  }
  s.in_flight_cap = static_cast<int64_t>(std::max(1, s.workers)) * per_worker;
  if (app_) s.app_pids = app_->Pids();
  return s;
}

void Arbiter::ApplyTuneChanges(const std::vector<autotune::Change>& changes) {
  for (const autotune::Change& c : changes) {
    switch (c.knob) {
      case autotune::Knob::kLimit:
        scoreboard_->app_limit().limit.store(
            static_cast<uint32_t>(std::max(0, c.value)),
            std::memory_order_relaxed);
        break;
      case autotune::Knob::kWorkers: {
        // The same command as TTIN/TTOU and forkctl scale; an app process
        // scaled away finishes its in-flight requests first.
        Command scale = Command::ScaleTo(c.value);
        scale.from_autotune = true;
        CommandResult r = HandleCommand(scale);
        if (!r.status.ok()) {
          LOG_WARNING("autotune: workers %d refused: %s", c.value,
                      r.status.message());
        }
        break;
      }
      case autotune::Knob::kThreads: {
        Command threads = Command::SetThreads(c.value);
        threads.from_autotune = true;
        CommandResult r = HandleCommand(threads);
        if (!r.status.ok()) {
          LOG_WARNING("autotune: threads %d refused: %s", c.value,
                      r.status.message());
        }
        break;
      }
      case autotune::Knob::kNone:
        break;
    }
  }
}

void Arbiter::RunAutotune(int64_t now) {
  if (!started_ || stop_ != Stop::kNone || workers_stopped_) return;
  ApplyTuneChanges(autotuner_->OnTick(MakeSample(now)));
}

CommandResult Arbiter::SetTune(const autotune::TuneUpdate& u) {
  if (u.mode && *u.mode != config::AutotuneMode::kOff &&
      config_.upstream_protocol == "h2c") {
    return Result(absl::InvalidArgumentError(
                      "autotune does not apply to --upstream-protocol h2c "
                      "yet (its streams bypass forkd's queue)"),
                  "");
  }
  absl::StatusOr<std::vector<autotune::Change>> changes =
      autotuner_->Update(u, MakeSample(sys_->NowMs()));
  if (!changes.ok()) return Result(changes.status(), "");
  ApplyTuneChanges(*changes);
  autotune::TuneStatus t = autotuner_->Status();
  return Result(absl::OkStatus(),
                absl::StrFormat("autotune: mode %s, limit %d, workers %d, "
                                "threads %d",
                                config::AutotuneModeName(t.mode), t.limit,
                                DesiredWorkers(), Threads()));
}

}  // namespace forkd::arbiter
