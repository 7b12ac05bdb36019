#include "server/metrics/listen_queue.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace forkd::metrics {
namespace {

TEST(ListenQueueTest, TcpListenerReportsWaitingConnectionsAndBacklog) {
  int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(lfd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(lfd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(listen(lfd, 7), 0);
  socklen_t len = sizeof(addr);
  getsockname(lfd, reinterpret_cast<sockaddr*>(&addr), &len);

  absl::StatusOr<ListenQueue> q = ReadListenQueue(lfd, "tcp");
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->listener, "tcp");
  EXPECT_EQ(q->length, 0u);
  EXPECT_EQ(q->max_length, 7u);

  // Loopback handshakes complete in connect(): both wait for accept().
  int c1 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int c2 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_EQ(connect(c1, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(connect(c2, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  q = ReadListenQueue(lfd, "tcp");
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->length, 2u);
  close(accept(lfd, nullptr, nullptr));
  q = ReadListenQueue(lfd, "tcp");
  ASSERT_TRUE(q.ok());
  EXPECT_EQ(q->length, 1u);
  close(c1);
  close(c2);
  close(lfd);
}

TEST(ListenQueueTest, UnixListenerIsUnimplemented) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(fd, 0);
  absl::StatusOr<ListenQueue> q = ReadListenQueue(fd, "unix:/x");
  EXPECT_TRUE(absl::IsUnimplemented(q.status())) << q.status();
  close(fd);
  EXPECT_FALSE(ReadListenQueue(-1, "bad").ok());
}

}  // namespace
}  // namespace forkd::metrics
