#include "server/metrics/listen_queue.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace forkd::metrics {

absl::StatusOr<ListenQueue> ReadListenQueue(int fd,
                                            const std::string& listener) {
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) {
    return absl::InternalError(
        absl::StrCat("getsockname ", listener, ": ", std::strerror(errno)));
  }
  if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6) {
    return absl::UnimplementedError(
        absl::StrCat(listener, ": no TCP_INFO for this socket family"));
  }
  tcp_info info{};
  len = sizeof(info);
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) {
    return absl::InternalError(
        absl::StrCat("TCP_INFO ", listener, ": ", std::strerror(errno)));
  }
  ListenQueue q;
  q.listener = listener;
  q.length = info.tcpi_unacked;
  q.max_length = info.tcpi_sacked;
  return q;
}

}  // namespace forkd::metrics
