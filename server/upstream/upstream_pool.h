// Connections to the app: where it is (unix socket or loopback TCP), how to
// open a non-blocking connection to it, and a per-worker pool of idle
// keep-alive connections so most requests skip the connect.
#ifndef FORKD_SERVER_UPSTREAM_UPSTREAM_POOL_H_
#define FORKD_SERVER_UPSTREAM_UPSTREAM_POOL_H_

#include <sys/socket.h>
#include <sys/un.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/upstream/app_router.h"

namespace forkd::upstream {

struct Address {
  sockaddr_storage addr{};
  socklen_t len = 0;
  bool is_unix = false;
  std::string display;  // "unix:/path" or "127.0.0.1:8001"

  // Parses "unix:/path", "http://HOST:PORT" (HOST an IP or localhost).
  static absl::StatusOr<Address> Parse(const std::string& spec);
};

// One connection to the app. In the async worker it stays registered with
// the worker's epoll for its whole life; `owner` says who gets its events
// (nullptr while idle in the pool, when an event means the app closed it).
struct Connection {
  class Owner {
   public:
    virtual ~Owner() = default;
    virtual void OnUpstreamEvents(uint32_t events) = 0;
  };

  int fd = -1;
  Owner* owner = nullptr;
  bool registered = false;  // with the async worker's epoll
  bool reused = false;      // came from the pool (may have been closed)
  bool connecting = false;  // non-blocking TCP connect in progress
  bool readable = false;    // edge-triggered readiness, cleared on EAGAIN
  bool writable = false;
  bool hup = false;          // the app hung up (EPOLLRDHUP): read to the EOF
  bool multiplexed = false;  // an HTTP/2 connection (H2Upstream) owns it
  ~Connection();
};

enum class ConnectResult { kConnected, kInProgress, kRetryLater, kFailed };

// Thread-safe: gthread workers share one pool among their threads.
class Pool {
 public:
  Pool(Address address, int max_idle);

  // Takes an idle connection (most recently used first) that the app has
  // not closed, or nullptr.
  std::unique_ptr<Connection> TakeIdle();

  // Opens a new non-blocking connection. kRetryLater: the app's accept
  // queue is full (EAGAIN on a unix socket); try again shortly.
  // kFailed: refused or missing socket; *err holds errno.
  ConnectResult Connect(std::unique_ptr<Connection>* out, int* err);

  // Returns a connection after a complete exchange. Closes it if the pool
  // already holds max_idle.
  void Release(std::unique_ptr<Connection> conn);

  // An epoll event (`events`, EPOLL* bits) for an idle connection of the
  // async worker. Drops the connection when the app closed it or sent
  // stray bytes; keeps it for a write-space edge (a unix socket reports
  // EPOLLOUT whenever the app reads what we sent, which may come after the
  // response) or a read edge with nothing behind it. Returns true when
  // the connection was dropped.
  bool OnIdleEvent(Connection* conn, uint32_t events);

  // Lets go of a connection that must not be reused.
  void Discard(std::unique_ptr<Connection> conn);

  const Address& address() const { return address_; }
  size_t idle_count();

  // Where connections the pool lets go end up. By default they are closed at
  // once; the async worker defers it to the end of its event batch, since an
  // event for the same connection may still be pending there.
  void SetDiscard(std::function<void(std::unique_ptr<Connection>)> discard);

 private:
  std::function<void(std::unique_ptr<Connection>)> discard_;
  Address address_;
  size_t max_idle_;
  std::mutex mu_;
  std::vector<std::unique_ptr<Connection>> idle_;
};

// App mode: a Pool per app process, keyed by (slot, incarnation), so a new
// process behind a slot never gets a connection made to the one before it.
// Sessions name their connection's process by its AppReservation and never
// keep a Pool pointer, so a pool can be replaced under them. Thread-safe.
class AppPools {
 public:
  // `router` must outlive this; `max_idle` is per app process.
  AppPools(const AppRouter* router, int max_idle);

  // An idle connection to the reserved process, or nullptr.
  std::unique_ptr<Connection> TakeIdle(const AppReservation& r);
  // Dials the reserved process's socket (Pool::Connect's contract).
  ConnectResult Connect(const AppReservation& r,
                        std::unique_ptr<Connection>* out, int* err);
  // After a complete exchange: pooled only while that process is still in
  // the rotation (kReady, same incarnation); else closed.
  void Release(const AppReservation& r, std::unique_ptr<Connection> conn);
  void Discard(std::unique_ptr<Connection> conn);
  // Pool::OnIdleEvent for whichever pool holds `conn`.
  bool OnIdleEvent(Connection* conn, uint32_t events);
  // Closes the idle connections of processes that left the rotation
  // (retiring, stopped, replaced). Call now and then (the loop's timer).
  void Sweep();
  // "unix:/path" of the reserved process, for log lines.
  std::string Display(const AppReservation& r);
  size_t idle_count();
  void SetDiscard(std::function<void(std::unique_ptr<Connection>)> discard);

 private:
  struct Entry {
    uint64_t incarnation = 0;
    std::unique_ptr<Pool> pool;
  };
  // The pool for r's incarnation, made on first use (mu_ held).
  Pool* PoolLocked(const AppReservation& r);
  void DropLocked(Entry* e);

  const AppRouter* router_;
  int max_idle_;
  std::function<void(std::unique_ptr<Connection>)> discard_;
  std::mutex mu_;
  std::vector<Entry> entries_;  // by slot
};

}  // namespace forkd::upstream

#endif  // FORKD_SERVER_UPSTREAM_UPSTREAM_POOL_H_
