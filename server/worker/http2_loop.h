// HTTP/2 connections of the gthread and sync classes.
//
// A thread-per-connection driver cannot serve HTTP/2 the way it serves
// HTTP/1.1: streams multiplex, so one connection has many app sockets to
// wait on. An Http2Loop is a small epoll loop (the async class's model)
// that owns the HTTP/2 connections of a worker and their streams' app
// sockets, with its own upstream pool (its sockets stay registered with
// its epoll, so they cannot be shared with the request threads' poll()).
// gthread runs one on a thread of its own, so HTTP/2 connections never
// hold request threads and HTTP/1.1 clients never wait behind them; sync
// runs it inline on the main thread, one connection at a time. Either way
// each stream joins the worker's Admission line before it talks to the
// app, with the HTTP/1.1 requests, so --threads bounds both together.
#ifndef FORKD_SERVER_WORKER_HTTP2_LOOP_H_
#define FORKD_SERVER_WORKER_HTTP2_LOOP_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "server/transport/client_transport.h"
#include "server/proxy/http2_connection.h"
#include "server/proxy/proxy_session.h"
#include "server/upstream/upstream_pool.h"
#include "server/worker/worker_epoll.h"
#include "server/worker/worker_runtime.h"

namespace forkd::worker {

class Http2Loop {
 public:
  // `sync`: the sync class's rules (see below). Main thread, before any
  // request thread starts.
  Http2Loop(WorkerRuntime* rt, proxy::Admission* admission, bool sync);
  ~Http2Loop();
  Http2Loop(const Http2Loop&) = delete;
  Http2Loop& operator=(const Http2Loop&) = delete;

  // Takes over `h1`, a connection that asked for HTTP/2 (wants_http2()):
  // its transport and bytes move to an HTTP/2 connection the loop serves;
  // `h1` is closed afterwards and the caller deletes it. Any thread.
  void Adopt(proxy::ProxySession* h1);

  // gthread: the loop runs forever on a thread of its own, started with
  // the first adopted connection (a worker that never sees HTTP/2 keeps
  // just its request threads). Any thread, before the first Adopt().
  void RunOnOwnThread() { own_thread_ = true; }
  // One round: waits up to `timeout_ms` for events and serves them. The
  // loop's thread (sync: the main thread).
  void RunOnce(int timeout_ms);

  // Connections adopted and not yet closed. Any thread.
  size_t open() const { return open_.load(); }
  // Connections closed since the last call (the worker's connection
  // count). Any thread.
  size_t TakeClosed() { return closed_.exchange(0); }

 private:
  struct Conn;

  void StartThread();
  void StartPending();
  void OnEvent(uint64_t data, uint32_t events);
  void Sweep(int64_t now_ms);
  void FreeClosed();

  WorkerRuntime* rt_;
  proxy::Admission* admission_;
  bool sync_;
  bool own_thread_ = false;
  std::once_flag thread_started_;
  WorkerEpoll epoll_{{}};  // no listeners: connections come via Adopt()
  int wake_fd_ = -1;
  std::unique_ptr<upstream::Pool> pool_;
  proxy::SessionContext ctx_;
  // sync: set to say GOAWAY once the connection has been served (the loop
  // holds one connection at a time, so one flag is enough).
  std::atomic<bool> goaway_{false};
  uint64_t requests_done_ = 0;  // streams answered by this loop

  std::mutex mu_;
  std::vector<proxy::Http2Connection::Handoff> inbox_;
  std::atomic<size_t> open_{0};
  std::atomic<size_t> closed_{0};

  absl::flat_hash_map<proxy::ClientConnection*, std::unique_ptr<Conn>> conns_;
  std::vector<proxy::ClientConnection*> touched_;
  std::vector<proxy::ClientConnection*> after_batch_;
  std::vector<std::unique_ptr<upstream::Connection>> discarded_;
  int64_t stop_seen_ms_ = 0;
  int64_t last_sweep_ms_ = 0;
  bool told_stop_accepting_ = false;
};

}  // namespace forkd::worker

#endif  // FORKD_SERVER_WORKER_HTTP2_LOOP_H_
