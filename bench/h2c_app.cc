// A fast stand-in gRPC app for bench/grpc.sh: an h2c server on a unix
// socket that answers every request like a unary gRPC echo (HEADERS 200
// application/grpc, the request body back as DATA, trailers grpc-status 0).
// One thread, epoll, forkd's own Http2Session for the protocol. Not part
// of forkd; built only for the benchmark (target forkd_bench_h2c_app).
//
//   forkd_bench_h2c_app /tmp/app.sock
#include <errno.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <string>

#include "server/common/buffer.h"
#include "server/http2/http2_session.h"

namespace {

using forkd::Buffer;
using forkd::http1::Header;
using forkd::http2::Http2Session;

class Conn : public Http2Session::Handler {
 public:
  explicit Conn(int fd) : fd_(fd) {
    forkd::http2::Http2Settings s;
    s.max_concurrent_streams = 1000;
    s.initial_window_size = 1 << 20;
    s.connection_window_size = 16 << 20;
    session_ = std::move(*Http2Session::Create(s, this));
  }
  ~Conn() override { close(fd_); }

  // Returns false when the connection is over.
  bool OnReadable() {
    char buf[64 * 1024];
    while (true) {
      ssize_t n = read(fd_, buf, sizeof(buf));
      if (n > 0) {
        if (!session_->Receive(buf, static_cast<size_t>(n)).ok()) return false;
        continue;
      }
      if (n == 0) return false;
      if (errno == EAGAIN) break;
      if (errno != EINTR) return false;
    }
    return Flush();
  }

  bool Flush() {
    while (true) {
      if (out_.empty()) session_->TakeOutput(&out_);
      if (out_.empty()) return !session_->Done();
      ssize_t n = write(fd_, out_.View().data(), out_.size());
      if (n > 0) {
        out_.Consume(static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EAGAIN) return true;
      if (n < 0 && errno == EINTR) continue;
      return false;
    }
  }

  void OnRequestHeaders(int32_t id, std::string_view, std::string_view,
                        std::string_view, std::string_view, std::vector<Header>,
                        bool end_stream) override {
    bodies_[id];
    if (end_stream) Answer(id);
  }
  void OnRequestData(int32_t id, std::string_view data) override {
    bodies_[id].append(data);
    session_->ConsumeRequestData(id, data.size());
  }
  void OnRequestEnd(int32_t id, std::vector<Header>) override { Answer(id); }
  void OnStreamClosed(int32_t id, uint32_t) override { bodies_.erase(id); }

 private:
  void Answer(int32_t id) {
    std::string& body = bodies_[id];
    session_
        ->SubmitResponse(id, 200, {{"content-type", "application/grpc"}}, false)
        .IgnoreError();
    if (!body.empty()) session_->AppendResponseData(id, body).IgnoreError();
    session_->EndResponse(id, std::vector<Header>{{"grpc-status", "0"}})
        .IgnoreError();
  }

  int fd_;
  std::unique_ptr<Http2Session> session_;
  Buffer out_;
  std::map<int32_t, std::string> bodies_;
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s SOCKET_PATH\n", argv[0]);
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  int lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", argv[1]);
  unlink(argv[1]);
  if (bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(lfd, 1024) != 0) {
    perror("bind/listen");
    return 1;
  }
  // nginx's workers (nobody, under root) connect too.
  chmod(argv[1], 0777);
  int ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.ptr = nullptr;
  epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
  epoll_event events[256];
  while (true) {
    int n = epoll_wait(ep, events, 256, -1);
    for (int i = 0; i < n; ++i) {
      if (events[i].data.ptr == nullptr) {
        int fd;
        while ((fd = accept4(lfd, nullptr, nullptr,
                             SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
          auto* c = new Conn(fd);
          epoll_event cev{};
          cev.events = EPOLLIN | EPOLLOUT | EPOLLET;
          cev.data.ptr = c;
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
        }
        continue;
      }
      auto* c = static_cast<Conn*>(events[i].data.ptr);
      bool alive = (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                       ? c->OnReadable()
                       : c->Flush();
      if (!alive) delete c;  // closing the fd takes it out of the epoll set
    }
  }
}
