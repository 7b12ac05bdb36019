#include "server/common/process_title.h"

#include <sys/prctl.h>

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
  // The NULs matter: when the title ends before the last argv byte, the
  // kernel shows all of argv's memory, and leftovers of the old arguments
  // would show as words of the title.
  std::memset(begin_ + title.size(), 0,
              static_cast<size_t>(end_ - begin_) - title.size());
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
