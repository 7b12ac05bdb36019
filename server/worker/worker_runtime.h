// What every worker class shares: its scoreboard slot, the listening
// sockets, signals, heartbeat, live settings, graceful stop and the
// max-requests recycle. The class drivers (async_worker, threaded_worker)
// own the event loops; they call into this.
#ifndef FORKD_SERVER_WORKER_WORKER_RUNTIME_H_
#define FORKD_SERVER_WORKER_WORKER_RUNTIME_H_

#include <sys/socket.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "server/accesslog/access_log.h"
#include "server/common/ip_networks.h"
#include "server/config/config.h"
#include "server/proxy/app_queue.h"
#include "server/proxy/proxy_session.h"
#include "server/scoreboard/scoreboard.h"
#include "server/tls/tls_context.h"
#include "server/upstream/app_router.h"
#include "server/upstream/h2_upstream.h"
#include "server/upstream/upstream_pool.h"

namespace forkd::worker {

class WorkerRuntime {
 public:
  struct Args {
    uint32_t slot = 0;
    uint64_t generation = 0;
    int scoreboard_fd = -1;
    std::vector<int> listen_fds;
    config::Config config;
    bool record_metrics = true;  // WorkerLaunch::record_metrics
  };

  // Attaches the scoreboard, opens the access log, blocks the handled
  // signals and makes the signalfd. Called on the main thread before any
  // other thread exists (the signal mask is inherited by threads).
  static absl::StatusOr<std::unique_ptr<WorkerRuntime>> Create(Args args);

  const config::Config& config() const { return args_.config; }
  const std::vector<int>& listen_fds() const { return args_.listen_fds; }
  scoreboard::Slot& slot() { return *slot_; }
  scoreboard::Settings& settings() { return scoreboard_->settings(); }
  proxy::SessionContext* session_context() { return &ctx_; }
  upstream::Pool& pool() { return *pool_; }
  // App mode (the scoreboard has AppSlots): the per-process pools; nullptr
  // in sidecar mode.
  upstream::AppPools* app_pools() { return app_pools_.get(); }
  // The HTTP/2 connections to the app with --upstream-protocol h2c, else
  // nullptr. The async driver flushes it after each event batch.
  upstream::H2Upstream* h2_upstream() { return h2_upstream_.get(); }
  int signal_fd() const { return signal_fd_; }
  // An eventfd the drivers poll: written when a stop begins from another
  // thread (max-requests reached in a gthread thread).
  int wake_fd() const { return wake_fd_; }

  // Marks the slot ready (accepting). Main thread.
  void MarkReady();
  // Writes the heartbeat. Main thread, at least every second.
  void Heartbeat();
  // Reads pending signals: TERM starts a graceful stop, QUIT/INT exit at
  // once, USR1 reopens logs. Main thread.
  void HandleSignals();
  // Starts a graceful stop for `reason`. Any thread; idempotent.
  void BeginStop(scoreboard::ExitReason reason);
  bool stopping() const { return stopping_.load(std::memory_order_relaxed); }
  // The server is draining (admin Drain or shutdown): take no new
  // connections; requests on open ones are answered 503.
  bool server_draining() {
    return scoreboard_->settings().draining.load(std::memory_order_relaxed);
  }
  // The worker_connections in force: the master's published setting, or
  // the config's before the first publication.
  uint32_t WorkerConnections() {
    uint32_t c = settings().worker_connections.load(std::memory_order_relaxed);
    return c != 0 ? c : static_cast<uint32_t>(args_.config.worker_connections);
  }
  // Neither stopping nor draining: the worker should be accepting.
  bool accepting() { return !stopping() && !server_draining(); }
  // True when the settings generation moved since the last call; main
  // thread. The driver then reads settings() and applies them.
  bool SettingsChanged();
  // Final slot state and exit code 0.
  [[noreturn]] void Exit();

  // Client IP text for a peer address from accept ("" for unix sockets).
  static std::string PeerAddress(const sockaddr_storage& peer);

  // Accepts one connection from `listen_fd` (non-blocking, close-on-exec,
  // TCP_NODELAY), counting it in the slot. Returns -1 when none is waiting
  // or on a transient error (logged); *peer receives the client's IP text.
  int Accept(int listen_fd, std::string* peer);

  // The session for a connection Accept() returned: over TLS when
  // --certfile is set, else on the plain socket, behind a PROXY protocol
  // header with --proxy-protocol. nullptr when TLS cannot be set up for it
  // or the peer may not send PROXY headers (logged, counted; the socket is
  // closed). Any thread.
  std::unique_ptr<proxy::ProxySession> NewSession(int fd, std::string peer);

 private:
  explicit WorkerRuntime(Args args) : args_(std::move(args)) {}
  void OnRequestDone();

  Args args_;
  std::unique_ptr<scoreboard::Scoreboard> scoreboard_;
  scoreboard::Slot* slot_ = nullptr;
  std::unique_ptr<accesslog::AccessLog> access_log_;
  std::unique_ptr<upstream::Pool> pool_;
  std::unique_ptr<upstream::AppRouter> app_router_;  // app mode
  std::unique_ptr<upstream::AppPools> app_pools_;
  std::unique_ptr<proxy::SharedLimit> shared_limit_;
  std::unique_ptr<proxy::QueueHeads> queue_heads_;
  std::unique_ptr<proxy::AppQueue> app_queue_;
  std::unique_ptr<upstream::H2Upstream> h2_upstream_;
  std::unique_ptr<tls::TlsContext> tls_;  // nullptr: plain HTTP
  bool proxy_protocol_ = false;           // --proxy-protocol
  IpNetworks proxy_allow_;                // --proxy-allow-ips
  proxy::SessionContext ctx_;
  http2::Http2Context http2_context_;
  int signal_fd_ = -1;
  int wake_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::atomic<uint32_t> exit_reason_{0};
  uint64_t max_requests_ = 0;  // 0: never recycle
  std::atomic<uint64_t> requests_done_{0};
  uint64_t settings_seen_ = 0;
};

// The drivers: each runs until the worker stops, then calls Exit().
[[noreturn]] void RunAsyncWorker(WorkerRuntime* rt);
[[noreturn]] void RunThreadedWorker(WorkerRuntime* rt, bool sync);

}  // namespace forkd::worker

#endif  // FORKD_SERVER_WORKER_WORKER_RUNTIME_H_
