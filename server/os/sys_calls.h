// The OS calls the master's supervision depends on (spawn, kill, waitpid,
// the clock), behind one small interface handed to the Arbiter, so restart,
// back-off, timeout and drain decisions are unit-tested with a fake.
#ifndef FORKD_SERVER_OS_SYS_CALLS_H_
#define FORKD_SERVER_OS_SYS_CALLS_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"

namespace forkd::os {

// What to exec in a child process.
struct SpawnSpec {
  std::string path;               // executable
  std::vector<std::string> argv;  // argv[0] included
  std::vector<std::string> env;   // "NAME=value"
  std::vector<int> inherit_fds;   // close-on-exec is cleared on these only
  // When not 0, the child gets this signal when the spawning thread dies
  // (prctl PR_SET_PDEATHSIG, kept across exec), and exits at once if its
  // parent died before that was set.
  int parent_death_signal = 0;
  // When not empty: written to a sealed memfd ("forkd-worker-launch") that
  // the child inherits, and that fd's number is appended to argv. Workers
  // get their settings this way (worker/worker_launch.h).
  std::string launch_message;
  // App mode (server/app/): when >= 0, the child's stdout and stderr become
  // this fd (a pipe the master reads).
  int stdio_fd = -1;
  // When >= 0, this listening socket becomes the child's fd 3 (systemd's
  // socket activation); with set_listen_pid, the env entry "LISTEN_PID=..."
  // is rewritten to the child's own pid after fork.
  int listen_fd = -1;
  bool set_listen_pid = false;
  // The child leads a new process group (setpgid), so the master can signal
  // the app and whatever it forked at once.
  bool new_process_group = false;
};

class SysCalls {
 public:
  virtual ~SysCalls() = default;

  // fork + exec of `spec`. In the child, between fork and exec, only
  // async-signal-safe calls run: clear FD_CLOEXEC on spec.inherit_fds, reset
  // every signal disposition to default, unblock all signals and set
  // spec.parent_death_signal. Call it from a thread that lives as long as
  // the children (the death signal follows the thread). Returns the
  // child's pid once exec succeeded, or an error naming fork or exec.
  virtual absl::StatusOr<pid_t> Spawn(const SpawnSpec& spec) = 0;

  // kill(2). Returns 0 or the errno.
  virtual int Kill(pid_t pid, int signo) = 0;

  // waitpid(-1, status, WNOHANG): a reaped child's pid, 0 when children
  // remain but none has exited, -1 when there are no children.
  virtual pid_t WaitAny(int* status) = 0;

  // Milliseconds on CLOCK_MONOTONIC, the clock of scoreboard heartbeats.
  virtual int64_t NowMs() = 0;

  virtual pid_t GetPid() = 0;
  virtual pid_t GetParentPid() = 0;

  // CPUs this container may use (config::HostEffectiveCpus()).
  virtual int EffectiveCpus() = 0;

  // --- App mode (server/app/) ---
  // mkdtemp of "<parent>/forkd-app-XXXXXX" (mode 0700); returns its path.
  virtual absl::StatusOr<std::string> MakePrivateDir(
      const std::string& parent) = 0;
  // Removes a stale file at `path`, binds a unix stream socket there and
  // listens; close-on-exec. Returns the fd.
  virtual absl::StatusOr<int> ListenUnix(const std::string& path) = 0;
  // unlink(2) / rmdir(2), errors ignored.
  virtual void RemovePath(const std::string& path) = 0;
  // A readiness probe of an app socket, never blocking the master's loop:
  // StartProbe connects to `path` (non-blocking) and, when `health_path` is
  // not empty, sends GET health_path; it returns a handle, or -1 when the
  // socket does not accept (not listening yet, backlog full). PollProbe
  // then says kHealthy (connected and, with a health path, a 2xx status
  // line came), kFailed (another status, EOF, error) or kPending (no answer
  // yet); it releases the handle unless kPending. CancelProbe releases a
  // pending one (the caller's time bound passed, the process left).
  enum class ProbeResult { kPending, kHealthy, kFailed };
  virtual int StartProbe(const std::string& path,
                         const std::string& health_path) = 0;
  virtual ProbeResult PollProbe(int handle) = 0;
  virtual void CancelProbe(int handle) = 0;
  // A pipe: {read end (non-blocking), write end}, both close-on-exec.
  virtual absl::StatusOr<std::pair<int, int>> MakePipe() = 0;
  // read(2): bytes read, 0 at EOF, -1 when nothing is there yet (EAGAIN) or
  // on error.
  virtual ssize_t Read(int fd, char* buf, size_t size) = 0;
  virtual void Close(int fd) = 0;
  // Resident memory and CPU seconds of `pid` (/proc); zeros when gone.
  virtual uint64_t ResidentBytes(pid_t pid) = 0;
  virtual double CpuSeconds(pid_t pid) = 0;
};

class SysCallsImpl : public SysCalls {
 public:
  absl::StatusOr<pid_t> Spawn(const SpawnSpec& spec) override;
  int Kill(pid_t pid, int signo) override;
  pid_t WaitAny(int* status) override;
  int64_t NowMs() override;
  pid_t GetPid() override;
  pid_t GetParentPid() override;
  int EffectiveCpus() override;
  absl::StatusOr<std::string> MakePrivateDir(
      const std::string& parent) override;
  absl::StatusOr<int> ListenUnix(const std::string& path) override;
  void RemovePath(const std::string& path) override;
  int StartProbe(const std::string& path,
                 const std::string& health_path) override;
  ProbeResult PollProbe(int handle) override;
  void CancelProbe(int handle) override;
  absl::StatusOr<std::pair<int, int>> MakePipe() override;
  ssize_t Read(int fd, char* buf, size_t size) override;
  void Close(int fd) override;
  uint64_t ResidentBytes(pid_t pid) override;
  double CpuSeconds(pid_t pid) override;

 private:
  // The bytes of each pending probe's answer so far, by handle (its fd);
  // absent for a probe without a health path.
  absl::flat_hash_map<int, std::string> probe_answers_;
};

// The path of the running binary (readlink of /proc/self/exe), resolved once
// at start-up so workers and upgrades exec the same file.
absl::StatusOr<std::string> SelfExePath();

// "SIGTERM" for SIGTERM; "signal N" when unknown.
std::string SignalName(int signo);

// "exited with code 1", "was killed by SIGSEGV", for a waitpid status.
std::string DescribeWaitStatus(int status);

}  // namespace forkd::os

#endif  // FORKD_SERVER_OS_SYS_CALLS_H_
