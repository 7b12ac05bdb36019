#include "server/metrics/proc_stats.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/metrics/listen_queue.h"

namespace forkd::metrics {
namespace {

// A /proc/PID/stat line whose command name holds spaces and parentheses.
constexpr char kStat[] =
    "4242 (forkd: a (b) c) S 1 4242 4242 0 -1 4194560 1000 0 0 0 "
    "250 130 0 0 20 0 3 0 98765 123456789 1234 18446744073709551615 "
    "1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
constexpr char kStatm[] = "30000 1234 500 100 0 2000 0\n";

TEST(ProcStatsTest, ParsesCpuRssAndStartTime) {
  absl::StatusOr<ProcStats> s = ParseProcStats(kStat, kStatm, 100, 4096);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_DOUBLE_EQ(s->cpu_seconds, 3.8);  // (250 + 130) / 100
  EXPECT_EQ(s->resident_bytes, 1234u * 4096u);
  EXPECT_DOUBLE_EQ(s->start_time_seconds, 987.65);
}

TEST(ProcStatsTest, MalformedTextIsAnError) {
  EXPECT_FALSE(ParseProcStats("4242 forkd S 1", kStatm, 100, 4096).ok());
  EXPECT_FALSE(ParseProcStats("4242 (forkd) S 1 2 3", kStatm, 100, 4096).ok());
  EXPECT_FALSE(ParseProcStats(kStat, "30000", 100, 4096).ok());
  EXPECT_FALSE(ParseProcStats(kStat, "30000 x", 100, 4096).ok());
}

TEST(ProcStatsTest, ReadsAProcTree) {
  std::string root =
      ::testing::TempDir() + "/forkd_proc_" + std::to_string(getpid());
  std::string dir = root + "/77";
  ASSERT_EQ(system(("mkdir -p " + dir).c_str()), 0);
  std::ofstream(dir + "/stat") << kStat;
  std::ofstream(dir + "/statm") << kStatm;
  std::ofstream(root + "/stat")
      << "cpu  1 2 3\nbtime 1700000000\nprocesses 9\n";
  absl::StatusOr<ProcStats> s = ReadProcStats(77, root);
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->resident_bytes,
            1234u * static_cast<uint64_t>(sysconf(_SC_PAGESIZE)));
  EXPECT_DOUBLE_EQ(BootTimeSeconds(root), 1700000000.0);
  absl::StatusOr<ProcStats> gone = ReadProcStats(78, root);
  EXPECT_TRUE(absl::IsNotFound(gone.status())) << gone.status();
}

TEST(ProcStatsTest, ReadsThisProcess) {
  absl::StatusOr<ProcStats> s = ReadProcStats(getpid());
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_GT(s->resident_bytes, 0u);
  EXPECT_GT(BootTimeSeconds(), 1e9);
}

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
