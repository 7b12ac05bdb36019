#include "server/proxy/proxy_protocol_transport.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "server/common/log.h"
#include "server/common/loop_clock.h"
#include "server/proxyproto/proxy_header.h"

namespace forkd::proxy {
namespace {

using scoreboard::ProxyProtocolReject;

const char* ReasonText(ProxyProtocolReject reason) {
  switch (reason) {
    case ProxyProtocolReject::kUntrustedPeer:
      return "peer not in --proxy-allow-ips";
    case ProxyProtocolReject::kMalformed:
      return "bad PROXY protocol header";
    case ProxyProtocolReject::kTimeout:
      return "no PROXY protocol header in time";
    case ProxyProtocolReject::kClosed:
      return "peer left before its PROXY protocol header";
    case ProxyProtocolReject::kCount:
      break;
  }
  return "";
}

}  // namespace

void ReportProxyProtocolReject(scoreboard::Counters* counters,
                               ProxyProtocolReject reason,
                               const std::string& peer,
                               const std::string& detail) {
  if (counters != nullptr) {
    counters->proxy_protocol_rejected[static_cast<size_t>(reason)].fetch_add(
        1, std::memory_order_relaxed);
  }
  // A scanner or a misconfigured balancer can send thousands of these a
  // second: one line a second says it, the counter says how many.
  static std::atomic<int64_t> last_ms{INT64_MIN / 2};
  static std::atomic<uint64_t> left_out{0};
  int64_t now = scoreboard::MonotonicMs();
  int64_t last = last_ms.load(std::memory_order_relaxed);
  if (now - last < 1000 ||
      !last_ms.compare_exchange_strong(last, now, std::memory_order_relaxed)) {
    left_out.fetch_add(1, std::memory_order_relaxed);
    return;
  }
  uint64_t more = left_out.exchange(0, std::memory_order_relaxed);
  std::string also =
      more > 0 ? absl::StrCat(" (and ", more, " more in the last second)") : "";
  LOG_WARNING("closed connection from %s: %s: %s%s",
              peer.empty() ? "unix-socket client" : peer, ReasonText(reason),
              detail, also);
}

int64_t ProxyHeaderTimeoutMs(int64_t client_header_timeout_ms) {
  return client_header_timeout_ms > 0
             ? std::min(kProxyHeaderTimeoutMs, client_header_timeout_ms)
             : kProxyHeaderTimeoutMs;
}

ProxyProtocolTransport::ProxyProtocolTransport(int fd, std::string peer,
                                               const char* scheme, Next next,
                                               scoreboard::Counters* counters,
                                               int64_t now_ms,
                                               int64_t timeout_ms)
    : fd_(fd),
      peer_(std::move(peer)),
      scheme_(scheme),
      next_(std::move(next)),
      counters_(counters),
      timeout_ms_(timeout_ms),
      deadline_ms_(now_ms + timeout_ms) {}

ProxyProtocolTransport::~ProxyProtocolTransport() {
  // A driver may end an idle connection without OnTimeout (the gthread
  // poller's sweep): a header still missing at its deadline is a timeout.
  if (!client_.has_value() && !failed_ &&
      scoreboard::MonotonicMs() >= deadline_ms_) {
    OnSetupTimeout();
  }
  // Once handed on, the next transport owns (and closed) the socket.
  if (!client_.has_value()) close(fd_);
}

ssize_t ProxyProtocolTransport::Read(char* buf, size_t len) {
  if (inner_) return inner_->Read(buf, len);
  if (failed_) {
    errno = EPROTO;
    return -1;
  }
  ssize_t r = ReadHeader();
  if (r <= 0 || !inner_) return r;
  return inner_->Read(buf, len);
}

ssize_t ProxyProtocolTransport::ReadHeader() {
  // Peek, so that bytes past the header stay in the socket for TLS; what
  // is certainly header (all of it while incomplete) is then taken off.
  thread_local char scratch[proxyproto::kMaxV2Length];
  size_t room = proxyproto::kMaxV2Length - pending_.size();
  ssize_t n = recv(fd_, scratch, room, MSG_PEEK);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return -1;
    int err = errno;
    Reject(ProxyProtocolReject::kClosed, std::strerror(err));
    errno = err;
    return -1;
  }
  if (n == 0) {
    Reject(ProxyProtocolReject::kClosed, pending_.empty()
                                             ? "closed without sending anything"
                                             : "closed in the middle of it");
    return 0;
  }
  size_t before = pending_.size();
  pending_.append(scratch, static_cast<size_t>(n));
  proxyproto::ParseResult r = proxyproto::ParseProxyHeader(pending_);
  size_t take = 0;
  switch (r.status) {
    case proxyproto::ParseStatus::kNeedMore:
      take = static_cast<size_t>(n);
      break;
    case proxyproto::ParseStatus::kError:
      Reject(ProxyProtocolReject::kMalformed, r.error);
      errno = EPROTO;
      return -1;
    case proxyproto::ParseStatus::kDone:
      take = r.consumed - before;
      break;
  }
  // The bytes are in the socket (we just peeked them): this cannot block.
  size_t got = 0;
  while (got < take) {
    ssize_t m = recv(fd_, scratch, take - got, 0);
    if (m < 0 && errno == EINTR) continue;
    if (m <= 0) {
      Reject(ProxyProtocolReject::kClosed, "lost bytes of the header");
      errno = EPROTO;
      return -1;
    }
    got += static_cast<size_t>(m);
  }
  if (r.status == proxyproto::ParseStatus::kNeedMore) {
    errno = EAGAIN;
    return -1;
  }
  // LOCAL (v2) and UNKNOWN (v1): the balancer speaks for itself.
  client_ = r.header.local ? peer_ : r.header.source_address;
  pending_.clear();
  pending_.shrink_to_fit();
  if (counters_ != nullptr) {
    counters_->proxy_protocol_accepted.fetch_add(1, std::memory_order_relaxed);
  }
  inner_ = next_(fd_, *client_);
  next_ = nullptr;
  if (!inner_) {  // logged by the factory; it closed the socket
    failed_ = true;
    errno = EPROTO;
    return -1;
  }
  return 1;
}

void ProxyProtocolTransport::Reject(ProxyProtocolReject reason,
                                    const std::string& detail) {
  failed_ = true;
  ReportProxyProtocolReject(counters_, reason, peer_, detail);
}

ssize_t ProxyProtocolTransport::Write(const char* data, size_t len) {
  if (inner_) return inner_->Write(data, len);
  errno = EPIPE;
  return -1;
}

void ProxyProtocolTransport::ShutdownWrite() {
  if (inner_) {
    inner_->ShutdownWrite();
  } else if (!client_.has_value()) {
    shutdown(fd_, SHUT_WR);
  }
}

bool ProxyProtocolTransport::HasPendingInput() const {
  return inner_ && inner_->HasPendingInput();
}

bool ProxyProtocolTransport::ReadNeedsWritable() const {
  return inner_ && inner_->ReadNeedsWritable();
}

bool ProxyProtocolTransport::WriteNeedsReadable() const {
  return inner_ && inner_->WriteNeedsReadable();
}

int64_t ProxyProtocolTransport::setup_deadline_ms() const {
  return client_.has_value() || failed_ ? loop_clock::kNoDeadlineMs
                                        : deadline_ms_;
}

void ProxyProtocolTransport::OnSetupTimeout() {
  if (client_.has_value() || failed_) return;
  Reject(ProxyProtocolReject::kTimeout,
         pending_.empty() ? absl::StrCat("nothing within ", timeout_ms_, " ms")
                          : absl::StrCat(pending_.size(), " bytes within ",
                                         timeout_ms_, " ms"));
}

const std::string* ProxyProtocolTransport::proxied_peer() const {
  return client_.has_value() ? &*client_ : nullptr;
}

}  // namespace forkd::proxy
