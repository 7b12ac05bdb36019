// What `ps` and /proc/PID/cmdline show for this process. forkd names its
// processes the way nginx does ("forkd: master", "forkd: worker 3 (gen 2)")
// so an operator reading `ps` in a pod sees the process model, not a wall
// of flags.
#ifndef FORKD_SERVER_COMMON_PROCESS_TITLE_H_
#define FORKD_SERVER_COMMON_PROCESS_TITLE_H_

#include "absl/strings/string_view.h"

namespace forkd::common {

// Rewrites the argv strings in place (the kernel reads cmdline from that
// memory): `title`, then NULs up to the end of the last argument. The
// title must fit in the space the original argv strings took; when it does
// not, nothing changes and it returns false. Call it on the main thread
// after the last read of argv.
bool SetProcessTitle(int argc, char** argv, absl::string_view title);

}  // namespace forkd::common

#endif  // FORKD_SERVER_COMMON_PROCESS_TITLE_H_
