// The readiness check of the app behind forkd: a connect to its socket, or,
// with --app-health-path, a GET of that path that must answer 2xx.
#ifndef FORKD_SERVER_PROBES_APP_PROBE_H_
#define FORKD_SERVER_PROBES_APP_PROBE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "server/probes/health_state.h"
#include "server/upstream/upstream_pool.h"

namespace forkd::probes {

class AppProbe {
 public:
  // `upstream` is the --upstream value ("unix:/path", "http://HOST:PORT");
  // `path` is --app-health-path ("" = connect only). Every check finishes
  // within `timeout_ms`. InvalidArgument when `upstream` does not parse.
  static absl::StatusOr<AppProbe> Create(const std::string& upstream,
                                         const std::string& path,
                                         int64_t timeout_ms);

  // Checks the app once; blocks at most the timeout. Any thread. `why`
  // says what was checked and, on failure, what went wrong (e.g.
  // "connect unix:/run/app.sock: No such file or directory").
  ProbeResult Check() const;

  const std::string& path() const { return path_; }

 private:
  AppProbe(upstream::Address address, std::string path, int64_t timeout_ms)
      : address_(std::move(address)),
        path_(std::move(path)),
        timeout_ms_(timeout_ms) {}

  upstream::Address address_;
  std::string path_;
  int64_t timeout_ms_;
};

}  // namespace forkd::probes

#endif  // FORKD_SERVER_PROBES_APP_PROBE_H_
