#include "server/metrics/metrics_server.h"

#include <netdb.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <list>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "server/common/address.h"
#include "server/common/log.h"
#include "server/http1/message.h"
#include "server/http1/request_parser.h"
#include "server/scoreboard/scoreboard.h"

namespace forkd::metrics {
namespace {

constexpr int kMaxConnections = 64;
constexpr int64_t kIdleTimeoutMs = 60000;
constexpr int64_t kRetryBindMs = 1000;
constexpr size_t kMaxPendingInput = 16 * 1024;

const char* Reason(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 503:
      return "Service Unavailable";
    default:
      return "Internal Server Error";
  }
}

void AppendResponse(const HttpResponse& r, bool head_only, bool close,
                    std::string* out) {
  absl::StrAppendFormat(out,
                        "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n"
                        "Content-Length: %d\r\nCache-Control: no-store\r\n",
                        r.status, Reason(r.status), r.content_type,
                        r.body.size());
  if (r.status == 405) out->append("Allow: GET, HEAD\r\n");
  if (close) out->append("Connection: close\r\n");
  out->append("\r\n");
  if (!head_only) out->append(r.body);
}

http1::Limits RequestLimits() {
  http1::Limits l;
  l.max_request_line = 8190;
  l.max_fields = 100;
  l.max_field_size = 8190;
  return l;
}

}  // namespace

struct MetricsServer::Conn {
  explicit Conn(int f) : fd(f), parser(RequestLimits()) {}
  int fd;
  std::string in;
  std::string out;
  size_t out_pos = 0;
  int64_t last_ms = 0;
  bool close_after = false;  // close once `out` is sent
  http1::RequestParser parser;
};

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Create(
    const std::string& bind, HttpHandler handler, bool wait_for_address) {
  int wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake < 0) {
    return absl::InternalError(absl::StrCat("eventfd: ", std::strerror(errno)));
  }
  std::unique_ptr<MetricsServer> s(
      new MetricsServer(bind, std::move(handler), wake));
  absl::Status st = s->Bind();
  if (!st.ok() && !(wait_for_address && absl::IsUnavailable(st))) return st;
  if (!st.ok()) {
    LOG_WARNING(
        "--metrics-bind %s is in use (the previous master still serves it); "
        "retrying every second",
        bind);
  }
  return s;
}

MetricsServer::MetricsServer(std::string bind, HttpHandler handler, int wake_fd)
    : bind_(std::move(bind)), handler_(std::move(handler)), wake_fd_(wake_fd) {}

MetricsServer::~MetricsServer() {
  Stop();
  if (listen_fd_ >= 0) close(listen_fd_);
  close(wake_fd_);
}

// Unavailable: the address is in use. InvalidArgument / Internal otherwise.
absl::Status MetricsServer::Bind() {
  absl::StatusOr<common::Address> address =
      common::ParseAddress(bind_, common::AddressUse::kPlane);
  if (!address.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--metrics-bind: \"", bind_, "\": ", address.status().message()));
  }
  const std::string& host = address->host;
  const std::string port = absl::StrCat(address->port);
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* res = nullptr;
  int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res);
  if (rc != 0 || res == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--metrics-bind: cannot resolve \"", bind_, "\": ", gai_strerror(rc)));
  }
  int fd =
      socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    freeaddrinfo(res);
    return absl::InternalError(absl::StrCat("socket: ", std::strerror(errno)));
  }
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, 64) != 0) {
    int err = errno;
    close(fd);
    freeaddrinfo(res);
    std::string msg = absl::StrCat("cannot bind --metrics-bind ", bind_, ": ",
                                   std::strerror(err));
    if (err == EADDRINUSE) return absl::UnavailableError(msg);
    return absl::InternalError(msg);
  }
  freeaddrinfo(res);
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  int p = 0;
  if (ss.ss_family == AF_INET) {
    p = ntohs(reinterpret_cast<sockaddr_in*>(&ss)->sin_port);
  } else if (ss.ss_family == AF_INET6) {
    p = ntohs(reinterpret_cast<sockaddr_in6*>(&ss)->sin6_port);
  }
  listen_fd_ = fd;
  port_.store(p);
  LOG_INFO(
      "Metrics and probes at: http://%s:%d (/metrics /livez /readyz "
      "/startupz)",
      host.find(':') != std::string::npos ? absl::StrCat("[", host, "]") : host,
      p);
  return absl::OkStatus();
}

void MetricsServer::Start() {
  thread_ = std::thread([this] { Run(); });
}

void MetricsServer::Stop() {
  if (stop_.exchange(true)) {
    if (thread_.joinable()) thread_.join();
    return;
  }
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
}

bool MetricsServer::Serve(Conn& c) {
  while (!c.in.empty()) {
    size_t consumed = 0;
    http1::ParseStatus st = c.parser.Parse(c.in, &consumed);
    if (st == http1::ParseStatus::kNeedMore) {
      if (c.in.size() > kMaxPendingInput) {
        AppendResponse(
            {400, "text/plain; charset=utf-8", "request too large\n"}, false,
            true, &c.out);
        return false;
      }
      return true;
    }
    if (st == http1::ParseStatus::kError) {
      AppendResponse(
          {400, "text/plain; charset=utf-8",
           absl::StrCat("bad request: ", c.parser.error().detail, "\n")},
          false, true, &c.out);
      return false;
    }
    const http1::RequestHead& head = c.parser.head();
    c.in.erase(0, consumed);
    bool head_only = head.method == "HEAD";
    if (head.method != "GET" && !head_only) {
      AppendResponse({405, "text/plain; charset=utf-8",
                      "only GET and HEAD are served here\n"},
                     false, true, &c.out);
      return false;
    }
    if (head.framing != http1::Framing::kNone || head.target.empty() ||
        head.target[0] != '/') {
      AppendResponse({400, "text/plain; charset=utf-8",
                      "expected a GET of a path, without a body\n"},
                     false, true, &c.out);
      return false;
    }
    HttpRequest req;
    req.method = head.method;
    size_t q = head.target.find('?');
    req.path = head.target.substr(0, q);
    if (q != std::string::npos) req.query = head.target.substr(q + 1);
    bool keep_alive = head.keep_alive;
    HttpResponse resp = handler_(req);
    AppendResponse(resp, head_only, !keep_alive, &c.out);
    c.parser.Reset();
    if (!keep_alive) return false;
  }
  return true;
}

void MetricsServer::Run() {
  std::list<Conn> conns;
  int64_t next_bind_ms = scoreboard::MonotonicMs() + kRetryBindMs;
  std::vector<pollfd> fds;
  std::vector<Conn*> polled;
  while (!stop_.load()) {
    int64_t now = scoreboard::MonotonicMs();
    if (listen_fd_ < 0 && now >= next_bind_ms) {
      if (!Bind().ok()) next_bind_ms = now + kRetryBindMs;
    }
    fds.clear();
    polled.clear();
    fds.push_back({wake_fd_, POLLIN, 0});
    if (listen_fd_ >= 0 && static_cast<int>(conns.size()) < kMaxConnections) {
      fds.push_back({listen_fd_, POLLIN, 0});
    }
    size_t first_conn = fds.size();
    for (Conn& c : conns) {
      short ev = c.out_pos < c.out.size() ? POLLOUT : POLLIN;
      fds.push_back({c.fd, ev, 0});
      polled.push_back(&c);
    }
    int n = poll(fds.data(), fds.size(), 1000);
    if (n < 0 && errno != EINTR) {
      LOG_ERROR("metrics server: poll: %s", std::strerror(errno));
      break;
    }
    if (stop_.load()) break;
    now = scoreboard::MonotonicMs();
    if (first_conn == 2 && (fds[1].revents & POLLIN)) {
      while (static_cast<int>(conns.size()) < kMaxConnections) {
        int fd =
            accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) break;
        conns.emplace_back(fd);
        conns.back().last_ms = now;
      }
    }
    for (size_t i = 0; i < polled.size(); ++i) {
      Conn& c = *polled[i];
      short re = fds[first_conn + i].revents;
      if (re == 0) continue;
      c.last_ms = now;
      bool dead = false;
      if (re & (POLLIN | POLLHUP | POLLERR)) {
        char buf[4096];
        while (c.in.size() <= 2 * kMaxPendingInput) {
          ssize_t r = recv(c.fd, buf, sizeof(buf), 0);
          if (r > 0) {
            c.in.append(buf, static_cast<size_t>(r));
            continue;
          }
          if (r < 0 && errno == EINTR) continue;
          if (r == 0) {
            c.close_after = true;  // the client is done sending
          } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
            dead = true;
          }
          break;
        }
      }
      // Answer what arrived (pipelined requests too), then send.
      while (!dead) {
        if (c.out_pos >= c.out.size() && !c.in.empty()) {
          bool keep = Serve(c);
          if (!keep) c.close_after = true;
          if (c.out.empty()) break;  // an incomplete request: wait for more
        }
        while (c.out_pos < c.out.size()) {
          ssize_t w = send(c.fd, c.out.data() + c.out_pos,
                           c.out.size() - c.out_pos, MSG_NOSIGNAL);
          if (w > 0) {
            c.out_pos += static_cast<size_t>(w);
            continue;
          }
          if (w < 0 && errno == EINTR) continue;
          if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
          dead = true;
          break;
        }
        if (dead || c.out_pos < c.out.size()) break;  // wait for POLLOUT
        c.out.clear();
        c.out_pos = 0;
        if (c.close_after) {
          dead = true;
          break;
        }
        if (c.in.empty()) break;
      }
      if (dead) {
        close(c.fd);
        c.fd = -1;
      }
    }
    for (auto it = conns.begin(); it != conns.end();) {
      if (it->fd >= 0 && now - it->last_ms > kIdleTimeoutMs) {
        close(it->fd);
        it->fd = -1;
      }
      it = it->fd < 0 ? conns.erase(it) : std::next(it);
    }
  }
  for (Conn& c : conns) {
    if (c.fd >= 0) close(c.fd);
  }
}

}  // namespace forkd::metrics
