#include "server/common/process_title.h"

#include <cstring>

namespace forkd::common {

bool SetProcessTitle(int argc, char** argv, absl::string_view title) {
  if (argc < 1 || argv == nullptr || argv[0] == nullptr) return false;
  // The argv strings sit back to back above the stack; only that run can be
  // reused (going past it would write over the environment strings).
  char* begin = argv[0];
  char* end = begin + std::strlen(begin) + 1;
  for (int i = 1; i < argc && argv[i] == end; ++i) {
    end += std::strlen(argv[i]) + 1;
  }
  size_t space = static_cast<size_t>(end - begin);
  if (title.size() + 1 > space) return false;
  std::memcpy(begin, title.data(), title.size());
  std::memset(begin + title.size(), 0, space - title.size());
  return true;
}

}  // namespace forkd::common
