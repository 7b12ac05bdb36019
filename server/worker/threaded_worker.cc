// The gthread and sync classes.
//
// gthread: the main thread accepts and keeps idle keep-alive connections in
// an epoll poller (at most --worker-connections); a connection with bytes to
// read goes to a FIFO queue served by --threads request threads, each
// driving one connection at a time with poll(), so requests in flight never
// exceed the threads. As in Gunicorn's gthread, a worker accepts while it
// holds fewer than --worker-connections connections; past the thread count
// they wait in that FIFO queue. (Holding them in the listen backlog instead,
// by accepting only while the queue is short, starved new connections:
// under load, ready keep-alive connections kept the queue full and clients
// of the backlog timed out.) The pool grows and shrinks in place when the
// master publishes a new thread count.
//
// sync: the main thread itself serves one connection at a time, one request
// per connection ("Connection: close"), as Gunicorn's sync worker does.
//
// HTTP/2 (prior knowledge, Upgrade: h2c, TLS ALPN h2): a thread (or the
// sync main thread) that finds a connection speaking HTTP/2 hands it to
// the worker's Http2Loop (http2_loop.h). Every request, HTTP/1.1 or an
// HTTP/2 stream, joins one FIFO Admission line before it talks to the app:
// at most --threads at once (1 for sync), the rest wait in order.
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "server/common/log.h"
#include "server/proxy/admission.h"
#include "server/scoreboard/scoreboard.h"
#include "server/worker/http2_loop.h"
#include "server/worker/worker_epoll.h"
#include "server/worker/worker_runtime.h"

namespace forkd::worker {
namespace {

using proxy::ProxySession;

constexpr int kTickMs = 100;
// On a graceful stop, idle keep-alive connections stay open this long (or
// until their keep-alive timeout): a request that arrives on one is served
// with "Connection: close". Closing them at once races with a request the
// client is already sending, which it then sees fail (RemoteDisconnected).
constexpr int64_t kStopLingerMs = 1000;

// Drives `s` with poll() until it is idle (keep-alive, nothing buffered) or,
// with `until_closed`, until it is closed (the sync class also waits for the
// first request of a new connection), or until it turns out to speak
// HTTP/2, or until it waits for nothing but a slow client's bytes
// (ParkedOnClient: a trickled head or body, a lingering close), which the
// main thread's poller watches instead: a slow client holds a connection
// slot, never a thread. `tick` runs at least every kTickMs (the sync class
// heartbeats and reads signals there). `wake_fd` (-1: none) is the thread's
// eventfd the admission line writes when it hands the request a slot.
template <typename Tick>
void RunSession(ProxySession* s, bool until_closed, int wake_fd, Tick&& tick) {
  s->Drive();
  while ((s->phase() == ProxySession::Phase::kActive ||
          (until_closed && s->phase() == ProxySession::Phase::kIdle)) &&
         !s->wants_http2() && !s->ParkedOnClient()) {
    ProxySession::Wait w = s->wait();
    pollfd fds[3];
    nfds_t n = 0;
    short client_events =
        (w.client_read ? POLLIN : 0) | (w.client_write ? POLLOUT : 0);
    fds[n++] = {s->client_fd(), client_events, 0};
    if (w.upstream_fd >= 0 && (w.upstream_read || w.upstream_write)) {
      fds[n++] = {w.upstream_fd,
                  static_cast<short>((w.upstream_read ? POLLIN : 0) |
                                     (w.upstream_write ? POLLOUT : 0)),
                  0};
    }
    nfds_t wake_index = n;
    if (wake_fd >= 0) fds[n++] = {wake_fd, POLLIN, 0};
    int64_t now = scoreboard::MonotonicMs();
    int timeout = static_cast<int>(
        std::clamp<int64_t>(s->deadline_ms() - now, 0, kTickMs));
    int r = poll(fds, n, timeout);
    tick();
    if (r > 0 && wake_fd >= 0 && (fds[wake_index].revents & POLLIN)) {
      uint64_t v;
      (void)!read(wake_fd, &v, sizeof(v));
      s->Drive();  // a slot was handed to it
      if (s->phase() == ProxySession::Phase::kClosed) break;
    }
    if (r > 0) {
      bool cr = fds[0].revents & (POLLIN | POLLHUP | POLLERR);
      bool cw = fds[0].revents & (POLLOUT | POLLHUP | POLLERR);
      bool up = wake_index > 1;
      bool ur = up && (fds[1].revents & (POLLIN | POLLHUP | POLLERR));
      bool uw = up && (fds[1].revents & (POLLOUT | POLLHUP | POLLERR));
      s->SetReadiness(cr, cw, ur, uw);
      s->Drive();
    }
    now = scoreboard::MonotonicMs();
    if (now >= s->deadline_ms()) s->OnTimeout(now);
  }
}

class ThreadedWorker {
 public:
  ThreadedWorker(WorkerRuntime* rt, bool sync)
      : rt_(rt), sync_(sync), epoll_(rt->listen_fds()), admission_(1) {}
  [[noreturn]] void Run();

 private:
  void Accept(int listen_fd);
  void Dispatch(ProxySession* s);
  // sync: serves the HTTP/2 connection `s` turned out to be, inline.
  void ServeHttp2Sync(ProxySession* s);
  void ThreadMain();
  void TakeBackReturned();
  // Holds `s` in the poller until its client sends more (or its deadline).
  void Park(ProxySession* s);
  void Sweep(int64_t now_ms);
  void ApplySettings();
  // Room for one more connection: fewer than --worker-connections held.
  bool HasRoom() const;

  WorkerRuntime* rt_;
  bool sync_;
  WorkerEpoll epoll_;
  proxy::Admission admission_;
  std::unique_ptr<Http2Loop> http2_;  // nullptr: HTTP/2 is off
  bool swept_backlog_ = false;
  int64_t stop_seen_ms_ = 0;  // when Sweep first saw the stop

  // Connections the main thread holds (idle keep-alive, in the poller).
  absl::flat_hash_set<ProxySession*> idle_;
  size_t connections_ = 0;  // idle + queued + with a thread

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<ProxySession*> queue_;      // ready for a thread
  std::vector<ProxySession*> returned_;  // back from threads, idle
  uint32_t target_threads_ = 1;
  uint32_t running_threads_ = 0;
  uint32_t busy_threads_ = 0;
  size_t closed_by_threads_ = 0;
  // The main thread was woken for hand-backs it has not taken yet.
  bool main_wake_pending_ = false;
};

void ThreadedWorker::ApplySettings() {
  uint32_t want = rt_->settings().threads.load();
  if (want == 0) want = static_cast<uint32_t>(rt_->config().threads);
  if (sync_) want = 1;
  uint32_t to_start = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    target_threads_ = want;
    if (!sync_ && running_threads_ < want) {
      to_start = want - running_threads_;
      running_threads_ = want;
    }
  }
  admission_.SetCapacity(want);
  cv_.notify_all();  // surplus threads exit once idle
  for (uint32_t i = 0; i < to_start; ++i) {
    std::thread([this] { ThreadMain(); }).detach();
  }
  // Report the threads that run, not the target: while a pool shrinks, the
  // surplus threads leave one by one as they become idle (ThreadMain).
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (sync_) running_threads_ = 1;
    rt_->slot().threads.store(running_threads_);
  }
  uint32_t cap = rt_->WorkerConnections();
  rt_->slot().connection_cap.store(cap);
}

void ThreadedWorker::ThreadMain() {
  // Threads come and go with live resizes: the eventfd goes with its thread.
  int wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  proxy::Admission::SetThreadWakeFd(wake_fd);
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    cv_.wait(lock, [this] {
      return !queue_.empty() || running_threads_ > target_threads_;
    });
    // Shrinking: a surplus thread leaves as soon as it is between two
    // sessions, even when connections wait in the queue (the threads that
    // stay serve them); waiting for an empty queue would never shrink a
    // pool under steady load.
    if (running_threads_ > target_threads_) {
      --running_threads_;
      rt_->slot().threads.store(running_threads_);
      if (wake_fd >= 0) close(wake_fd);
      return;
    }
    ProxySession* s = queue_.front();
    queue_.pop_front();
    ++busy_threads_;
    rt_->slot().busy_threads.store(busy_threads_);
    lock.unlock();
    RunSession(s, /*until_closed=*/false, wake_fd, [] {});
    bool to_http2 = s->wants_http2() && http2_ != nullptr;
    if (to_http2) http2_->Adopt(s);  // counted open there from now on
    bool closed = to_http2 || s->phase() == ProxySession::Phase::kClosed;
    if (closed) delete s;
    lock.lock();
    --busy_threads_;
    rt_->slot().busy_threads.store(busy_threads_);
    // One wake-up of the main thread per batch of hand-backs, not one per
    // request: until it takes them (TakeBackReturned), later ones only add
    // to the batch.
    bool wake = !main_wake_pending_;
    main_wake_pending_ = true;
    if (to_http2) {
      // No longer this loop's: Http2Loop::TakeClosed() reports its end.
    } else if (closed) {
      ++closed_by_threads_;
    } else {
      returned_.push_back(s);
    }
    if (wake) {
      uint64_t one = 1;
      (void)!write(rt_->wake_fd(), &one, sizeof(one));
    }
  }
}

void ThreadedWorker::Dispatch(ProxySession* s) {
  if (sync_) {
    rt_->slot().busy_threads.store(1);
    RunSession(s, /*until_closed=*/true, -1, [this] {
      rt_->Heartbeat();
      rt_->HandleSignals();
    });
    if (s->wants_http2() && http2_ != nullptr) {
      ServeHttp2Sync(s);
      rt_->slot().busy_threads.store(0);
      return;
    }
    rt_->slot().busy_threads.store(0);
    // One request per connection: the session closes itself after it, or
    // waits in the poller for a slow client, not holding the one thread.
    if (s->phase() != ProxySession::Phase::kClosed && s->ParkedOnClient()) {
      Park(s);
      return;
    }
    if (s->phase() != ProxySession::Phase::kClosed) s->Abort();
    delete s;
    --connections_;
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(s);
  }
  cv_.notify_one();
}

void ThreadedWorker::ServeHttp2Sync(ProxySession* s) {
  http2_->Adopt(s);
  delete s;
  // One connection at a time, like HTTP/1.1: its streams go to the app one
  // by one (admission capacity 1) until it is idle, then GOAWAY.
  while (http2_->open() > 0) {
    http2_->RunOnce(kTickMs);
    rt_->Heartbeat();
    rt_->HandleSignals();
  }
  connections_ -= http2_->TakeClosed();
}

bool ThreadedWorker::HasRoom() const {
  uint32_t cap = rt_->WorkerConnections();
  return connections_ < cap;
}

void ThreadedWorker::Accept(int listen_fd) {
  while (rt_->accepting() && HasRoom()) {
    std::string peer;
    int fd = rt_->Accept(listen_fd, &peer);
    if (fd < 0) return;
    ProxySession* s = rt_->NewSession(fd, std::move(peer)).release();
    if (s == nullptr) continue;
    ++connections_;
    Dispatch(s);
    if (sync_) return;  // back to the loop: heartbeat, signals
  }
  epoll_.SetListening(false);  // full: the backlog holds the rest
}

void ThreadedWorker::TakeBackReturned() {
  std::vector<ProxySession*> back;
  size_t closed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    back.swap(returned_);
    closed = closed_by_threads_;
    closed_by_threads_ = 0;
    main_wake_pending_ = false;
  }
  connections_ -= closed;
  if (http2_ != nullptr) connections_ -= http2_->TakeClosed();
  for (ProxySession* s : back) Park(s);
}

void ThreadedWorker::Park(ProxySession* s) {
  idle_.insert(s);  // on stop too: Sweep ends it after kStopLingerMs
  epoll_event ev{};
  ev.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT;
  ev.data.u64 = reinterpret_cast<uint64_t>(s);
  if (epoll_ctl(epoll_.fd(), EPOLL_CTL_MOD, s->client_fd(), &ev) != 0) {
    epoll_ctl(epoll_.fd(), EPOLL_CTL_ADD, s->client_fd(), &ev);
  }
}

void ThreadedWorker::Sweep(int64_t now_ms) {
  if (rt_->stopping() && stop_seen_ms_ == 0) stop_seen_ms_ = now_ms;
  bool linger_over =
      stop_seen_ms_ != 0 && now_ms >= stop_seen_ms_ + kStopLingerMs;
  std::vector<ProxySession*> answer;
  for (auto it = idle_.begin(); it != idle_.end();) {
    ProxySession* s = *it;
    if (linger_over) {
      idle_.erase(it++);
      delete s;  // closing the fd also leaves the epoll set
      --connections_;
    } else if (now_ms >= s->deadline_ms()) {
      idle_.erase(it++);
      // Idle keep-alive and lingering connections close here; a slow
      // client's request gets its 408 (logged and counted there).
      s->OnTimeout(now_ms);
      if (s->phase() == ProxySession::Phase::kClosed) {
        delete s;
        --connections_;
      } else {
        answer.push_back(s);
      }
    } else {
      ++it;
    }
  }
  for (ProxySession* s : answer) {
    // The 408 may not fit the socket at once: a thread (sync: this one)
    // writes it and lingers. Out of the poller first, so an event there
    // cannot hand the session to a second thread.
    epoll_ctl(epoll_.fd(), EPOLL_CTL_DEL, s->client_fd(), nullptr);
    Dispatch(s);
  }
}

void ThreadedWorker::Run() {
  epoll_.Add(rt_->signal_fd(), EPOLLIN, kTagSignal);
  epoll_.Add(rt_->wake_fd(), EPOLLIN, kTagWake);
  // Before any thread starts: every session reads the context.
  rt_->session_context()->admission = &admission_;
  if (rt_->session_context()->http2) {
    http2_ = std::make_unique<Http2Loop>(rt_, &admission_, sync_);
    if (!sync_) http2_->RunOnOwnThread();
  }
  ApplySettings();
  if (sync_) running_threads_ = 1;
  epoll_.SetListening(true);
  rt_->MarkReady();

  std::vector<epoll_event> events(128);
  while (true) {
    int n = epoll_wait(epoll_.fd(), events.data(),
                       static_cast<int>(events.size()), kTickMs);
    for (int i = 0; i < n; ++i) {
      uint64_t data = events[i].data.u64;
      if (data == kTagSignal) {
        rt_->HandleSignals();
      } else if (data == kTagWake) {
        uint64_t v;
        (void)!read(rt_->wake_fd(), &v, sizeof(v));
        TakeBackReturned();
      } else if ((data & 0xff) == kTagListen) {
        Accept(rt_->listen_fds()[data >> 8]);
      } else {
        auto* s = reinterpret_cast<ProxySession*>(data);
        if (idle_.erase(s) == 1) {  // oneshot: disarmed now
          // The thread's Drive() must try the read epoll just reported.
          s->SetReadiness(/*client_readable=*/true, false, false, false);
          Dispatch(s);
        }
      }
    }
    rt_->Heartbeat();
    if (rt_->SettingsChanged()) ApplySettings();
    TakeBackReturned();
    Sweep(scoreboard::MonotonicMs());
    if (rt_->stopping() && !swept_backlog_) {
      // Serve the connections already queued in the backlog before we stop
      // listening (Gunicorn drops them, gunicorn#3397).
      swept_backlog_ = true;
      for (int fd : rt_->listen_fds()) {
        std::string peer;
        int cfd;
        while ((cfd = rt_->Accept(fd, &peer)) >= 0) {
          ProxySession* s = rt_->NewSession(cfd, std::move(peer)).release();
          if (s == nullptr) continue;
          ++connections_;
          Dispatch(s);
        }
      }
    }
    if (rt_->stopping() && connections_ == 0) break;
    if (!rt_->accepting()) {
      epoll_.SetListening(false);
    } else if (!epoll_.listening() && HasRoom()) {
      epoll_.SetListening(true);
    }
  }
  rt_->Exit();
}

}  // namespace

void RunThreadedWorker(WorkerRuntime* rt, bool sync) {
  static ThreadedWorker* worker = new ThreadedWorker(rt, sync);
  worker->Run();
}

}  // namespace forkd::worker
