#include "server/admin/access_control.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "server/common/log.h"

namespace forkd::admin {
namespace {

constexpr size_t kMaxTokenFileBytes = 64 * 1024;

constexpr char kTokenHint[] =
    "send the token as \"authorization: Bearer <token>\" metadata "
    "(forkctl --token-file FILE)";

std::string PercentDecode(const std::string& in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    int value = 0;
    if (in[i] == '%' && i + 2 < in.size() &&
        absl::SimpleHexAtoi(in.substr(i + 1, 2), &value)) {
      out.push_back(static_cast<char>(value));
      i += 2;
    } else {
      out.push_back(in[i]);
    }
  }
  return out;
}

// "127.0.0.1:5000" -> "127.0.0.1"; "[::1]:5000" -> "::1".
std::optional<std::string> HostOf(const std::string& host_port, bool v6) {
  if (v6) {
    if (host_port.empty() || host_port[0] != '[') return std::nullopt;
    size_t close = host_port.find(']');
    if (close == std::string::npos) return std::nullopt;
    std::string host = host_port.substr(1, close - 1);
    size_t zone = host.find('%');  // fe80::1%eth0
    if (zone != std::string::npos) host.resize(zone);
    return host;
  }
  size_t colon = host_port.rfind(':');
  return colon == std::string::npos ? host_port : host_port.substr(0, colon);
}

}  // namespace

bool IsLoopbackPeer(const std::string& raw_peer) {
  std::string peer = PercentDecode(raw_peer);
  if (absl::StartsWith(peer, "unix:") ||
      absl::StartsWith(peer, "unix-abstract:")) {
    return true;
  }
  bool v6;
  absl::string_view rest = peer;
  if (absl::ConsumePrefix(&rest, "ipv4:")) {
    v6 = false;
  } else if (absl::ConsumePrefix(&rest, "ipv6:")) {
    v6 = true;
  } else {
    return false;
  }
  std::optional<std::string> host = HostOf(std::string(rest), v6);
  if (!host) return false;
  if (!v6) {
    in_addr a;
    if (inet_pton(AF_INET, host->c_str(), &a) != 1) return false;
    return (ntohl(a.s_addr) >> 24) == 127;
  }
  in6_addr a;
  if (inet_pton(AF_INET6, host->c_str(), &a) != 1) return false;
  if (IN6_IS_ADDR_LOOPBACK(&a)) return true;
  return IN6_IS_ADDR_V4MAPPED(&a) && a.s6_addr[12] == 127;
}

bool TokensEqual(const std::string& a, const std::string& b) {
  unsigned char da[SHA256_DIGEST_LENGTH];
  unsigned char db[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(a.data()), a.size(), da);
  SHA256(reinterpret_cast<const unsigned char*>(b.data()), b.size(), db);
  return CRYPTO_memcmp(da, db, sizeof(da)) == 0;
}

const char* AdmissionName(Admission a) {
  return a == Admission::kToken ? "token" : "loopback";
}

absl::StatusOr<Admission> CheckMutatingCall(
    const std::string& peer, const std::vector<std::string>& authorization,
    const std::optional<std::string>& token) {
  if (!token) {
    if (IsLoopbackPeer(peer)) return Admission::kLoopback;
    return absl::PermissionDeniedError(absl::StrCat(
        "changes are accepted only from loopback peers (kubectl "
        "port-forward) while forkd runs without an admin token, and ",
        peer.empty() ? std::string("this peer") : peer,
        " is not one; to allow remote calls start forkd with "
        "--admin-token-file FILE (or FORKD_ADMIN_TOKEN_FILE) and ",
        kTokenHint));
  }
  bool presented = false;
  for (const std::string& value : authorization) {
    absl::string_view v = absl::StripAsciiWhitespace(value);
    if (v.size() < 7 || !absl::EqualsIgnoreCase(v.substr(0, 7), "bearer ")) {
      continue;
    }
    presented = true;
    std::string given(absl::StripAsciiWhitespace(v.substr(7)));
    if (TokensEqual(given, *token)) return Admission::kToken;
  }
  if (!presented) {
    return absl::UnauthenticatedError(
        absl::StrCat("this call changes the server and needs the admin token "
                     "(forkd runs with --admin-token-file): ",
                     kTokenHint));
  }
  return absl::PermissionDeniedError(
      "the admin token does not match forkd's --admin-token-file");
}

// --- TokenFile ---------------------------------------------------------------

namespace {

// A file changed this close to the moment it was read may have changed
// again within the same timestamp tick; see TokenFile::Racy.
constexpr int64_t kRacyWindowNs = 1'000'000'000;

int64_t Nanos(timespec t) {
  return static_cast<int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
}

}  // namespace

bool TokenFile::Stamp::operator==(const Stamp& o) const {
  return dev == o.dev && ino == o.ino && size == o.size &&
         Nanos(mtime) == Nanos(o.mtime) && Nanos(ctime) == Nanos(o.ctime);
}

TokenFile::TokenFile(std::string path, std::string token, Stamp stamp,
                     timespec read_at)
    : path_(std::move(path)),
      token_(std::move(token)),
      stamp_(stamp),
      read_at_(read_at) {}

timespec TokenFile::Now() {
  timespec now{};
  clock_gettime(CLOCK_REALTIME, &now);
  return now;
}

bool TokenFile::Racy(const Stamp& stamp, timespec read_at) {
  // File times come from a coarse clock: a rewrite of the same size in the
  // tick of our read leaves the stamp as it was.
  int64_t newest = std::max(Nanos(stamp.mtime), Nanos(stamp.ctime));
  return Nanos(read_at) - newest < kRacyWindowNs;
}

absl::StatusOr<TokenFile::Stamp> TokenFile::StampOf(const std::string& path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    return absl::FailedPreconditionError(std::strerror(errno));
  }
  Stamp s;
  s.dev = st.st_dev;
  s.ino = st.st_ino;
  s.size = st.st_size;
  s.mtime = st.st_mtim;
  s.ctime = st.st_ctim;
  return s;
}

absl::StatusOr<std::string> TokenFile::Read(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return absl::FailedPreconditionError(std::strerror(errno));
  std::string data;
  char buf[4096];
  while (data.size() <= kMaxTokenFileBytes) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      close(fd);
      return absl::FailedPreconditionError(std::strerror(e));
    }
    if (n == 0) break;
    data.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  if (data.size() > kMaxTokenFileBytes) {
    return absl::FailedPreconditionError("larger than 64 KiB; not a token");
  }
  std::string token(absl::StripAsciiWhitespace(data));
  if (token.empty()) return absl::FailedPreconditionError("the file is empty");
  return token;
}

absl::StatusOr<std::unique_ptr<TokenFile>> TokenFile::Open(std::string path) {
  absl::StatusOr<Stamp> stamp = StampOf(path);
  timespec read_at = Now();
  absl::StatusOr<std::string> token = Read(path);
  if (!token.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "--admin-token-file ", path, ": ", token.status().message()));
  }
  return std::unique_ptr<TokenFile>(new TokenFile(
      std::move(path), std::move(*token), stamp.value_or(Stamp{}), read_at));
}

absl::StatusOr<std::string> TokenFile::Current() {
  absl::StatusOr<Stamp> stamp = StampOf(path_);
  std::lock_guard<std::mutex> lock(mu_);
  if (stamp.ok() && broken_.ok() && *stamp == stamp_ &&
      !Racy(stamp_, read_at_)) {
    return token_;
  }
  timespec read_at = Now();
  absl::StatusOr<std::string> token =
      stamp.ok() ? Read(path_) : absl::StatusOr<std::string>(stamp.status());
  if (!token.ok()) {
    if (broken_.ok()) {
      LOG_WARNING(
          "--admin-token-file %s: %s; refusing every change over the admin "
          "API until it holds a token again",
          path_, token.status().message());
    }
    broken_ = token.status();
    return absl::FailedPreconditionError(absl::StrCat(
        "forkd's --admin-token-file cannot be used (", token.status().message(),
        "), so changes are refused until it holds a token again; reads stay "
        "open"));
  }
  if (!broken_.ok()) {
    LOG_INFO("--admin-token-file %s holds a token again", path_);
  } else if (*token != token_) {
    LOG_INFO("Admin token re-read from %s", path_);
  }
  broken_ = absl::OkStatus();
  token_ = std::move(*token);
  stamp_ = *stamp;
  read_at_ = read_at;
  return token_;
}

}  // namespace forkd::admin
