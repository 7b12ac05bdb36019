#include "server/common/readiness.h"

#include <poll.h>

#include "gtest/gtest.h"

namespace forkd {
namespace {

TEST(ReadinessTest, PollAndEpollBitsAgree) {
  // Poll-based drivers pass poll(2) bits through the same decoder.
  EXPECT_EQ(static_cast<uint32_t>(POLLIN), kReadyIn);
  EXPECT_EQ(static_cast<uint32_t>(POLLOUT), kReadyOut);
  EXPECT_EQ(static_cast<uint32_t>(POLLERR), kReadyErr);
  EXPECT_EQ(static_cast<uint32_t>(POLLHUP), kReadyHup);
  EXPECT_EQ(static_cast<uint32_t>(POLLRDHUP), kReadyRdHup);
}

TEST(ReadinessTest, InIsReadableOnly) {
  Readiness r = Readiness::From(kReadyIn);
  EXPECT_TRUE(r.in);
  EXPECT_TRUE(r.readable);
  EXPECT_FALSE(r.out);
  EXPECT_FALSE(r.writable);
  EXPECT_FALSE(r.hup);
}

TEST(ReadinessTest, OutIsWritableOnly) {
  Readiness r = Readiness::From(kReadyOut);
  EXPECT_TRUE(r.out);
  EXPECT_TRUE(r.writable);
  EXPECT_FALSE(r.in);
  EXPECT_FALSE(r.readable);
  EXPECT_FALSE(r.hup);
}

// An error or a hang-up wakes both directions, so the next read or write
// collects it.
TEST(ReadinessTest, ErrorAndHupWakeBothDirections) {
  for (uint32_t bits : {kReadyErr, kReadyHup}) {
    Readiness r = Readiness::From(bits);
    EXPECT_TRUE(r.readable) << bits;
    EXPECT_TRUE(r.writable) << bits;
    EXPECT_FALSE(r.in) << bits;
    EXPECT_FALSE(r.out) << bits;
  }
  EXPECT_FALSE(Readiness::From(kReadyErr).hup);
  EXPECT_TRUE(Readiness::From(kReadyHup).hup);
}

// The peer shut down its side: read on to the EOF; writing may still work.
TEST(ReadinessTest, RdHupIsReadableAndHupNotWritable) {
  Readiness r = Readiness::From(kReadyRdHup);
  EXPECT_TRUE(r.readable);
  EXPECT_TRUE(r.hup);
  EXPECT_FALSE(r.writable);
}

TEST(ReadinessTest, NoBitsMeanNothing) {
  Readiness r = Readiness::From(0);
  EXPECT_FALSE(r.in || r.out || r.readable || r.writable || r.hup);
}

}  // namespace
}  // namespace forkd
