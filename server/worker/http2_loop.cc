#include "server/worker/http2_loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "server/common/log.h"
#include "server/proxy/admission.h"
#include "server/proxy/http2_connection.h"
#include "server/scoreboard/scoreboard.h"

namespace forkd::worker {
namespace {

// epoll data: a connection (an aligned pointer, low bit 0), an app socket
// (pointer | 1), or the wake eventfd.
constexpr uint64_t kUpstreamBit = 1;
constexpr uint64_t kWake = 2;
// Idle connections on a graceful stop, and a sync connection that said
// GOAWAY, stay open this long for the client's last frames.
constexpr int64_t kLingerMs = 1000;
// sync: how long a connection must have had no stream open before GOAWAY.
// A client that keeps N streams going (h2load -m N) sends the next one as
// an answer arrives; under CPU pressure that can lag the answer, and a
// GOAWAY in that gap fails the requests it had yet to send.
constexpr int64_t kSyncIdleGraceMs = 250;

}  // namespace

struct Http2Loop::Conn {
  std::unique_ptr<proxy::Http2Connection> h2;
  int64_t started_ms = 0;
  bool was_active = false;         // a stream was open once
  int64_t idle_since_ms = 0;       // sync: no stream open since (0: one is)
  uint64_t requests_at_start = 0;  // requests_done_ when it started
  int64_t goaway_ms = 0;           // sync: when the loop asked for GOAWAY
};

Http2Loop::Http2Loop(WorkerRuntime* rt, proxy::Admission* admission, bool sync)
    : rt_(rt), admission_(admission), sync_(sync) {
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (epoll_.fd() < 0 || wake_fd_ < 0) {
    LOG_ERROR("HTTP/2 loop: epoll/eventfd: %s", std::strerror(errno));
    abort();  // cannot happen after start-up short of fd exhaustion
  }
  epoll_.Add(wake_fd_, EPOLLIN, kWake);

  const config::Config& c = rt->config();
  // The worker's pool belongs to the request threads' poll(); the loop's
  // app sockets stay in its epoll while idle, so it keeps its own.
  auto address = upstream::Address::Parse(c.upstream);  // parsed at start
  pool_ = std::make_unique<upstream::Pool>(*address, c.upstream_keepalive);
  pool_->SetDiscard([this](std::unique_ptr<upstream::Connection> conn) {
    discarded_.push_back(std::move(conn));
  });
  ctx_ = *rt->session_context();
  ctx_.pool = pool_.get();
  ctx_.admission = admission_;
  ctx_.in_flight_cap = nullptr;  // over the cap a stream waits in line
  if (sync_) ctx_.stopping = &goaway_;
  // Counts the streams answered here too: a stream that opened and ended
  // within one round never shows as an active connection to Sweep.
  ctx_.on_request_done = [this, done = ctx_.on_request_done] {
    ++requests_done_;
    if (done) done();
  };
  ctx_.register_upstream = [this](upstream::Connection* conn) {
    conn->registered = true;
    epoll_.Add(conn->fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
               reinterpret_cast<uint64_t>(conn) | kUpstreamBit);
  };
  ctx_.after_batch = [this](proxy::ClientConnection* conn) {
    after_batch_.push_back(conn);
  };
  // sync runs the loop on this (the main) thread: slots handed to its
  // streams are announced on the loop's eventfd.
  if (sync_) proxy::Admission::SetThreadWakeFd(wake_fd_);
}

Http2Loop::~Http2Loop() { close(wake_fd_); }

void Http2Loop::Adopt(proxy::ProxySession* h1) {
  proxy::Http2Connection::Handoff p =
      proxy::Http2Connection::TakeFrom(h1);  // h1 is closed now
  open_.fetch_add(1);
  {
    std::lock_guard<std::mutex> lock(mu_);
    inbox_.push_back(std::move(p));
  }
  uint64_t one = 1;
  (void)!write(wake_fd_, &one, sizeof(one));
  if (own_thread_) std::call_once(thread_started_, [this] { StartThread(); });
}

void Http2Loop::StartThread() {
  std::thread([this] {
    proxy::Admission::SetThreadWakeFd(wake_fd_);
    while (true) RunOnce(100);
  }).detach();
}

void Http2Loop::StartPending() {
  std::vector<proxy::Http2Connection::Handoff> inbox;
  {
    std::lock_guard<std::mutex> lock(mu_);
    inbox.swap(inbox_);
  }
  for (proxy::Http2Connection::Handoff& p : inbox) {
    if (sync_ && conns_.empty() && !rt_->stopping()) goaway_.store(false);
    int fd = p.transport->fd();
    int64_t now = scoreboard::MonotonicMs();
    uint64_t requests_before = requests_done_;
    auto h2 = proxy::Http2Connection::Start(&ctx_, std::move(p), now);
    if (!h2.ok()) {  // logged
      open_.fetch_sub(1);
      closed_.fetch_add(1);
      continue;  // the transport closed with the failed connection
    }
    auto conn = std::make_unique<Conn>();
    conn->started_ms = now;
    conn->requests_at_start = requests_before;
    proxy::ClientConnection* key = h2->get();
    conn->h2 = std::move(*h2);
    if (fd >= 0 && key->phase() != proxy::ClientConnection::Phase::kClosed) {
      epoll_.Add(fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
                 reinterpret_cast<uint64_t>(key));
    }
    conns_.emplace(key, std::move(conn));
    touched_.push_back(key);
  }
}

void Http2Loop::OnEvent(uint64_t data, uint32_t events) {
  if (data == kWake) {
    uint64_t n;
    (void)!read(wake_fd_, &n, sizeof(n));
    StartPending();
    // Streams handed a slot of the admission line go on now.
    for (proxy::ProxySession* s : admission_->Granted(wake_fd_)) s->Drive();
    return;
  }
  if (data & kUpstreamBit) {
    auto* conn = reinterpret_cast<upstream::Connection*>(data & ~kUpstreamBit);
    if (conn->owner != nullptr) {
      static_cast<proxy::ProxySession*>(conn->owner)->OnUpstreamEvents(events);
    } else {
      pool_->OnIdleEvent(conn, events);  // idle in the pool
    }
    return;
  }
  auto* c = reinterpret_cast<proxy::ClientConnection*>(data);
  if (!conns_.contains(c)) return;
  c->OnClientEvents(events);
  touched_.push_back(c);
}

void Http2Loop::Sweep(int64_t now_ms) {
  if (rt_->stopping() && stop_seen_ms_ == 0) stop_seen_ms_ = now_ms;
  bool stop_accepting = !rt_->accepting() && !told_stop_accepting_;
  told_stop_accepting_ = !rt_->accepting();
  bool linger_over = stop_seen_ms_ != 0 && now_ms >= stop_seen_ms_ + kLingerMs;
  if (sync_ && rt_->stopping()) goaway_.store(true);
  for (auto& [c, conn] : conns_) {
    using Phase = proxy::ClientConnection::Phase;
    if (c->phase() == Phase::kClosed) continue;
    if (stop_accepting) {
      c->OnStopAccepting();
      touched_.push_back(c);
    }
    if (sync_) {
      // Gunicorn's sync worker serves one request per connection. The
      // HTTP/2 analogue: the streams the client opens are served one at a
      // time until none has been open for kSyncIdleGraceMs (or none came
      // within --timeout), then GOAWAY and the worker moves on. Saying GOAWAY
      // earlier, after the first answer, fails real clients: h2load fails every
      // stream it has not sent yet, python-h2 refuses the DATA that follows a
      // GOAWAY.
      if (c->phase() == Phase::kActive ||
          requests_done_ != conn->requests_at_start) {
        conn->was_active = true;
      }
      if (c->phase() != Phase::kIdle) {
        conn->idle_since_ms = 0;
      } else if (conn->idle_since_ms == 0) {
        conn->idle_since_ms = now_ms;
      }
      bool served = conn->was_active && conn->idle_since_ms != 0 &&
                    now_ms >= conn->idle_since_ms + kSyncIdleGraceMs;
      bool unused = !conn->was_active &&
                    now_ms >= conn->started_ms + ctx_.client_timeout_ms;
      if (conn->goaway_ms == 0 && (served || unused || goaway_.load())) {
        conn->goaway_ms = now_ms;
        goaway_.store(true);
        c->OnStopAccepting();
        touched_.push_back(c);
      } else if (conn->goaway_ms != 0 && c->phase() == Phase::kIdle &&
                 now_ms >= conn->goaway_ms + kLingerMs) {
        c->Abort();  // the client did not answer the GOAWAY's PING
        touched_.push_back(c);
      }
    }
    if (c->phase() != Phase::kClosed && now_ms >= c->deadline_ms()) {
      c->OnTimeout(now_ms);
      touched_.push_back(c);
    } else if (linger_over && c->phase() == Phase::kIdle) {
      c->Abort();
      touched_.push_back(c);
    }
  }
}

void Http2Loop::FreeClosed() {
  for (proxy::ClientConnection* c : touched_) {
    auto it = conns_.find(c);
    if (it != conns_.end() &&
        c->phase() == proxy::ClientConnection::Phase::kClosed) {
      conns_.erase(it);  // closing the socket took it out of the epoll
      open_.fetch_sub(1);
      closed_.fetch_add(1);
    }
  }
  touched_.clear();
  discarded_.clear();
}

void Http2Loop::RunOnce(int timeout_ms) {
  epoll_event events[128];
  int n = epoll_wait(epoll_.fd(), events, 128, timeout_ms);
  for (int i = 0; i < n; ++i) OnEvent(events[i].data.u64, events[i].events);
  // Timers every tick; sync every round (its one connection's GOAWAY once
  // idle should not wait for a tick).
  int64_t now = scoreboard::MonotonicMs();
  if (sync_ || n == 0 || now - last_sweep_ms_ >= 100) {
    last_sweep_ms_ = now;
    Sweep(now);
  }
  // Connections are freed only below, so every one queued is alive.
  for (size_t i = 0; i < after_batch_.size(); ++i) {
    after_batch_[i]->OnBatchEnd();
    touched_.push_back(after_batch_[i]);
  }
  after_batch_.clear();
  FreeClosed();
}

}  // namespace forkd::worker
