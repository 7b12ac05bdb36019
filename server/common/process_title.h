// What `ps` and /proc/PID/cmdline show for this process. forkd names its
// processes the way nginx does ("forkd: master 0.0.0.0:8000", "forkd: worker
// 3 (gen 2)", "forkd: proxy worker 1 (gen 2)") so an operator reading `ps`
// in a pod sees the process model, not a wall of flags; the short name that
// top and `ps -e` show (/proc/PID/comm) says the role ("forkd-worker").
#ifndef FORKD_SERVER_COMMON_PROCESS_TITLE_H_
#define FORKD_SERVER_COMMON_PROCESS_TITLE_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace forkd::common {

// The memory a title is written into: the argv strings, which the kernel
// lays out back to back above the stack and reads /proc/PID/cmdline from,
// and, when `envp` is given, the environment strings that follow them (the
// classic setproctitle technique, as nginx and PostgreSQL do).
class ProcessTitle {
 public:
  // Claims argv's strings and, with `envp` (the process's `environ`), every
  // environment string laid out right after them: each of those is copied to
  // the heap and its envp entry repointed at the copy, so getenv() and
  // `environ` keep working. Call on the main thread before other threads
  // start and before anyone holds a pointer into an environment string
  // (getenv results); argv stays readable until the first Set().
  ProcessTitle(int argc, char** argv, char** envp);

  // Bytes a title may have (its NUL excluded).
  size_t capacity() const;

  // Writes `title` over the claimed memory, then NULs to the end of argv's
  // memory and of any earlier, longer title. The environment's memory is
  // written only as far as a title needs it, so /proc/PID/environ stays
  // readable when the title fits in argv. A title longer than capacity()
  // changes nothing and returns false.
  bool Set(absl::string_view title);

 private:
  char* begin_ = nullptr;
  char* argv_end_ = nullptr;   // one past argv's strings
  char* end_ = nullptr;        // one past the claimed memory
  char* dirty_end_ = nullptr;  // one past what a title may have written
};

// The titles, one per role. The master: "forkd: master" and its --bind
// addresses (not every flag: ps stays one short line).
std::string MasterTitle(absl::Span<const std::string> binds);
// A worker: "forkd: worker 3 (gen 2)"; in app mode, where the workers are
// forkd's proxy event loops in front of the app processes, "forkd: proxy
// worker 3 (gen 2)".
std::string WorkerTitle(uint32_t slot, uint64_t generation, bool app_mode);

// The short names (comm, at most 15 bytes): the role only, so that a large
// slot number is never cut into a smaller one.
inline constexpr absl::string_view kMasterName = "forkd-master";
inline constexpr absl::string_view kWorkerName = "forkd-worker";
inline constexpr absl::string_view kProxyWorkerName = "forkd-proxy";

// ProcessTitle(argc, argv, nullptr).Set(title): argv's memory only.
bool SetProcessTitle(int argc, char** argv, absl::string_view title);

// prctl(PR_SET_NAME): the calling thread's short name (/proc/PID/comm for
// the main thread: what top and `ps -e` show, and what threads started
// afterwards inherit). The kernel keeps 15 bytes. Returns false on error.
bool SetThreadName(absl::string_view name);

}  // namespace forkd::common

#endif  // FORKD_SERVER_COMMON_PROCESS_TITLE_H_
