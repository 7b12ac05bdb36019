#include "server/common/process_title.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace forkd::common {
namespace {

// argv strings back to back, as the kernel lays them out for a new process.
struct Argv {
  explicit Argv(std::initializer_list<const char*> args) {
    for (const char* a : args) {
      offsets.push_back(block.size());
      block.append(a);
      block.push_back('\0');
    }
    block.append("ENV=x");  // what follows argv must stay untouched
    block.push_back('\0');
    for (size_t o : offsets) ptrs.push_back(&block[o]);
  }
  int argc() const { return static_cast<int>(ptrs.size()); }
  std::string block;
  std::vector<size_t> offsets;
  std::vector<char*> ptrs;
};

TEST(ProcessTitleTest, RewritesArgvAndClearsTheRest) {
  Argv a({"forkd: worker 3 (gen 2)", "__worker", "12"});
  size_t argv_bytes = a.block.size() - 6;
  ASSERT_TRUE(
      SetProcessTitle(a.argc(), a.ptrs.data(), "forkd: worker 3 (gen 2)"));
  EXPECT_EQ(std::string(a.block.data()), "forkd: worker 3 (gen 2)");
  for (size_t i = 23; i < argv_bytes; ++i) EXPECT_EQ(a.block[i], '\0') << i;
  EXPECT_EQ(a.block.substr(argv_bytes), std::string("ENV=x\0", 6));
}

TEST(ProcessTitleTest, ATitleThatDoesNotFitChangesNothing) {
  Argv a({"forkd", "-w"});
  std::string before = a.block;
  EXPECT_FALSE(SetProcessTitle(a.argc(), a.ptrs.data(), "forkd: master"));
  EXPECT_EQ(a.block, before);
  // Exactly the space there is (9 bytes with the NUL) fits.
  EXPECT_TRUE(SetProcessTitle(a.argc(), a.ptrs.data(), "forkd: m"));
  EXPECT_EQ(std::string(a.block.data()), "forkd: m");
  EXPECT_EQ(a.block.substr(9), std::string("ENV=x\0", 6));
}

// argv then environment strings back to back, as the kernel lays out a new
// process's stack, plus a string that is not part of the run.
struct Block {
  Block(std::initializer_list<const char*> args,
        std::initializer_list<const char*> env) {
    std::vector<size_t> arg_offsets, env_offsets;
    for (const char* a : args) {
      arg_offsets.push_back(memory.size());
      memory.append(a);
      memory.push_back('\0');
    }
    for (const char* e : env) {
      env_offsets.push_back(memory.size());
      memory.append(e);
      memory.push_back('\0');
    }
    run_size = memory.size();
    memory.append("AFTER");
    memory.push_back('\0');
    for (size_t o : arg_offsets) argv.push_back(&memory[o]);
    for (size_t o : env_offsets) envp.push_back(&memory[o]);
    envp.push_back(nullptr);
  }
  int argc() const { return static_cast<int>(argv.size()); }
  std::string memory;
  size_t run_size = 0;
  std::vector<char*> argv;
  std::vector<char*> envp;
};

TEST(ProcessTitleTest, UsesTheEnvironmentStringsAndMovesThemAside) {
  // `forkd` alone with its settings in FORKD_* variables: argv has room for
  // 5 bytes, not for "forkd: master 127.0.0.1:8000".
  Block b({"forkd"}, {"FORKD_BIND=127.0.0.1:8000", "HOME=/root"});
  ProcessTitle title(b.argc(), b.argv.data(), b.envp.data());
  EXPECT_EQ(title.capacity(), b.run_size - 1);
  // The environment now lives elsewhere, unchanged.
  for (int i = 0; i < 2; ++i) {
    EXPECT_TRUE(b.envp[i] < b.memory.data() ||
                b.envp[i] >= b.memory.data() + b.memory.size())
        << i;
  }
  ASSERT_TRUE(title.Set("forkd: master 127.0.0.1:8000"));
  EXPECT_EQ(std::string(b.envp[0]), "FORKD_BIND=127.0.0.1:8000");
  EXPECT_EQ(std::string(b.envp[1]), "HOME=/root");
  // What the kernel shows as cmdline once argv's last byte is not a NUL:
  // up to the first NUL.
  EXPECT_EQ(std::string(b.memory.data()), "forkd: master 127.0.0.1:8000");
  EXPECT_EQ(b.memory.substr(b.run_size), std::string("AFTER\0", 6));
  // A later, shorter title leaves no trace of the longer one.
  ASSERT_TRUE(title.Set("forkd: m"));
  EXPECT_EQ(std::string(b.memory.data()), "forkd: m");
  for (size_t i = 8; i < 29; ++i) EXPECT_EQ(b.memory[i], '\0') << i;
  EXPECT_FALSE(title.Set(std::string(b.run_size, 'x')));
  EXPECT_TRUE(title.Set(std::string(b.run_size - 1, 'x')));
  EXPECT_EQ(b.memory.substr(b.run_size), std::string("AFTER\0", 6));
}

TEST(ProcessTitleTest, ATitleThatFitsArgvLeavesTheEnvironmentsMemory) {
  // /proc/PID/environ reads that memory: it stays as it was.
  Block b({"/usr/bin/forkd", "--bind", "0.0.0.0:8000"}, {"A=1", "B=2"});
  size_t argv_size = sizeof("/usr/bin/forkd\0--bind\0000.0.0.0:8000");
  std::string env_before = b.memory.substr(argv_size);
  ProcessTitle title(b.argc(), b.argv.data(), b.envp.data());
  ASSERT_TRUE(title.Set("forkd: master 0.0.0.0:8000"));
  EXPECT_EQ(std::string(b.memory.data()), "forkd: master 0.0.0.0:8000");
  for (size_t i = 26; i < argv_size; ++i) EXPECT_EQ(b.memory[i], '\0') << i;
  EXPECT_EQ(b.memory.substr(argv_size), env_before);
  EXPECT_EQ(std::string(b.envp[1]), "B=2");
}

TEST(ProcessTitleTest, StopsAtTheFirstStringOutsideTheRun) {
  // An entry already pointing elsewhere (setenv, unsetenv) ends the run: the
  // strings after it are not claimed, nor moved.
  Block b({"forkd", "-w"}, {"A=1", "B=2", "C=3"});
  char* c = b.envp[2];
  std::string elsewhere = "B=9";
  b.envp[1] = elsewhere.data();
  ProcessTitle title(b.argc(), b.argv.data(), b.envp.data());
  EXPECT_EQ(title.capacity(), sizeof("forkd\0-w\0A=1") - 1);
  EXPECT_EQ(b.envp[1], elsewhere.data());
  EXPECT_EQ(b.envp[2], c);
  EXPECT_FALSE(title.Set("forkd: master"));  // one byte too many
  ASSERT_TRUE(title.Set("forkd: maste"));
  EXPECT_EQ(std::string(c), "C=3");
}

TEST(ProcessTitleTest, TitleIsWhatPsShows) {
  EXPECT_EQ(WorkerTitle(3, 2, /*app_mode=*/false), "forkd: worker 3 (gen 2)");
  EXPECT_EQ(WorkerTitle(12, 1, /*app_mode=*/true),
            "forkd: proxy worker 12 (gen 1)");
  EXPECT_EQ(MasterTitle({"127.0.0.1:8000", "unix:/run/forkd.sock"}),
            "forkd: master 127.0.0.1:8000 unix:/run/forkd.sock");
  EXPECT_EQ(MasterTitle({}), "forkd: master");
  // What the kernel keeps of a short name.
  for (absl::string_view name : {kMasterName, kWorkerName, kProxyWorkerName}) {
    EXPECT_LE(name.size(), 15u) << name;
  }
}

TEST(ProcessTitleTest, NoArgvNoTitle) {
  ProcessTitle title(0, nullptr, nullptr);
  EXPECT_EQ(title.capacity(), 0u);
  EXPECT_FALSE(title.Set(""));
}

}  // namespace
}  // namespace forkd::common
