#include "server/probes/app_probe.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string_view>

#include "absl/strings/str_cat.h"
#include "server/http1/message.h"
#include "server/http1/response_parser.h"
#include "server/scoreboard/scoreboard.h"

namespace forkd::probes {
namespace {

constexpr size_t kMaxResponseHead = 16 * 1024;

// Closes the fd when the check returns, whichever way.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) close(fd_);
  }
  int get() const { return fd_; }

 private:
  int fd_;
};

// Waits for `events` on fd until `deadline_ms`. Returns false on timeout.
bool WaitFor(int fd, short events, int64_t deadline_ms) {
  while (true) {
    int64_t left = deadline_ms - scoreboard::MonotonicMs();
    if (left <= 0) return false;
    pollfd p{fd, events, 0};
    int n = poll(&p, 1, static_cast<int>(left));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return false;
  }
}

ProbeResult Fail(std::string why) { return ProbeResult{false, std::move(why)}; }

}  // namespace

absl::StatusOr<AppProbe> AppProbe::Create(const std::string& upstream,
                                          const std::string& path,
                                          int64_t timeout_ms) {
  absl::StatusOr<upstream::Address> address =
      upstream::Address::Parse(upstream);
  if (!address.ok()) return address.status();
  return AppProbe(std::move(*address), path, timeout_ms);
}

ProbeResult AppProbe::Check() const {
  int64_t deadline = scoreboard::MonotonicMs() + timeout_ms_;
  const std::string& where = address_.display;
  Fd fd(socket(address_.addr.ss_family,
               SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) {
    return Fail(absl::StrCat("socket: ", std::strerror(errno)));
  }
  int rc = connect(fd.get(), reinterpret_cast<const sockaddr*>(&address_.addr),
                   address_.len);
  if (rc != 0 && errno == EAGAIN) {
    return Fail(
        absl::StrCat("connect ", where, ": the app's accept queue is full"));
  }
  if (rc != 0 && errno != EINPROGRESS) {
    return Fail(absl::StrCat("connect ", where, ": ", std::strerror(errno)));
  }
  if (rc != 0) {
    if (!WaitFor(fd.get(), POLLOUT, deadline)) {
      return Fail(absl::StrCat("connect ", where, ": timed out"));
    }
    int err = 0;
    socklen_t len = sizeof(err);
    getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) {
      return Fail(absl::StrCat("connect ", where, ": ", std::strerror(err)));
    }
  }
  if (path_.empty())
    return ProbeResult{true, absl::StrCat("connected to ", where)};

  std::string what = absl::StrCat("GET ", path_, " on ", where);
  std::string request = absl::StrCat(
      "GET ", path_,
      " HTTP/1.1\r\nHost: localhost\r\nUser-Agent: forkd-health-check\r\n"
      "Connection: close\r\n\r\n");
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = send(fd.get(), request.data() + sent, request.size() - sent,
                     MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!WaitFor(fd.get(), POLLOUT, deadline)) {
        return Fail(absl::StrCat(what, ": timed out sending"));
      }
      continue;
    }
    return Fail(absl::StrCat(what, ": ", std::strerror(errno)));
  }

  http1::ResponseParser parser;
  std::string in;
  char buf[4096];
  while (true) {
    size_t consumed = 0;
    http1::ParseStatus st = parser.Parse(in, "GET", &consumed);
    if (st == http1::ParseStatus::kError) {
      return Fail(
          absl::StrCat(what, ": bad response: ", parser.error().detail));
    }
    if (st == http1::ParseStatus::kDone) {
      int status = parser.head().status;
      if (status >= 100 && status < 200) {  // interim: the final one follows
        in.erase(0, consumed);
        parser.Reset();
        continue;
      }
      if (status >= 200 && status < 300) {
        return ProbeResult{true, absl::StrCat(what, ": ", status)};
      }
      return Fail(absl::StrCat(what, ": status ", status));
    }
    if (in.size() > kMaxResponseHead) {
      return Fail(absl::StrCat(what, ": response head too large"));
    }
    ssize_t n = recv(fd.get(), buf, sizeof(buf), 0);
    if (n > 0) {
      in.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n == 0) return Fail(absl::StrCat(what, ": closed without an answer"));
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!WaitFor(fd.get(), POLLIN, deadline)) {
        return Fail(absl::StrCat(what, ": timed out"));
      }
      continue;
    }
    return Fail(absl::StrCat(what, ": ", std::strerror(errno)));
  }
}

}  // namespace forkd::probes
