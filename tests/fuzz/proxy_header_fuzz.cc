// libFuzzer target for the PROXY protocol header parser
// (server/proxyproto/proxy_header.h): parses the input whole, then every
// prefix of it, and traps when a prefix reaches a verdict (kDone or
// kError) that differs from the whole input's, when a kDone consumes more
// than it was given, or when the whole says "need more" after a prefix
// decided. Registered by tests/fuzz/CMakeLists.txt (the parser-fuzz lane).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "server/proxyproto/proxy_header.h"

namespace {

using forkd::proxyproto::ParseProxyHeader;
using forkd::proxyproto::ParseResult;
using forkd::proxyproto::ParseStatus;

bool Same(const ParseResult& a, const ParseResult& b) {
  return a.status == b.status && a.consumed == b.consumed &&
         a.header == b.header && a.error == b.error;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Longer inputs add nothing: a v2 header ends within 16 + 65535 bytes.
  if (size > forkd::proxyproto::kMaxV2Length + 16) return 0;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  ParseResult whole = ParseProxyHeader(input);
  if (whole.status == ParseStatus::kDone &&
      (whole.consumed == 0 || whole.consumed > size)) {
    __builtin_trap();
  }
  if (whole.status == ParseStatus::kError && whole.error.empty()) {
    __builtin_trap();
  }
  // Every split point: the first part alone, as a reader that got only
  // those bytes so far would call it, then the whole again.
  for (size_t k = 0; k < size; ++k) {
    ParseResult part = ParseProxyHeader(input.substr(0, k));
    if (part.status == ParseStatus::kNeedMore) continue;
    if (!Same(part, whole)) __builtin_trap();
  }
  return 0;
}
