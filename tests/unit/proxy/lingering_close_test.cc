#include "server/proxy/lingering_close.h"

#include <cerrno>
#include <deque>
#include <string>

#include "gtest/gtest.h"

namespace forkd::proxy {
namespace {

// A transport whose reads come from a script: bytes, EAGAIN (""), EOF.
class FakeTransport : public transport::ClientTransport {
 public:
  ssize_t Read(char*, size_t) override { return -1; }
  ssize_t Write(const char*, size_t len) override {
    return static_cast<ssize_t>(len);
  }
  void ShutdownWrite() override { ++shutdowns; }
  ssize_t Discard(char* buf, size_t len) override {
    if (script.empty()) {
      errno = EAGAIN;
      return -1;
    }
    std::string next = script.front();
    script.pop_front();
    if (next == "EAGAIN") {
      errno = EAGAIN;
      return -1;
    }
    if (next == "EOF") return 0;
    if (next == "RESET") {
      errno = ECONNRESET;
      return -1;
    }
    size_t n = std::min(len, next.size());
    return static_cast<ssize_t>(n);
  }
  int fd() const override { return 3; }

  int shutdowns = 0;
  std::deque<std::string> script;
};

using State = LingeringClose::State;

TEST(LingeringCloseTest, HalfClosesOnceAndWaitsForTheClient) {
  FakeTransport t;
  LingeringClose l(2000, 1 << 20);
  EXPECT_FALSE(l.active());
  l.Start(&t, /*now_ms=*/1000);
  l.Start(&t, 1001);
  EXPECT_EQ(t.shutdowns, 1);
  EXPECT_EQ(l.deadline_ms(), 3000);
  t.script = {"abc", "defg", "EAGAIN"};
  EXPECT_EQ(l.Drain(&t, 1500), State::kWaiting);
  EXPECT_EQ(l.dropped_bytes(), 7u);
  t.script = {"EOF"};
  EXPECT_EQ(l.Drain(&t, 1600), State::kDone);
}

TEST(LingeringCloseTest, EndsAtTheDeadline) {
  FakeTransport t;
  LingeringClose l(2000, 1 << 20);
  l.Start(&t, 0);
  t.script = {"x", "EAGAIN"};
  EXPECT_EQ(l.Drain(&t, 1999), State::kWaiting);
  t.script = {"x", "EAGAIN"};
  EXPECT_EQ(l.Drain(&t, 2000), State::kDone);
}

TEST(LingeringCloseTest, EndsPastTheByteBudget) {
  FakeTransport t;
  LingeringClose l(2000, 10);
  l.Start(&t, 0);
  t.script = {"123456", "123456", "more", "EAGAIN"};
  EXPECT_EQ(l.Drain(&t, 1), State::kDone);
  EXPECT_EQ(l.dropped_bytes(), 12u);
  EXPECT_EQ(t.script.size(), 2u);  // stopped reading at the budget
}

TEST(LingeringCloseTest, EndsOnAReset) {
  FakeTransport t;
  LingeringClose l;
  l.Start(&t, 0);
  t.script = {"RESET"};
  EXPECT_EQ(l.Drain(&t, 1), State::kDone);
}

}  // namespace
}  // namespace forkd::proxy
