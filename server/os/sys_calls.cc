#include "server/os/sys_calls.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

#include "absl/cleanup/cleanup.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "server/common/proc_stats.h"
#include "server/config/cpu_limit.h"
#include "server/scoreboard/scoreboard.h"

namespace forkd::os {
namespace {

std::vector<char*> CStrings(const std::vector<std::string>& v) {
  std::vector<char*> out;
  out.reserve(v.size() + 1);
  for (const std::string& s : v) out.push_back(const_cast<char*>(s.c_str()));
  out.push_back(nullptr);
  return out;
}

// Runs in the forked child: async-signal-safe calls only.
struct ChildIo {
  int stdio_fd = -1;
  int listen_fd = -1;
  char* listen_pid_entry = nullptr;  // "LISTEN_PID=" + room for digits
  bool new_process_group = false;
};

// Async-signal-safe: writes `v` in decimal at `out` (NUL-terminated).
void WriteDecimal(long v, char* out) {
  char tmp[24];
  int n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v > 0 && n < 23);
  for (int i = 0; i < n; ++i) out[i] = tmp[n - 1 - i];
  out[n] = '\0';
}

[[noreturn]] void ExecChild(const char* path, char* const* argv,
                            char* const* envp, const int* fds, size_t nfds,
                            int parent_death_signal, pid_t parent,
                            int error_pipe, const ChildIo& io) {
  if (io.new_process_group) setpgid(0, 0);
  if (io.stdio_fd >= 0) {
    dup2(io.stdio_fd, STDOUT_FILENO);
    dup2(io.stdio_fd, STDERR_FILENO);
  }
  if (io.listen_fd >= 0) {
    if (io.listen_fd == 3) {
      fcntl(3, F_SETFD, 0);
    } else {
      dup2(io.listen_fd, 3);  // the new fd 3 is not close-on-exec
    }
  }
  if (io.listen_pid_entry != nullptr) {
    WriteDecimal(static_cast<long>(getpid()),
                 io.listen_pid_entry + sizeof("LISTEN_PID=") - 1);
  }
  if (parent_death_signal != 0) {
    // The parent may have died between fork and prctl: then no signal comes.
    if (prctl(PR_SET_PDEATHSIG, parent_death_signal) != 0 ||
        getppid() != parent) {
      _exit(127);
    }
  }
  for (size_t i = 0; i < nfds; ++i) {
    int flags = fcntl(fds[i], F_GETFD);
    if (flags >= 0) fcntl(fds[i], F_SETFD, flags & ~FD_CLOEXEC);
  }
  struct sigaction dfl;
  memset(&dfl, 0, sizeof(dfl));
  dfl.sa_handler = SIG_DFL;
  for (int s = 1; s < NSIG; ++s) {
    if (s != SIGKILL && s != SIGSTOP) sigaction(s, &dfl, nullptr);
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  execve(path, argv, envp);
  int err = errno;
  (void)!write(error_pipe, &err, sizeof(err));
  _exit(127);
}

// A read-only copy of `data` in a memfd: sealed, so the child reads exactly
// what the parent wrote. Close-on-exec; Spawn clears it in the child only.
absl::StatusOr<int> SealedMemfd(const std::string& data) {
  int fd = memfd_create("forkd-worker-launch", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  if (fd < 0) {
    return absl::InternalError(
        absl::StrCat("memfd_create: ", std::strerror(errno)));
  }
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = write(fd, data.data() + off, data.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int err = errno;
      close(fd);
      return absl::InternalError(
          absl::StrCat("write to memfd: ", std::strerror(err)));
    }
    off += static_cast<size_t>(n);
  }
  if (fcntl(fd, F_ADD_SEALS,
            F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) != 0) {
    int err = errno;
    close(fd);
    return absl::InternalError(
        absl::StrCat("sealing the memfd: ", std::strerror(err)));
  }
  return fd;
}

}  // namespace

absl::StatusOr<pid_t> SysCallsImpl::Spawn(const SpawnSpec& spec) {
  // Everything the child needs is built before fork: the child may not
  // allocate (another thread could hold the malloc lock).
  std::vector<std::string> args = spec.argv;
  std::vector<int> inherit = spec.inherit_fds;
  int launch_fd = -1;
  if (!spec.launch_message.empty()) {
    absl::StatusOr<int> fd = SealedMemfd(spec.launch_message);
    if (!fd.ok()) return fd.status();
    launch_fd = *fd;
    args.push_back(absl::StrCat(launch_fd));
    inherit.push_back(launch_fd);
  }
  // The parent's copy goes once the child has it (or fork failed).
  absl::Cleanup close_launch = [launch_fd] {
    if (launch_fd >= 0) close(launch_fd);
  };
  std::vector<char*> argv = CStrings(args);
  std::vector<std::string> env = spec.env;
  ChildIo io;
  io.stdio_fd = spec.stdio_fd;
  io.listen_fd = spec.listen_fd;
  io.new_process_group = spec.new_process_group;
  if (spec.set_listen_pid) {
    for (std::string& e : env) {
      if (e.rfind("LISTEN_PID=", 0) == 0) {
        e.resize(sizeof("LISTEN_PID=") - 1 + 23, '\0');
        io.listen_pid_entry = e.data();
      }
    }
  }
  std::vector<char*> envp = CStrings(env);
  // The child reports a failed exec through this pipe; a successful exec
  // closes it (O_CLOEXEC), so the parent reads EOF.
  int pipe_fds[2];
  if (pipe2(pipe_fds, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe2: ", std::strerror(errno)));
  }
  // Block all signals across fork so nothing runs in the child before its
  // dispositions are reset.
  sigset_t all, saved;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &saved);
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid == 0) {
    ExecChild(spec.path.c_str(), argv.data(), envp.data(), inherit.data(),
              inherit.size(), spec.parent_death_signal, parent, pipe_fds[1],
              io);
  }
  int fork_errno = errno;
  pthread_sigmask(SIG_SETMASK, &saved, nullptr);
  close(pipe_fds[1]);
  if (pid < 0) {
    close(pipe_fds[0]);
    return absl::UnavailableError(
        absl::StrCat("fork: ", std::strerror(fork_errno)));
  }
  int exec_errno = 0;
  ssize_t n;
  do {
    n = read(pipe_fds[0], &exec_errno, sizeof(exec_errno));
  } while (n < 0 && errno == EINTR);
  close(pipe_fds[0]);
  if (n == static_cast<ssize_t>(sizeof(exec_errno))) {
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return absl::FailedPreconditionError(
        absl::StrCat("exec ", spec.path, ": ", std::strerror(exec_errno)));
  }
  return pid;
}

int SysCallsImpl::Kill(pid_t pid, int signo) {
  return ::kill(pid, signo) == 0 ? 0 : errno;
}

pid_t SysCallsImpl::WaitAny(int* status) {
  while (true) {
    pid_t pid = waitpid(-1, status, WNOHANG);
    if (pid < 0 && errno == EINTR) continue;
    return pid < 0 ? -1 : pid;
  }
}

int64_t SysCallsImpl::NowMs() { return scoreboard::MonotonicMs(); }

pid_t SysCallsImpl::GetPid() { return getpid(); }

pid_t SysCallsImpl::GetParentPid() { return getppid(); }

int SysCallsImpl::EffectiveCpus() { return config::HostEffectiveCpus(); }

absl::StatusOr<std::string> SysCallsImpl::MakePrivateDir(
    const std::string& parent) {
  std::string tmpl = absl::StrCat(parent, "/forkd-app-XXXXXX");
  if (mkdtemp(tmpl.data()) == nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot make a directory in ", parent, ": ", std::strerror(errno)));
  }
  return tmpl;
}

absl::StatusOr<int> SysCallsImpl::ListenUnix(const std::string& path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) {
    return absl::InvalidArgumentError(
        absl::StrCat("socket path too long (", path.size(), " bytes): ", path));
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  unlink(path.c_str());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(fd, 1024) != 0) {
    int err = errno;
    close(fd);
    return absl::InternalError(
        absl::StrCat("bind/listen ", path, ": ", std::strerror(err)));
  }
  return fd;
}

void SysCallsImpl::RemovePath(const std::string& path) {
  if (unlink(path.c_str()) != 0 && errno == EISDIR) rmdir(path.c_str());
  if (errno == EPERM) rmdir(path.c_str());
}

int SysCallsImpl::StartProbe(const std::string& path,
                             const std::string& health_path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path)) return -1;
  std::memcpy(addr.sun_path, path.data(), path.size());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  // A non-blocking unix connect succeeds or fails at once (EAGAIN: the
  // backlog is full, try on a later tick); a blocking one could wait.
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  if (health_path.empty()) return fd;
  std::string req = absl::StrCat("GET ", health_path,
                                 " HTTP/1.1\r\nHost: localhost\r\n"
                                 "Connection: close\r\n\r\n");
  // A fresh socket's send buffer takes a request line this small whole.
  if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(req.size())) {
    close(fd);
    return -1;
  }
  probe_answers_[fd];
  return fd;
}

SysCalls::ProbeResult SysCallsImpl::PollProbe(int handle) {
  auto it = probe_answers_.find(handle);
  ProbeResult result = ProbeResult::kHealthy;  // connected, no health path
  if (it != probe_answers_.end()) {
    std::string& got = it->second;
    // "HTTP/1.x 2xx" is all it takes.
    char buf[32];
    while (got.size() < 12) {
      ssize_t n = recv(handle, buf, sizeof(buf), MSG_DONTWAIT);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        return ProbeResult::kPending;
      }
      if (n <= 0) break;
      got.append(buf, static_cast<size_t>(n));
    }
    result =
        got.size() >= 12 && got.compare(0, 7, "HTTP/1.") == 0 && got[9] == '2'
            ? ProbeResult::kHealthy
            : ProbeResult::kFailed;
    probe_answers_.erase(it);
  }
  close(handle);
  return result;
}

void SysCallsImpl::CancelProbe(int handle) {
  if (handle < 0) return;
  probe_answers_.erase(handle);
  close(handle);
}

absl::StatusOr<std::pair<int, int>> SysCallsImpl::MakePipe() {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe2: ", std::strerror(errno)));
  }
  fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
  return std::make_pair(fds[0], fds[1]);
}

ssize_t SysCallsImpl::Read(int fd, char* buf, size_t size) {
  while (true) {
    ssize_t n = read(fd, buf, size);
    if (n < 0 && errno == EINTR) continue;
    return n;
  }
}

void SysCallsImpl::Close(int fd) {
  if (fd >= 0) close(fd);
}

uint64_t SysCallsImpl::ResidentBytes(pid_t pid) {
  absl::StatusOr<ProcStats> st = ReadProcStats(pid);
  return st.ok() ? st->resident_bytes : 0;
}

double SysCallsImpl::CpuSeconds(pid_t pid) {
  absl::StatusOr<ProcStats> st = ReadProcStats(pid);
  return st.ok() ? st->cpu_seconds : 0;
}

absl::StatusOr<std::string> SelfExePath() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n < 0) {
    return absl::InternalError(
        absl::StrCat("readlink /proc/self/exe: ", std::strerror(errno)));
  }
  return std::string(buf, static_cast<size_t>(n));
}

std::string SignalName(int signo) {
  const char* abbrev = sigabbrev_np(signo);
  if (abbrev == nullptr) return absl::StrCat("signal ", signo);
  return absl::StrCat("SIG", abbrev);
}

std::string DescribeWaitStatus(int status) {
  if (WIFEXITED(status)) {
    return absl::StrCat("exited with code ", WEXITSTATUS(status));
  }
  if (WIFSIGNALED(status)) {
    return absl::StrCat("was killed by ", SignalName(WTERMSIG(status)),
                        WCOREDUMP(status) ? " (core dumped)" : "");
  }
  return absl::StrCat("changed state (status ", status, ")");
}

}  // namespace forkd::os
