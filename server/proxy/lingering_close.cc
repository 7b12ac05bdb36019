#include "server/proxy/lingering_close.h"

#include <cerrno>

namespace forkd::proxy {

void LingeringClose::Start(transport::ClientTransport* t, int64_t now_ms) {
  if (state_ != State::kOff) return;
  t->ShutdownWrite();
  state_ = State::kWaiting;
  deadline_ms_ = now_ms + time_ms_;
}

LingeringClose::State LingeringClose::Drain(transport::ClientTransport* t,
                                            int64_t now_ms) {
  if (state_ != State::kWaiting) return state_;
  char buf[16 * 1024];
  while (true) {
    ssize_t n = t->Discard(buf, sizeof(buf));
    if (n > 0) {
      dropped_ += static_cast<uint64_t>(n);
      // A client that keeps sending past the budget gets the reset: it is
      // not reading our answer anyway.
      if (dropped_ >= max_bytes_) break;
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (now_ms >= deadline_ms_) break;
      return state_;
    }
    break;  // EOF or an error: nothing more will come
  }
  state_ = State::kDone;
  return state_;
}

}  // namespace forkd::proxy
