#include "server/upstream/upstream_pool.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "server/common/address.h"

namespace forkd::upstream {

Connection::~Connection() {
  if (fd >= 0) close(fd);
}

absl::StatusOr<Address> Address::Parse(const std::string& spec) {
  absl::StatusOr<common::Address> parsed =
      common::ParseAddress(spec, common::AddressUse::kUpstream);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--upstream: \"", spec, "\": ", parsed.status().message()));
  }
  Address a;
  a.display = spec;
  if (parsed->kind == common::Address::Kind::kUnix) {
    auto* sun = reinterpret_cast<sockaddr_un*>(&a.addr);
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, parsed->path.data(), parsed->path.size());
    a.len = offsetof(sockaddr_un, sun_path) + parsed->path.size() + 1;
    a.is_unix = true;
    return a;
  }
  // The grammar admits only IP literals and localhost here, so no resolver
  // runs on the request path.
  std::string host = parsed->host == "localhost" ? "127.0.0.1" : parsed->host;
  const auto port = htons(static_cast<uint16_t>(parsed->port));
  auto* sin = reinterpret_cast<sockaddr_in*>(&a.addr);
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(&a.addr);
  if (inet_pton(AF_INET, host.c_str(), &sin->sin_addr) == 1) {
    sin->sin_family = AF_INET;
    sin->sin_port = port;
    a.len = sizeof(sockaddr_in);
  } else if (inet_pton(AF_INET6, host.c_str(), &sin6->sin6_addr) == 1) {
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = port;
    a.len = sizeof(sockaddr_in6);
  } else {
    return absl::InvalidArgumentError(absl::StrCat(
        "--upstream: \"", spec, "\": the host must be an IP address"));
  }
  return a;
}

Pool::Pool(Address address, int max_idle)
    : address_(std::move(address)), max_idle_(std::max(0, max_idle)) {}

std::unique_ptr<Connection> Pool::TakeIdle() {
  while (true) {
    std::unique_ptr<Connection> c;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (idle_.empty()) return nullptr;
      c = std::move(idle_.back());
      idle_.pop_back();
    }
    // Registered connections report the app closing them to the async
    // loop. The others (gthread, sync) are checked here: an app that closes
    // idle keep-alive connections (Gunicorn after its --keepalive) would
    // otherwise fail the next request, and a POST cannot be retried.
    if (!c->registered) {
      char byte;
      ssize_t n = recv(c->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
      if (n >= 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        Discard(std::move(c));  // closed (0), stray bytes (>0) or an error
        continue;
      }
    }
    c->reused = true;
    return c;
  }
}

ConnectResult Pool::Connect(std::unique_ptr<Connection>* out, int* err) {
  int family = address_.addr.ss_family;
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *err = errno;
    return ConnectResult::kFailed;
  }
  if (!address_.is_unix) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  auto conn = std::make_unique<Connection>();
  conn->fd = fd;
  if (connect(fd, reinterpret_cast<const sockaddr*>(&address_.addr),
              address_.len) == 0) {
    conn->writable = true;
    *out = std::move(conn);
    return ConnectResult::kConnected;
  }
  *err = errno;
  if (errno == EINPROGRESS) {
    conn->connecting = true;
    *out = std::move(conn);
    return ConnectResult::kInProgress;
  }
  // A unix socket answers EAGAIN when the app's accept queue is full.
  if (errno == EAGAIN && address_.is_unix) return ConnectResult::kRetryLater;
  return ConnectResult::kFailed;
}

void Pool::Release(std::unique_ptr<Connection> conn) {
  conn->owner = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_.size() < max_idle_) {
      idle_.push_back(std::move(conn));
      return;
    }
  }
  Discard(std::move(conn));
}

void Pool::Discard(std::unique_ptr<Connection> conn) {
  conn->owner = nullptr;
  if (discard_) discard_(std::move(conn));
}

void Pool::SetDiscard(
    std::function<void(std::unique_ptr<Connection>)> discard) {
  discard_ = std::move(discard);
}

bool Pool::OnIdleEvent(Connection* conn, uint32_t events) {
  if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) == 0) {
    return false;
  }
  if ((events & (EPOLLHUP | EPOLLERR)) == 0) {
    // An edge-triggered EPOLLIN can outlive the bytes that raised it (they
    // were read with the response in the same batch): look before dropping.
    char byte;
    ssize_t n = recv(conn->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
  }
  std::unique_ptr<Connection> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = std::find_if(idle_.begin(), idle_.end(),
                           [conn](const auto& c) { return c.get() == conn; });
    if (it == idle_.end()) return false;
    dropped = std::move(*it);
    idle_.erase(it);
  }
  Discard(std::move(dropped));
  return true;
}

size_t Pool::idle_count() {
  std::lock_guard<std::mutex> lock(mu_);
  return idle_.size();
}

namespace {

using scoreboard::AppState;

Address UnixAddress(const char* path) {
  Address a;
  auto* sun = reinterpret_cast<sockaddr_un*>(&a.addr);
  sun->sun_family = AF_UNIX;
  const size_t n = strnlen(path, sizeof(sun->sun_path) - 1);
  memcpy(sun->sun_path, path, n);
  a.len = offsetof(sockaddr_un, sun_path) + n + 1;
  a.is_unix = true;
  a.display = "unix:" + std::string(path, n);
  return a;
}

}  // namespace

AppPools::AppPools(const AppRouter* router, int max_idle)
    : router_(router), max_idle_(max_idle), entries_(router->count()) {}

void AppPools::DropLocked(Entry* e) {
  if (!e->pool) return;
  while (auto c = e->pool->TakeIdle()) Discard(std::move(c));
  e->pool.reset();
}

Pool* AppPools::PoolLocked(const AppReservation& r) {
  Entry& e = entries_[r.slot];
  if (e.pool && e.incarnation == r.incarnation) return e.pool.get();
  DropLocked(&e);
  e.incarnation = r.incarnation;
  // socket_path is stable while the slot is not kEmpty (scoreboard.h); the
  // reservation was made on a kReady slot.
  e.pool = std::make_unique<Pool>(
      UnixAddress(router_->slot(r.slot).socket_path), max_idle_);
  e.pool->SetDiscard(
      [this](std::unique_ptr<Connection> c) { Discard(std::move(c)); });
  return e.pool.get();
}

std::unique_ptr<Connection> AppPools::TakeIdle(const AppReservation& r) {
  std::lock_guard<std::mutex> lock(mu_);
  return PoolLocked(r)->TakeIdle();
}

ConnectResult AppPools::Connect(const AppReservation& r,
                                std::unique_ptr<Connection>* out, int* err) {
  std::lock_guard<std::mutex> lock(mu_);
  return PoolLocked(r)->Connect(out, err);
}

void AppPools::Release(const AppReservation& r,
                       std::unique_ptr<Connection> conn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    const auto& slot = router_->slot(r.slot);
    if (static_cast<AppState>(slot.state.load(std::memory_order_acquire)) ==
            AppState::kReady &&
        slot.incarnation.load(std::memory_order_acquire) == r.incarnation &&
        entries_[r.slot].incarnation <= r.incarnation) {
      PoolLocked(r)->Release(std::move(conn));
      return;
    }
  }
  Discard(std::move(conn));
}

void AppPools::Discard(std::unique_ptr<Connection> conn) {
  conn->owner = nullptr;
  if (discard_) discard_(std::move(conn));
}

bool AppPools::OnIdleEvent(Connection* conn, uint32_t events) {
  std::lock_guard<std::mutex> lock(mu_);
  for (Entry& e : entries_) {
    if (e.pool && e.pool->OnIdleEvent(conn, events)) return true;
  }
  return false;
}

void AppPools::Sweep() {
  std::lock_guard<std::mutex> lock(mu_);
  for (uint32_t i = 0; i < entries_.size(); ++i) {
    Entry& e = entries_[i];
    if (!e.pool) continue;
    const auto& slot = router_->slot(i);
    if (static_cast<AppState>(slot.state.load(std::memory_order_acquire)) !=
            AppState::kReady ||
        slot.incarnation.load(std::memory_order_acquire) != e.incarnation) {
      DropLocked(&e);
    }
  }
}

std::string AppPools::Display(const AppReservation& r) {
  std::lock_guard<std::mutex> lock(mu_);
  return PoolLocked(r)->address().display;
}

size_t AppPools::idle_count() {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (Entry& e : entries_) {
    if (e.pool) n += e.pool->idle_count();
  }
  return n;
}

void AppPools::SetDiscard(
    std::function<void(std::unique_ptr<Connection>)> discard) {
  discard_ = std::move(discard);
}

}  // namespace forkd::upstream
