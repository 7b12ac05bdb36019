// The epoll set of a worker's main loop, shared by the worker classes: the
// signalfd, the wake eventfd and the listening sockets, which are in the set
// only while the worker accepts.
#ifndef FORKD_SERVER_WORKER_WORKER_EPOLL_H_
#define FORKD_SERVER_WORKER_WORKER_EPOLL_H_

#include <sys/epoll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <vector>

#include "server/common/log.h"

namespace forkd::worker {

// epoll_event.data.u64 of the loop's own descriptors. Connections use their
// object pointers, whose low byte (16-byte aligned) is never one of these.
inline constexpr uint64_t kTagSignal = 1;
inline constexpr uint64_t kTagWake = 2;
inline constexpr uint64_t kTagListen = 3;  // | (listener index << 8)

class WorkerEpoll {
 public:
  explicit WorkerEpoll(const std::vector<int>& listen_fds)
      : fd_(epoll_create1(EPOLL_CLOEXEC)), listen_fds_(listen_fds) {}
  ~WorkerEpoll() { close(fd_); }
  WorkerEpoll(const WorkerEpoll&) = delete;
  WorkerEpoll& operator=(const WorkerEpoll&) = delete;

  int fd() const { return fd_; }

  // Adds `fd`; a failure is logged (the loop then never hears of it).
  void Add(int fd, uint32_t events, uint64_t data) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = data;
    if (epoll_ctl(fd_, EPOLL_CTL_ADD, fd, &ev) != 0) {
      LOG_ERROR("epoll_ctl add fd %d: %s", fd, std::strerror(errno));
    }
  }

  // Puts the listening sockets in the set or takes them out (then new
  // connections wait in the backlog, or go to another worker).
  void SetListening(bool on) {
    if (on == listening_) return;
    listening_ = on;
    for (size_t i = 0; i < listen_fds_.size(); ++i) {
      if (on) {
        // EPOLLEXCLUSIVE: one worker wakes per connection, not all of them.
        Add(listen_fds_[i], EPOLLIN | EPOLLEXCLUSIVE, kTagListen | (i << 8));
      } else {
        epoll_ctl(fd_, EPOLL_CTL_DEL, listen_fds_[i], nullptr);
      }
    }
  }
  bool listening() const { return listening_; }

 private:
  int fd_;
  std::vector<int> listen_fds_;
  bool listening_ = false;
};

}  // namespace forkd::worker

#endif  // FORKD_SERVER_WORKER_WORKER_EPOLL_H_
