#include "server/upstream/upstream_pool.h"

#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>

#include "gtest/gtest.h"

namespace forkd::upstream {
namespace {

// A pool holding one idle connection whose other end (`app_fd`) the test
// plays the app with.
struct IdlePool {
  IdlePool() : pool(*Address::Parse("unix:/nonexistent.sock"), 4) {
    int sv[2];
    EXPECT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    auto c = std::make_unique<Connection>();
    c->fd = sv[0];
    c->registered = true;  // as the async worker registers them
    conn = c.get();
    app_fd = sv[1];
    pool.Release(std::move(c));
  }
  ~IdlePool() { close(app_fd); }
  Pool pool;
  Connection* conn = nullptr;
  int app_fd = -1;
};

TEST(PoolOnIdleEvent, WriteSpaceEdgeKeepsTheConnection) {
  IdlePool p;
  EXPECT_FALSE(p.pool.OnIdleEvent(p.conn, EPOLLOUT));
  EXPECT_EQ(p.pool.idle_count(), 1u);
}

TEST(PoolOnIdleEvent, ReadEdgeWithNothingToReadKeepsTheConnection) {
  IdlePool p;
  EXPECT_FALSE(p.pool.OnIdleEvent(p.conn, EPOLLIN | EPOLLOUT));
  EXPECT_EQ(p.pool.idle_count(), 1u);
  EXPECT_NE(p.pool.TakeIdle(), nullptr);
}

TEST(PoolOnIdleEvent, AppClosingDropsTheConnection) {
  IdlePool p;
  close(p.app_fd);
  p.app_fd = -1;
  EXPECT_TRUE(p.pool.OnIdleEvent(p.conn, EPOLLIN | EPOLLRDHUP));
  EXPECT_EQ(p.pool.idle_count(), 0u);
}

TEST(PoolOnIdleEvent, StrayBytesDropTheConnection) {
  IdlePool p;
  ASSERT_EQ(write(p.app_fd, "x", 1), 1);
  EXPECT_TRUE(p.pool.OnIdleEvent(p.conn, EPOLLIN));
  EXPECT_EQ(p.pool.idle_count(), 0u);
}

TEST(PoolOnIdleEvent, HangupDropsWithoutLooking) {
  IdlePool p;
  EXPECT_TRUE(p.pool.OnIdleEvent(p.conn, EPOLLHUP));
  EXPECT_EQ(p.pool.idle_count(), 0u);
}

TEST(PoolOnIdleEvent, AConnectionNoLongerIdleIsLeftAlone) {
  IdlePool p;
  std::unique_ptr<Connection> taken = p.pool.TakeIdle();
  ASSERT_EQ(taken.get(), p.conn);
  EXPECT_FALSE(p.pool.OnIdleEvent(p.conn, EPOLLHUP));
  EXPECT_EQ(p.pool.idle_count(), 0u);
}

}  // namespace
}  // namespace forkd::upstream
