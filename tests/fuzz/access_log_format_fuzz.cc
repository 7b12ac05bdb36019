// libFuzzer target: the access-log format compiler and line renderer
// (server/accesslog). The input is a format, then the request the line is
// about (method, target, protocol, request id, header fields), all
// client-controlled. Property: a value can never start a new line, so a
// format without a newline of its own renders exactly one line.
//
// Input: format \0 method \0 target \0 protocol \0 request-id \0
//        name \0 value \0 ... (request fields, then response fields after
//        an empty name)
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "server/accesslog/access_log.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace forkd::fuzz;
  using forkd::accesslog::Entry;
  using forkd::accesslog::Formatter;
  Input in(data, size);
  const std::string_view format = in.Until('\0');
  auto formatter = Formatter::Create(format);
  if (!formatter.ok()) return 0;
  Entry e;
  e.method = in.Until('\0');
  e.target = in.Until('\0');
  e.protocol = in.Until('\0');
  e.request_id = in.Until('\0');
  const uint8_t n = in.Byte();
  e.status = n * 3;
  e.body_bytes = static_cast<uint64_t>(n) << (n % 64);
  e.duration_s = n * 0.123;
  e.upstream_s = -e.duration_s;
  e.start = absl::FromUnixSeconds(static_cast<int64_t>(n) * 86'400 * 365);
  e.remote_addr = n & 1 ? "10.0.0.1" : "";
  std::vector<forkd::http1::Header> request_fields, response_fields;
  std::vector<forkd::http1::Header>* fields = &request_fields;
  while (!in.rest().empty()) {
    std::string_view name = in.Until('\0');
    if (name.empty()) {
      fields = &response_fields;
      continue;
    }
    fields->push_back({std::string(name), std::string(in.Until('\0'))});
  }
  e.request_headers = &request_fields;
  e.response_headers = (n & 2) ? &response_fields : nullptr;
  std::string line;
  formatter->Format(e, &line);
  if (line.empty() || line.back() != '\n') __builtin_trap();
  if (format.find('\n') == std::string_view::npos &&
      format.find("e)s") == std::string_view::npos &&
      line.find('\n') != line.size() - 1) {
    __builtin_trap();  // a value started a new line
  }
  return 0;
}
