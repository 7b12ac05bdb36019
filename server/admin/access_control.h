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
// surrounding whitespace. Re-read when the file changes, so a rotated token
// works without a restart: both an in-place rewrite and Kubernetes' atomic
// swap of the `..data` symlink in a mounted Secret (the path resolves to a
// new inode) are seen on the next call.
//
// Why a stat per call and not inotify: mutating admin calls are rare, a
// stat is a microsecond, and it follows every symlink of the path, where an
// inotify watch would have to track the directory, the `..data` link and
// its target, and needs a thread. The stamp compared is (dev, inode, size,
// mtime, ctime); a file changed within the clock tick of the last read
// cannot be told apart by its stamp, so such a "racy" file is read again on
// every call until it is older than a second (git's racy-clean rule).
class TokenFile {
 public:
  // Reads the file; fails when it cannot be read or holds no token.
  static absl::StatusOr<std::unique_ptr<TokenFile>> Open(std::string path);

  // Any thread: the current token. When the file changed and can no longer
  // be read, is empty or is gone, returns FailedPrecondition (a message
  // without the path, fit for the client) and logs one warning per broken
  // spell: it fails closed, since a rotated-away token (perhaps rotated
  // because it leaked) must stop working even when its replacement is
  // broken. Recovers on the first call after the file holds a token again.
  absl::StatusOr<std::string> Current();

 private:
  struct Stamp {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    timespec mtime{};
    timespec ctime{};
    bool operator==(const Stamp& o) const;
  };
  TokenFile(std::string path, std::string token, Stamp stamp, timespec read_at);
  // The token, or FailedPrecondition naming the reason (not the path).
  static absl::StatusOr<std::string> Read(const std::string& path);
  static absl::StatusOr<Stamp> StampOf(const std::string& path);
  static timespec Now();
  // True when `stamp` may hide a change made after a read at `read_at`.
  static bool Racy(const Stamp& stamp, timespec read_at);

  const std::string path_;
  std::mutex mu_;
  std::string token_;    // guarded by mu_; the last good token
  Stamp stamp_;          // guarded by mu_; the stamp token_ was read under
  timespec read_at_{};   // guarded by mu_; when token_ was read
  absl::Status broken_;  // guarded by mu_; why the file is unusable now
};

}  // namespace forkd::admin

#endif  // FORKD_SERVER_ADMIN_ACCESS_CONTROL_H_
