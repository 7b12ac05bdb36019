// A small HTTP/1.1 server for the master's observability endpoints
// (/metrics, /livez, /readyz, /startupz) on --metrics-bind. One thread, a
// poll() loop, keep-alive, GET and HEAD only; requests are parsed by
// http1::RequestParser and answered by a handler on that thread.
#ifndef FORKD_SERVER_METRICS_METRICS_SERVER_H_
#define FORKD_SERVER_METRICS_METRICS_SERVER_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"

namespace forkd::metrics {

struct HttpRequest {
  std::string method;  // "GET" or "HEAD"
  std::string path;    // the target without its query
  std::string query;   // after '?', "" when none
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

class MetricsServer {
 public:
  // Binds `bind` (HOST:PORT or [IPv6]:PORT; port 0 picks a free one) and
  // listens. With `wait_for_address` (a USR2 master whose predecessor still
  // holds the port), an address in use is not an error: the server retries
  // every second until it gets it. Fails when the address does not resolve
  // or cannot be bound.
  static absl::StatusOr<std::unique_ptr<MetricsServer>> Create(
      const std::string& bind, HttpHandler handler,
      bool wait_for_address = false);
  ~MetricsServer();  // Stop()

  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Starts the serving thread. Call once.
  void Start();
  // Stops the thread and closes every socket. Idempotent.
  void Stop();

  // The bound port (0 while still waiting for the address).
  int port() const { return port_.load(); }

 private:
  struct Conn;
  MetricsServer(std::string bind, HttpHandler handler, int wake_fd);
  absl::Status Bind();
  void Run();
  // Parses and answers every complete request in the connection's buffer.
  // Returns false when the connection must close once its output is sent.
  bool Serve(Conn& c);

  const std::string bind_;
  HttpHandler handler_;
  int wake_fd_;
  int listen_fd_ = -1;
  std::atomic<int> port_{0};
  std::thread thread_;
  std::atomic<bool> stop_{false};
};

}  // namespace forkd::metrics

#endif  // FORKD_SERVER_METRICS_METRICS_SERVER_H_
