#include "server/common/process_title.h"

#include <sys/prctl.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace forkd::common {

ProcessTitle::ProcessTitle(int argc, char** argv, char** envp) {
  if (argc < 1 || argv == nullptr || argv[0] == nullptr) return;
  // Only one unbroken run of strings can be reused: going past it would
  // write over memory something else owns.
  begin_ = argv[0];
  end_ = begin_ + std::strlen(begin_) + 1;
  for (int i = 1; i < argc && argv[i] == end_; ++i) {
    end_ += std::strlen(argv[i]) + 1;
  }
  argv_end_ = end_;
  dirty_end_ = end_;
  if (envp == nullptr) return;
  for (char** e = envp; *e != nullptr && *e == end_; ++e) {
    size_t size = std::strlen(*e) + 1;
    // Never freed: environ points at it for the life of the process.
    char* copy = new char[size];
    std::memcpy(copy, *e, size);
    *e = copy;
    end_ += size;
  }
}

size_t ProcessTitle::capacity() const {
  return begin_ == nullptr ? 0 : static_cast<size_t>(end_ - begin_) - 1;
}

bool ProcessTitle::Set(absl::string_view title) {
  if (begin_ == nullptr || title.size() > capacity()) return false;
  std::memcpy(begin_, title.data(), title.size());
  // The NULs matter: when the title ends before argv's last byte, the kernel
  // shows all of argv's memory, and leftovers of the old arguments (or of a
  // longer title) would show as words of this one.
  char* clear_end = std::max(argv_end_, dirty_end_);
  char* title_end = begin_ + title.size();
  if (clear_end > title_end) {
    std::memset(title_end, 0, static_cast<size_t>(clear_end - title_end));
  } else {
    *title_end = '\0';  // the last byte of the claimed memory
  }
  dirty_end_ = std::max(argv_end_, title_end + 1);
  return true;
}

std::string MasterTitle(absl::Span<const std::string> binds) {
  if (binds.empty()) return "forkd: master";
  return absl::StrCat("forkd: master ", absl::StrJoin(binds, " "));
}

std::string WorkerTitle(uint32_t slot, uint64_t generation, bool app_mode) {
  return absl::StrCat("forkd: ", app_mode ? "proxy worker " : "worker ", slot,
                      " (gen ", generation, ")");
}

bool SetProcessTitle(int argc, char** argv, absl::string_view title) {
  return ProcessTitle(argc, argv, nullptr).Set(title);
}

bool SetThreadName(absl::string_view name) {
  std::string nul_terminated(name.substr(0, 15));
  return prctl(PR_SET_NAME, nul_terminated.c_str(), 0, 0, 0) == 0;
}

}  // namespace forkd::common
