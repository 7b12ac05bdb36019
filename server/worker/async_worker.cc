// The async class: one non-blocking epoll loop per worker serving up to
// 2 x --worker-connections connections, with up to --worker-connections
// requests in flight at the app; past that a request gets 503.
//
// Client and app sockets are edge-triggered and registered once; a pooled
// app connection stays registered while idle so the loop sees the app
// close it. Objects closed during an event batch are freed after the batch,
// since a later event of the same batch may still name them.
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "server/common/log.h"
#include "server/common/loop_clock.h"
#include "server/proxy/app_queue.h"
#include "server/proxy/http2_connection.h"
#include "server/proxy/proxy_session.h"
#include "server/scoreboard/scoreboard.h"
#include "server/worker/worker_epoll.h"
#include "server/worker/worker_runtime.h"

namespace forkd::worker {
namespace {

constexpr uint64_t kTagClient = 0;    // a proxy::ClientConnection*, low bit 0
constexpr uint64_t kTagUpstream = 1;  // pointer | 1
constexpr int kTickMs = 100;
constexpr int kAcceptBatch = 64;  // per wake-up, for fairness between workers
constexpr int64_t kStopLingerMs = 1000;  // idle keep-alive conns on stop

class AsyncWorker {
 public:
  explicit AsyncWorker(WorkerRuntime* rt) : rt_(rt), epoll_(rt->listen_fds()) {}
  [[noreturn]] void Run();

 private:
  // Accepts up to kAcceptBatch connections, or with `final_sweep` every
  // connection queued in the backlog regardless of the caps.
  void AcceptSome(int listen_fd, bool final_sweep = false);
  void OnEvent(const epoll_event& ev);
  void Sweep(int64_t now_ms);
  // App mode: lets the requests at the front of the app queue try for an
  // app process, until one finds none free.
  void WakeAppWaiters(proxy::AppQueue* queue);
  // Replaces an HTTP/1 connection that opened with the HTTP/2 preface by
  // an Http2Connection on the same socket.
  void MaybeSwitchToHttp2(proxy::ClientConnection* c);
  void ApplySettings();
  uint64_t MaxConnections() const { return 2ull * cap_.load(); }

  WorkerRuntime* rt_;
  WorkerEpoll epoll_;
  bool swept_backlog_ = false;
  int64_t stop_seen_ms_ = 0;          // when Sweep first saw the stop
  bool told_stop_accepting_ = false;  // connections heard OnStopAccepting
  std::atomic<uint32_t> cap_{0};
  absl::flat_hash_set<proxy::ClientConnection*> sessions_;
  std::vector<proxy::ClientConnection*> touched_;
  std::vector<proxy::ClientConnection*> after_batch_;  // OnBatchEnd() due
  std::vector<std::unique_ptr<upstream::Connection>> discarded_;
};

void AsyncWorker::ApplySettings() {
  uint32_t cap = rt_->WorkerConnections();
  cap_.store(cap);
  rt_->slot().connection_cap.store(cap);
}

void AsyncWorker::AcceptSome(int listen_fd, bool final_sweep) {
  for (int i = 0; final_sweep || i < kAcceptBatch; ++i) {
    if (!final_sweep &&
        (sessions_.size() >= MaxConnections() || !rt_->accepting())) {
      epoll_.SetListening(false);  // the rest wait in the listen backlog
      return;
    }
    std::string peer;
    int fd = rt_->Accept(listen_fd, &peer);
    if (fd < 0) return;
    proxy::ProxySession* s = rt_->NewSession(fd, std::move(peer)).release();
    if (s == nullptr) continue;
    proxy::ClientConnection* c = s;  // the epoll data holds the base
    sessions_.insert(c);
    epoll_.Add(fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
               reinterpret_cast<uint64_t>(c) | kTagClient);
    s->Drive();
    touched_.push_back(s);
    MaybeSwitchToHttp2(s);
  }
}

void AsyncWorker::OnEvent(const epoll_event& ev) {
  uint64_t data = ev.data.u64;
  if (data == kTagSignal) {
    rt_->HandleSignals();
    return;
  }
  if (data == kTagWake) {
    uint64_t n;
    (void)!read(rt_->wake_fd(), &n, sizeof(n));
    return;
  }
  if ((data & 0xff) == kTagListen) {
    AcceptSome(rt_->listen_fds()[data >> 8]);
    return;
  }
  if ((data & 1) == kTagUpstream) {
    auto* conn = reinterpret_cast<upstream::Connection*>(data & ~1ull);
    if (conn->owner != nullptr && conn->multiplexed) {
      // An HTTP/2 connection to the app (--upstream-protocol h2c): client
      // connections it writes to flush through after_batch.
      conn->owner->OnUpstreamEvents(ev.events);
    } else if (conn->owner != nullptr) {
      // A ProxySession: an HTTP/1 connection or an HTTP/2 stream's.
      auto* s = static_cast<proxy::ProxySession*>(conn->owner);
      s->OnUpstreamEvents(ev.events);
      touched_.push_back(s);
    } else {
      if (rt_->app_pools() != nullptr) {  // idle in the pool
        rt_->app_pools()->OnIdleEvent(conn, ev.events);
      } else {
        rt_->pool().OnIdleEvent(conn, ev.events);
      }
    }
    return;
  }
  auto* s = reinterpret_cast<proxy::ClientConnection*>(data);
  s->OnClientEvents(ev.events);
  touched_.push_back(s);
  MaybeSwitchToHttp2(s);
}

void AsyncWorker::MaybeSwitchToHttp2(proxy::ClientConnection* c) {
  if (!c->wants_http2()) return;
  // h1 is closed once the handoff is taken.
  auto handoff =
      proxy::Http2Connection::TakeFrom(static_cast<proxy::ProxySession*>(c));
  int fd = handoff.transport->fd();
  auto h2 = proxy::Http2Connection::Start(
      rt_->session_context(), std::move(handoff), loop_clock::NowMs());
  if (!h2.ok()) return;  // logged; the transport closed with it
  proxy::ClientConnection* next = h2->release();
  sessions_.insert(next);
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
  ev.data.u64 = reinterpret_cast<uint64_t>(next) | kTagClient;
  if (fd >= 0) epoll_ctl(epoll_.fd(), EPOLL_CTL_MOD, fd, &ev);
  touched_.push_back(next);
}

void AsyncWorker::Sweep(int64_t now_ms) {
  // On a graceful stop an idle keep-alive connection stays open for
  // kStopLingerMs (or until its keep-alive timeout): a request arriving on
  // it is served with "Connection: close"; closing it at once would race
  // with a request the client is already sending.
  if (rt_->stopping() && stop_seen_ms_ == 0) stop_seen_ms_ = now_ms;
  // Once per stop or drain (again after a Resume and a new drain).
  bool stop_accepting = !rt_->accepting() && !told_stop_accepting_;
  told_stop_accepting_ = !rt_->accepting();
  bool linger_over =
      stop_seen_ms_ != 0 && now_ms >= stop_seen_ms_ + kStopLingerMs;
  for (auto* s : sessions_) {
    if (stop_accepting &&
        s->phase() != proxy::ClientConnection::Phase::kClosed) {
      s->OnStopAccepting();
      touched_.push_back(s);
    }
    if (s->phase() != proxy::ClientConnection::Phase::kClosed &&
        now_ms >= s->deadline_ms()) {
      s->OnTimeout(now_ms);
      touched_.push_back(s);
    } else if (linger_over &&
               s->phase() == proxy::ClientConnection::Phase::kIdle) {
      s->Abort();
      touched_.push_back(s);
    }
  }
}

void AsyncWorker::WakeAppWaiters(proxy::AppQueue* queue) {
  // Bounded: each pass either reserves for the head (which leaves the line)
  // or stops; a waiter is a ProxySession (its `this` is its id).
  for (size_t i = 0, n = queue->size(); i < n; ++i) {
    const void* head = queue->Head();
    if (head == nullptr) return;
    auto* s = static_cast<proxy::ProxySession*>(const_cast<void*>(head));
    s->RetryAppQueue();
    touched_.push_back(s);
    if (queue->Head() == head) return;  // nothing free yet
  }
}

void AsyncWorker::Run() {
  ApplySettings();
  rt_->session_context()->in_flight_cap = &cap_;
  rt_->session_context()->register_upstream = [this](upstream::Connection* c) {
    c->registered = true;
    epoll_.Add(c->fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
               reinterpret_cast<uint64_t>(c) | kTagUpstream);
  };
  rt_->session_context()->after_batch = [this](proxy::ClientConnection* c) {
    after_batch_.push_back(c);
  };
  rt_->pool().SetDiscard([this](std::unique_ptr<upstream::Connection> c) {
    discarded_.push_back(std::move(c));
  });
  if (rt_->app_pools() != nullptr) {
    rt_->app_pools()->SetDiscard(
        [this](std::unique_ptr<upstream::Connection> c) {
          discarded_.push_back(std::move(c));
        });
  }
  epoll_.Add(rt_->signal_fd(), EPOLLIN, kTagSignal);
  epoll_.Add(rt_->wake_fd(), EPOLLIN, kTagWake);
  epoll_.SetListening(true);
  rt_->MarkReady();

  std::vector<epoll_event> events(256);
  int64_t last_tick = 0;
  while (true) {
    proxy::AppQueue* app_queue = rt_->session_context()->app_queue;
    // While requests wait for an app process, wake often enough to see
    // capacity another proxy worker frees (it cannot wake this loop).
    int wait_ms = app_queue != nullptr && app_queue->size() > 0
                      ? static_cast<int>(proxy::AppQueue::kRecheckMs)
                      : kTickMs;
    int n = epoll_wait(epoll_.fd(), events.data(),
                       static_cast<int>(events.size()), wait_ms);
    loop_clock::Refresh();  // one clock read for the whole batch
    for (int i = 0; i < n; ++i) OnEvent(events[i]);
    // A response read in this batch freed its app process: the line moves
    // now, not at the next sweep.
    if (app_queue != nullptr) WakeAppWaiters(app_queue);

    int64_t now = loop_clock::NowMs();
    // Every round, not only on the tick: the master's SIGURG after it
    // publishes new settings wakes this loop to apply them at once.
    if (rt_->SettingsChanged()) ApplySettings();
    if (now - last_tick >= kTickMs || n == 0) {
      last_tick = now;
      rt_->Heartbeat();
      Sweep(now);
      // App mode: close idle connections of app processes that left the
      // rotation (retiring, replaced).
      if (rt_->app_pools() != nullptr) rt_->app_pools()->Sweep();
    }
    // Connections are freed only below, so every one queued is alive.
    // With an h2c app, client and app connections feed each other (window
    // updates, queued frames): a few rounds until both are written.
    // after_batch_ is empty after the loop: what the last round leaves
    // queued at the app side is written in the next batch.
    for (int round = 0;; ++round) {
      for (size_t i = 0; i < after_batch_.size(); ++i) {
        after_batch_[i]->OnBatchEnd();
        touched_.push_back(after_batch_[i]);
      }
      after_batch_.clear();
      if (rt_->h2_upstream() == nullptr || round == 3) break;
      rt_->h2_upstream()->FlushPending();
      if (after_batch_.empty()) break;
    }
    // Free what closed in this batch (deduplicated through sessions_).
    for (auto* s : touched_) {
      // Membership first: a touched HTTP/2 stream's session may already be
      // freed by its connection; connections themselves die only here.
      auto it = sessions_.find(s);
      if (it != sessions_.end() &&
          s->phase() == proxy::ClientConnection::Phase::kClosed) {
        sessions_.erase(it);
        delete s;
      }
    }
    touched_.clear();
    discarded_.clear();

    if (rt_->stopping() && !swept_backlog_) {
      // Connections the kernel already queued for us were promised service:
      // take them all before we stop listening (Gunicorn drops them,
      // gunicorn#3397).
      swept_backlog_ = true;
      for (int fd : rt_->listen_fds()) AcceptSome(fd, /*final_sweep=*/true);
      continue;
    }
    if (rt_->stopping() && sessions_.empty()) break;
    if (!rt_->accepting()) {
      epoll_.SetListening(false);
    } else if (!epoll_.listening() && sessions_.size() < MaxConnections()) {
      epoll_.SetListening(true);
    }
  }
  rt_->Exit();
}

}  // namespace

void RunAsyncWorker(WorkerRuntime* rt) {
  static AsyncWorker* worker = new AsyncWorker(rt);  // lives until _exit
  worker->Run();
}

}  // namespace forkd::worker
