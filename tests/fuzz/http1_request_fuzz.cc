// libFuzzer target: the HTTP/1 request parser and the body decoder, as a
// keep-alive connection drives them (pipelined requests, each head then
// its body). The same bytes are fed in one piece, byte by byte and in
// pieces the input chooses: the transcripts must be identical (the
// parsers' verdict never depends on how the bytes were split), or the
// target traps.
//
// Input: [limits] [split seed: 2 bytes] [connection bytes...]
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/http1/body_decoder.h"
#include "server/http1/message.h"
#include "server/http1/request_parser.h"
#include "tests/fuzz/fuzz_input.h"
#include "tests/fuzz/http1_transcript.h"

namespace forkd::fuzz {
namespace {

constexpr int kMaxMessages = 8;

http1::Limits LimitsFor(uint8_t choice) {
  http1::Limits l;
  switch (choice % 4) {
    case 0:  // the defaults
      break;
    case 1:  // tight: the limit paths are reachable with short inputs
      l.max_request_line = 40;
      l.max_fields = 4;
      l.max_field_size = 24;
      l.max_body = 64;
      break;
    case 2:  // unlimited: the 64 KiB backstops
      l.max_request_line = 0;
      l.max_fields = 0;
      l.max_field_size = 0;
      break;
    case 3:  // degenerate
      l.max_request_line = 1;
      l.max_fields = 1;
      l.max_field_size = 1;
      l.max_body = 1;
      break;
  }
  return l;
}

// Feeds a connection's bytes as `ends` delivers them and writes down what
// the parsers said.
std::string Transcript(std::string_view bytes, const http1::Limits& limits,
                       const std::vector<size_t>& ends) {
  std::string log;
  http1::RequestParser parser(limits);
  std::optional<http1::BodyDecoder> body;
  std::string payload;
  std::string buf;  // received, not consumed
  int messages = 0;
  bool dead = false;
  size_t from = 0;
  for (size_t end : ends) {
    buf.append(bytes.substr(from, end - from));
    from = end;
    while (!dead) {
      if (!body) {
        size_t consumed = 0;
        http1::ParseStatus st = parser.Parse(buf, &consumed);
        if (st == http1::ParseStatus::kNeedMore) break;
        if (st == http1::ParseStatus::kError) {
          log += "head error " +
                 std::to_string(static_cast<int>(parser.error().kind)) + " " +
                 parser.error().detail + "\n";
          dead = true;
          break;
        }
        const http1::RequestHead& h = parser.head();
        log += "head " + h.method + " " + h.target + " 1." +
               std::to_string(h.version_minor) + " framing " +
               std::to_string(static_cast<int>(h.framing)) + " cl " +
               std::to_string(h.content_length) + " ka " +
               std::to_string(h.keep_alive) + " ex " +
               std::to_string(h.expect_continue) + " up " +
               std::to_string(h.upgrade) + "\n";
        AppendFields(h.headers, &log);
        if (consumed == 0 || consumed > buf.size()) __builtin_trap();
        buf.erase(0, consumed);
        body.emplace(
            h.framing, h.content_length, limits.max_body,
            http1::TrailerLimits{limits.max_fields, limits.max_field_size});
        payload.clear();
      }
      if (!DecodeBodyStep(*body, &buf, &payload, &log)) {
        dead = true;
        break;
      }
      if (!body->done()) break;  // needs more bytes
      if (body->payload_bytes() != payload.size()) __builtin_trap();
      log += "body " + payload + "\n";
      AppendFields(body->trailers(), &log);
      body.reset();
      if (++messages == kMaxMessages) dead = true;
    }
    if (dead) break;
  }
  log += "left " + std::to_string(dead ? 0 : buf.size()) + "\n";
  return log;
}

}  // namespace
}  // namespace forkd::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace forkd::fuzz;
  Input in(data, size);
  const forkd::http1::Limits limits = LimitsFor(in.Byte());
  const uint16_t seed = in.Word();
  const std::string_view bytes = in.rest();
  const std::string whole = Transcript(bytes, limits, OnePiece(bytes.size()));
  if (Transcript(bytes, limits, ByteByByte(bytes.size())) != whole) {
    __builtin_trap();
  }
  if (Transcript(bytes, limits, SplitPlan(bytes.size(), seed, 1 + seed % 97)) !=
      whole) {
    __builtin_trap();
  }
  return 0;
}
