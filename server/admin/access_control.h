// Who may change the pool through the admin API. Read-only calls are open;
// mutating calls need the bearer token when forkd runs with
// --admin-token-file, and otherwise must come from a loopback peer (what
// `kubectl port-forward` delivers). Pure functions of the peer string and
// the call's metadata, so the rule is unit-tested without sockets.
#ifndef FORKD_SERVER_ADMIN_ACCESS_CONTROL_H_
#define FORKD_SERVER_ADMIN_ACCESS_CONTROL_H_

#include <sys/types.h>

#include <ctime>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace forkd::admin {

// True for a peer on this host: a gRPC peer string "ipv4:127.x.y.z:port",
// "ipv6:[::1]:port" (brackets possibly percent-encoded), an IPv4-mapped
// loopback "ipv6:[::ffff:127.0.0.1]:port", or "unix:...". False for
// anything else, including strings it cannot parse.
bool IsLoopbackPeer(const std::string& peer);

// Equality of two tokens in constant time: compares SHA-256 digests with
// CRYPTO_memcmp, so neither the content nor the length of the expected
// token leaks through timing.
bool TokensEqual(const std::string& a, const std::string& b);

// How a mutating call was let in, for the audit log.
enum class Admission { kToken, kLoopback };
const char* AdmissionName(Admission a);  // "token", "loopback"

// The rule for a mutating call from `peer` carrying the `authorization`
// metadata values (usually zero or one). `token` is the expected token, or
// nullopt when forkd runs without --admin-token-file. Returns how the call
// was admitted, or Unauthenticated (token required, none given),
// PermissionDenied (wrong token; or no token file and a non-loopback peer),
// each with a message that says how to get in.
absl::StatusOr<Admission> CheckMutatingCall(
    const std::string& peer, const std::vector<std::string>& authorization,
    const std::optional<std::string>& token);

// The --admin-token-file: the token is the file's content without
// surrounding whitespace. Re-read when the file changes (Kubernetes updates
// mounted secrets in place), so a rotated token works without a restart.
class TokenFile {
 public:
  // Reads the file; fails when it cannot be read or holds no token.
  static absl::StatusOr<std::unique_ptr<TokenFile>> Open(std::string path);

  // Any thread: the current token. When the file changed but can no longer
  // be read (or is empty), keeps the last good token and logs a warning.
  std::string Current();

 private:
  struct Stamp {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    timespec mtime{};
    bool operator==(const Stamp& o) const;
  };
  TokenFile(std::string path, std::string token, Stamp stamp);
  static absl::StatusOr<std::string> Read(const std::string& path);
  static std::optional<Stamp> StampOf(const std::string& path);

  const std::string path_;
  std::mutex mu_;
  std::string token_;  // guarded by mu_
  Stamp stamp_;        // guarded by mu_
};

}  // namespace forkd::admin

#endif  // FORKD_SERVER_ADMIN_ACCESS_CONTROL_H_
