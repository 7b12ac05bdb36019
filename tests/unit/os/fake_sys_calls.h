// A SysCalls that forks nothing: spawns hand out fake pids, kills are
// recorded, exits are queued by the test, the clock moves when told.
#ifndef FORKD_TESTS_UNIT_OS_FAKE_SYS_CALLS_H_
#define FORKD_TESTS_UNIT_OS_FAKE_SYS_CALLS_H_

#include <sys/types.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "server/os/sys_calls.h"

namespace forkd::os {

class FakeSysCalls : public SysCalls {
 public:
  struct Spawned {
    pid_t pid;
    SpawnSpec spec;
  };
  struct Killed {
    pid_t pid;
    int signo;
  };

  absl::StatusOr<pid_t> Spawn(const SpawnSpec& spec) override {
    if (on_spawn) on_spawn();
    if (!spawn_error.ok()) return spawn_error;
    pid_t pid = next_pid++;
    spawned.push_back({pid, spec});
    alive.insert(pid);
    return pid;
  }

  int Kill(pid_t pid, int signo) override {
    kills.push_back({pid, signo});
    return alive.count(pid) != 0 ? 0 : 3;  // ESRCH
  }

  pid_t WaitAny(int* status) override {
    if (exits.empty()) return alive.empty() ? -1 : 0;
    auto [pid, st] = exits.front();
    exits.pop_front();
    alive.erase(pid);
    *status = st;
    return pid;
  }

  int64_t NowMs() override { return now_ms; }
  pid_t GetPid() override { return master_pid; }
  pid_t GetParentPid() override { return parent_pid; }
  int EffectiveCpus() override { return cpus; }

  absl::StatusOr<std::string> MakePrivateDir(
      const std::string& parent) override {
    return parent + "/forkd-app-test";
  }
  absl::StatusOr<int> ListenUnix(const std::string& path) override {
    listened.push_back(path);
    return next_fd++;
  }
  void RemovePath(const std::string& path) override { removed.push_back(path); }
  // Probes: a path in `accepting` is healthy, one in `pending` never
  // answers (until the test moves it), any other refuses the connect.
  int StartProbe(const std::string& path, const std::string&) override {
    if (accepting.count(path) == 0 && pending.count(path) == 0) return -1;
    int h = next_fd++;
    probes[h] = path;
    return h;
  }
  ProbeResult PollProbe(int handle) override {
    const std::string path = probes.at(handle);
    if (pending.count(path) != 0) return ProbeResult::kPending;
    probes.erase(handle);
    return accepting.count(path) != 0 ? ProbeResult::kHealthy
                                      : ProbeResult::kFailed;
  }
  void CancelProbe(int handle) override {
    probes.erase(handle);
    cancelled_probes++;
  }
  absl::StatusOr<std::pair<int, int>> MakePipe() override {
    int r = next_fd++;
    int w = next_fd++;
    return std::make_pair(r, w);
  }
  ssize_t Read(int fd, char* buf, size_t size) override {
    auto it = pipe_data.find(fd);
    if (it == pipe_data.end() || it->second.empty()) return -1;
    size_t n = std::min(size, it->second.size());
    std::memcpy(buf, it->second.data(), n);
    it->second.erase(0, n);
    return static_cast<ssize_t>(n);
  }
  void Close(int fd) override { closed.push_back(fd); }
  uint64_t ResidentBytes(pid_t pid) override {
    auto it = rss.find(pid);
    return it == rss.end() ? 0 : it->second;
  }
  double CpuSeconds(pid_t pid) override {
    auto it = cpu.find(pid);
    return it == cpu.end() ? 0 : it->second;
  }

  // Signals sent to `pid`, in order.
  std::vector<int> SignalsTo(pid_t pid) const {
    std::vector<int> out;
    for (const Killed& k : kills) {
      if (k.pid == pid) out.push_back(k.signo);
    }
    return out;
  }

  absl::Status spawn_error = absl::OkStatus();
  std::function<void()> on_spawn;  // runs at the start of every Spawn()
  pid_t next_pid = 100;
  std::vector<Spawned> spawned;
  std::vector<Killed> kills;
  std::set<pid_t> alive;
  std::deque<std::pair<pid_t, int>> exits;  // for WaitAny
  int64_t now_ms = 1'000'000;
  pid_t master_pid = 42;
  pid_t parent_pid = 1;
  int cpus = 2;
  // App mode.
  int next_fd = 1000;
  std::vector<std::string> listened;
  std::vector<std::string> removed;
  std::set<std::string> accepting;    // socket paths that accept connections
  std::set<std::string> pending;      // accept, but never answer the probe
  std::map<int, std::string> probes;  // open probe handles -> path
  int cancelled_probes = 0;
  std::map<int, std::string> pipe_data;  // unread output per read end
  std::vector<int> closed;
  std::map<pid_t, uint64_t> rss;
  std::map<pid_t, double> cpu;
};

}  // namespace forkd::os

#endif  // FORKD_TESTS_UNIT_OS_FAKE_SYS_CALLS_H_
