// The listening sockets the master opens (or adopts) before any worker and
// hands to every worker across exec.
#ifndef FORKD_SERVER_ARBITER_LISTENERS_H_
#define FORKD_SERVER_ARBITER_LISTENERS_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/common/address.h"
#include "server/config/config.h"

namespace forkd::arbiter {

// One parsed --bind value (common/address.h holds the grammar).
using BindAddress = common::Address;

// Parses `HOST:PORT`, `[V6]:PORT`, `HOST` (port 8000, as Gunicorn),
// `:PORT` (all IPv4 interfaces), `unix:PATH` and `fd://N`. InvalidArgument
// names the value and what is wrong.
absl::StatusOr<BindAddress> ParseBind(absl::string_view value);

struct Listener {
  std::string bind;        // the --bind value it serves ("" for an unmatched
                           // inherited socket)
  std::string url;         // "http://127.0.0.1:8000", "http://[::1]:80",
                           // "unix:/run/forkd.sock": from getsockname
  int fd = -1;             // listening, O_NONBLOCK, FD_CLOEXEC
  std::string unix_path;   // set when we created a unix socket file
  bool inherited = false;  // adopted from FORKD_INHERITED_FDS or fd://
};

// Opens one listener per --bind value: socket, SO_REUSEADDR (and
// SO_REUSEPORT with --reuse-port), bind, listen(--backlog), non-blocking,
// close-on-exec. A unix socket path that holds a stale socket is unlinked
// first; one that holds anything else is an error. On failure every socket
// opened so far is closed and the error names the address, e.g.
// "cannot bind 127.0.0.1:8000: Address already in use".
//
// `inherited_fds` is FORKD_INHERITED_FDS ("3,4") when started by a USR2
// upgrade: those sockets are adopted instead of binding, matched to --bind
// values by getsockname() where possible; all of them are used either way.
absl::StatusOr<std::vector<Listener>> OpenListeners(
    const config::Config& config,
    const std::optional<std::string>& inherited_fds);

// Comma-separated fds ("3,4") for the worker command line and upgrades.
std::string ListenerFdList(const std::vector<Listener>& listeners);

// Closes every listener; with `unlink_unix`, also removes the unix socket
// files this process created (not when a new master took them over).
void CloseListeners(std::vector<Listener>& listeners, bool unlink_unix);

}  // namespace forkd::arbiter

#endif  // FORKD_SERVER_ARBITER_LISTENERS_H_
