#include "server/worker/worker_runtime.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <random>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "server/common/log.h"
#include "server/common/loop_clock.h"
#include "server/proxy/proxy_protocol_transport.h"

namespace forkd::worker {

absl::StatusOr<std::unique_ptr<WorkerRuntime>> WorkerRuntime::Create(
    Args args) {
  std::unique_ptr<WorkerRuntime> rt(new WorkerRuntime(std::move(args)));
  const config::Config& c = rt->args_.config;

  auto sb = scoreboard::Scoreboard::Attach(rt->args_.scoreboard_fd);
  if (!sb.ok()) return sb.status();
  rt->scoreboard_ = std::move(*sb);
  if (rt->args_.slot >= rt->scoreboard_->capacity()) {
    return absl::InvalidArgumentError(
        absl::StrCat("slot ", rt->args_.slot, " is outside the scoreboard"));
  }
  rt->slot_ = &rt->scoreboard_->slot(rt->args_.slot);

  auto address = upstream::Address::Parse(c.upstream);
  if (!address.ok()) return address.status();
  rt->pool_ = std::make_unique<upstream::Pool>(*address, c.upstream_keepalive);
  // --autotune limit: one limit on requests in flight to the app, shared
  // by every worker through the scoreboard. Made in every mode, since the
  // admin API can switch the limit on live; while it is 0 every request
  // gets its place at once.
  rt->shared_limit_ = std::make_unique<proxy::SharedLimit>(
      &rt->scoreboard_->app_limit(), &rt->slot_->limit_held);
  if (rt->scoreboard_->app_capacity() > 0) {
    // App mode: requests go to the master's app processes, chosen per
    // request; --upstream is not used.
    rt->app_router_ =
        std::make_unique<upstream::AppRouter>(rt->scoreboard_.get());
    rt->app_pools_ = std::make_unique<upstream::AppPools>(rt->app_router_.get(),
                                                          c.upstream_keepalive);
  }
  // Requests wait here for an app process (app mode) and for a place under
  // the limit (both modes), up to --max-queue-time.
  scoreboard::Slot* slot = rt->slot_;
  // A head older than --max-queue-time (and a second) is a dead worker's.
  const int64_t max_wait_ms = static_cast<int64_t>(c.max_queue_time * 1000);
  rt->queue_heads_ = std::make_unique<proxy::QueueHeads>(
      rt->scoreboard_.get(), rt->args_.slot,
      max_wait_ms > 0 ? max_wait_ms + 1000 : 0);
  rt->app_queue_ = std::make_unique<proxy::AppQueue>(
      rt->app_router_.get(), max_wait_ms,
      proxy::AppQueueMetrics{&slot->queued, &slot->counters.queue_timeouts,
                             &slot->counters.queue_waits,
                             &slot->counters.queue_wait_us},
      rt->shared_limit_.get(), rt->queue_heads_.get());

  if (!c.access_logfile.empty()) {
    auto log =
        accesslog::AccessLog::Create(c.access_logfile, c.access_logformat);
    if (!log.ok()) return log.status();
    rt->access_log_ = std::move(*log);
  }

  sigset_t mask;
  sigemptyset(&mask);
  for (int s : {SIGTERM, SIGQUIT, SIGINT, SIGUSR1, SIGHUP, SIGTTIN, SIGTTOU,
                SIGUSR2, SIGWINCH, SIGURG}) {
    sigaddset(&mask, s);
  }
  if (pthread_sigmask(SIG_BLOCK, &mask, nullptr) != 0) {
    return absl::InternalError("pthread_sigmask failed");
  }
  signal(SIGPIPE, SIG_IGN);
  rt->signal_fd_ = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
  rt->wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (rt->signal_fd_ < 0 || rt->wake_fd_ < 0) {
    return absl::InternalError(
        absl::StrCat("signalfd/eventfd: ", std::strerror(errno)));
  }

  if (c.max_requests > 0) {
    std::random_device rd;
    uint64_t jitter =
        c.max_requests_jitter > 0 ? rd() % (c.max_requests_jitter + 1) : 0;
    rt->max_requests_ = static_cast<uint64_t>(c.max_requests) + jitter;
  }

  proxy::SessionContext& ctx = rt->ctx_;
  ctx.limits.max_request_line = c.limit_request_line;
  ctx.limits.max_fields = c.limit_request_fields;
  ctx.limits.max_field_size = c.limit_request_field_size;
  ctx.limits.max_body = static_cast<uint64_t>(c.limit_request_body);
  ctx.request_buffer = static_cast<uint64_t>(c.request_buffer);
  ctx.response_buffer = static_cast<uint64_t>(c.response_buffer);
  ctx.upstream_timeout_ms = static_cast<int64_t>(c.upstream_timeout * 1000);
  ctx.client_timeout_ms =
      c.timeout > 0 ? static_cast<int64_t>(c.timeout * 1000) : 60000;
  ctx.keepalive_ms = static_cast<int64_t>(c.keepalive * 1000);
  ctx.client_header_timeout_ms =
      static_cast<int64_t>(c.client_header_timeout * 1000);
  ctx.client_body_timeout_ms =
      static_cast<int64_t>(c.client_body_timeout * 1000);
  ctx.force_close = c.worker_class == config::WorkerClass::kSync;
  ctx.pool = rt->pool_.get();
  ctx.app_queue = rt->app_queue_.get();
  ctx.app_pools = rt->app_pools_.get();
  ctx.slot = rt->slot_;
  ctx.access_log = rt->access_log_.get();
  ctx.stopping = &rt->stopping_;
  // Every class serves HTTP/2: async on its event loop, gthread and sync
  // on an Http2Loop (http2_loop.h).
  ctx.http2 = c.http2;
  // Loaded here, in each new worker, so a HUP serves replaced files; ALPN
  // offers h2 only when HTTP/2 is on.
  if (!c.certfile.empty()) {
    auto tls = tls::TlsContext::Create(tls::OptionsFromConfig(c, ctx.http2));
    if (!tls.ok()) return tls.status();
    rt->tls_ = std::move(*tls);
  }
  ctx.http2_settings.max_concurrent_streams = c.http2_max_concurrent_streams;
  ctx.http2_settings.initial_window_size = c.http2_initial_window_size;
  ctx.http2_settings.max_frame_size = c.http2_max_frame_size;
  ctx.http2_settings.max_header_list_size = c.http2_max_header_list_size;
  rt->http2_context_.now_ms = [] { return loop_clock::NowMs(); };
  ctx.http2_context = &rt->http2_context_;
  // Config validation allows h2c only with the async class and HTTP/2 on.
  if (c.upstream_protocol == "h2c" && ctx.http2) {
    upstream::H2ClientSession::Settings h2;
    // Per stream, the app may run this far ahead of a slow client; the
    // connection window is large so one stalled stream never blocks the
    // others multiplexed with it (memory stays bounded per stream).
    h2.initial_window_size = 256 * 1024;
    h2.connection_window_size = 64 << 20;
    h2.max_header_list_size =
        static_cast<uint32_t>(c.http2_max_header_list_size);
    proxy::SessionContext* ctxp = &rt->ctx_;
    rt->h2_upstream_ = std::make_unique<upstream::H2Upstream>(
        rt->pool_.get(), h2, [ctxp](upstream::Connection* conn) {
          if (ctxp->register_upstream) ctxp->register_upstream(conn);
        });
    ctx.h2_upstream = rt->h2_upstream_.get();
  }
  // Validated by config::Parse: these lists and names parse.
  ctx.forwarding.forwarded_allow =
      IpNetworks::Parse(c.forwarded_allow_ips).value_or(IpNetworks());
  ctx.forwarding.header_map =
      proxy::ParseHeaderMap(c.header_map).value_or(proxy::HeaderMap::kDrop);
  rt->proxy_protocol_ = c.proxy_protocol;
  rt->proxy_allow_ =
      IpNetworks::Parse(c.proxy_allow_ips).value_or(IpNetworks());
  ctx.server_draining = &rt->scoreboard_->settings().draining;
  WorkerRuntime* self = rt.get();
  ctx.on_request_done = [self] { self->OnRequestDone(); };
  ctx.record_metrics = rt->args_.record_metrics;
  // The HTTP/2 sessions count straight into the slot (forkd_http2_*).
  if (ctx.record_metrics) {
    rt->http2_context_.counters = &rt->slot_->counters.http2;
  }

  scoreboard::Slot& s = *rt->slot_;
  s.pid.store(getpid());
  s.generation.store(rt->args_.generation);
  s.threads.store(c.worker_class == config::WorkerClass::kAsync ? 1
                                                                : c.threads);
  s.connection_cap.store(c.worker_connections);
  s.state.store(static_cast<uint32_t>(scoreboard::WorkerState::kBooting));
  // The master publishes its first settings once it has spawned the whole
  // initial pool: waiting for them means the port answers only when every
  // worker exists. Workers started later find them published. The master's
  // boot timeout bounds the wait; an orphan gives up.
  pid_t master = getppid();
  while (rt->scoreboard_->settings().generation.load(
             std::memory_order_acquire) == 0) {
    if (getppid() != master) {
      return absl::FailedPreconditionError("the master exited during boot");
    }
    usleep(1000);
  }
  rt->settings_seen_ = rt->scoreboard_->settings().generation.load();
  s.settings_generation_seen.store(rt->settings_seen_);
  rt->Heartbeat();
  return rt;
}

void WorkerRuntime::MarkReady() {
  slot_->state.store(static_cast<uint32_t>(scoreboard::WorkerState::kReady));
  Heartbeat();
}

void WorkerRuntime::Heartbeat() {
  slot_->heartbeat_ms.store(scoreboard::MonotonicMs(),
                            std::memory_order_relaxed);
}

void WorkerRuntime::HandleSignals() {
  signalfd_siginfo info;
  while (read(signal_fd_, &info, sizeof(info)) == sizeof(info)) {
    switch (info.ssi_signo) {
      case SIGTERM:
        BeginStop(scoreboard::ExitReason::kStopped);
        break;
      case SIGQUIT:
      case SIGINT:
        slot_->exit_reason.store(
            static_cast<uint32_t>(scoreboard::ExitReason::kStopped));
        slot_->state.store(
            static_cast<uint32_t>(scoreboard::WorkerState::kExiting));
        _exit(0);
      case SIGUSR1:
        log::Reopen();
        if (access_log_) access_log_->Reopen();
        break;
      case SIGURG:
        break;  // the master published settings: the wake-up is the point
      default:
        break;  // HUP, TTIN... are for the master
    }
  }
}

void WorkerRuntime::BeginStop(scoreboard::ExitReason reason) {
  uint32_t none = 0;
  exit_reason_.compare_exchange_strong(none, static_cast<uint32_t>(reason));
  if (stopping_.exchange(true)) return;
  slot_->state.store(static_cast<uint32_t>(scoreboard::WorkerState::kDraining));
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
}

bool WorkerRuntime::SettingsChanged() {
  uint64_t g = scoreboard_->settings().generation.load();
  if (g == settings_seen_) return false;
  settings_seen_ = g;
  slot_->settings_generation_seen.store(g);
  return true;
}

void WorkerRuntime::OnRequestDone() {
  uint64_t done = requests_done_.fetch_add(1, std::memory_order_relaxed) + 1;
  if (max_requests_ > 0 && done == max_requests_) {
    LOG_INFO("Autorestarting worker after current request (%u requests)", done);
    BeginStop(scoreboard::ExitReason::kMaxRequests);
  }
}

void WorkerRuntime::Exit() {
  slot_->exit_reason.store(exit_reason_.load());
  slot_->state.store(static_cast<uint32_t>(scoreboard::WorkerState::kExiting));
  // Threads may still sit in their waits; _exit skips static destructors
  // that could race with them.
  _exit(0);
}

int WorkerRuntime::Accept(int listen_fd, std::string* peer) {
  sockaddr_storage ss;
  socklen_t len = sizeof(ss);
  int fd = accept4(listen_fd, reinterpret_cast<sockaddr*>(&ss), &len,
                   SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) {
    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
        errno == ENOMEM) {
      LOG_WARNING("accept: %s", std::strerror(errno));
    }
    return -1;
  }
  if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  *peer = PeerAddress(ss);
  if (ctx_.record_metrics) {
    slot_->counters.connections_accepted.fetch_add(1,
                                                   std::memory_order_relaxed);
  }
  return fd;
}

std::unique_ptr<proxy::ProxySession> WorkerRuntime::NewSession(
    int fd, std::string peer) {
  int64_t now = scoreboard::MonotonicMs();
  scoreboard::Counters* counters =
      ctx_.record_metrics ? &slot_->counters : nullptr;
  if (proxy_protocol_) {
    if (!proxy_allow_.Contains(peer)) {
      // Before any byte: a header from it would not be believed, and
      // without one the connection cannot be served.
      proxy::ReportProxyProtocolReject(
          counters, scoreboard::ProxyProtocolReject::kUntrustedPeer, peer,
          "--proxy-protocol is on");
      close(fd);
      return nullptr;
    }
    proxy::ProxyProtocolTransport::Next next =
        [this, counters](int sock, const std::string& client)
        -> std::unique_ptr<transport::ClientTransport> {
      if (!tls_) return std::make_unique<transport::SocketTransport>(sock);
      return tls_->NewTransport(sock, client, counters);
    };
    auto transport = std::make_unique<proxy::ProxyProtocolTransport>(
        fd, peer, tls_ ? "https" : "http", std::move(next), counters, now,
        proxy::ProxyHeaderTimeoutMs(ctx_.client_header_timeout_ms));
    return std::make_unique<proxy::ProxySession>(&ctx_, std::move(transport),
                                                 std::move(peer), now);
  }
  if (!tls_) {
    return std::make_unique<proxy::ProxySession>(&ctx_, fd, std::move(peer),
                                                 now);
  }
  auto transport = tls_->NewTransport(fd, peer, counters);
  if (!transport) return nullptr;
  return std::make_unique<proxy::ProxySession>(&ctx_, std::move(transport),
                                               std::move(peer), now);
}

std::string WorkerRuntime::PeerAddress(const sockaddr_storage& ss) {
  char text[INET6_ADDRSTRLEN] = {0};
  if (ss.ss_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&ss)->sin_addr,
              text, sizeof(text));
  } else if (ss.ss_family == AF_INET6) {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&ss)->sin6_addr,
              text, sizeof(text));
  } else {
    return "";
  }
  return text;
}

}  // namespace forkd::worker
