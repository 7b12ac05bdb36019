#include "server/common/process_title.h"

#include <string>

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

}  // namespace
}  // namespace forkd::common
