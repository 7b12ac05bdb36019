// Socket readiness as names. Drivers report readiness as epoll bits
// (EPOLLIN, EPOLLOUT, ...); poll-based drivers use the same values, which
// poll(2) and epoll(7) share. Readiness::From() decodes them once so the
// sessions read "readable" instead of bare numbers.
#ifndef FORKD_SERVER_COMMON_READINESS_H_
#define FORKD_SERVER_COMMON_READINESS_H_

#include <sys/epoll.h>

#include <cstdint>

namespace forkd {

// The readiness bits a driver may pass.
inline constexpr uint32_t kReadyIn = EPOLLIN;
inline constexpr uint32_t kReadyOut = EPOLLOUT;
inline constexpr uint32_t kReadyErr = EPOLLERR;
inline constexpr uint32_t kReadyHup = EPOLLHUP;
inline constexpr uint32_t kReadyRdHup = EPOLLRDHUP;  // the peer shut down
static_assert(kReadyIn == 0x001 && kReadyOut == 0x004 && kReadyErr == 0x008 &&
                  kReadyHup == 0x010 && kReadyRdHup == 0x2000,
              "poll and epoll share these values; drivers rely on it");

// What one readiness report means for a socket.
struct Readiness {
  bool in = false;   // EPOLLIN itself (TLS crossed directions use it)
  bool out = false;  // EPOLLOUT itself
  // A read will not block: data, the peer's EOF, or an error to collect.
  bool readable = false;
  // A write will not block, or will fail with the error to collect.
  bool writable = false;
  // The peer hung up or shut down its side: read on to the EOF.
  bool hup = false;

  static constexpr Readiness From(uint32_t events) {
    Readiness r;
    r.in = (events & kReadyIn) != 0;
    r.out = (events & kReadyOut) != 0;
    r.readable =
        (events & (kReadyIn | kReadyErr | kReadyHup | kReadyRdHup)) != 0;
    r.writable = (events & (kReadyOut | kReadyErr | kReadyHup)) != 0;
    r.hup = (events & (kReadyHup | kReadyRdHup)) != 0;
    return r;
  }
};

}  // namespace forkd

#endif  // FORKD_SERVER_COMMON_READINESS_H_
