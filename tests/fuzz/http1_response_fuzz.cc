// libFuzzer target: the HTTP/1 response parser and the body decoder, as an
// upstream connection drives them (interim 1xx heads, then the final one
// and its body; keep-alive responses one after another; a body that runs
// until the app closes). The same bytes in one piece, byte by byte and in
// pieces the input chooses must give identical transcripts, or it traps.
//
// Input: [request method] [split seed: 2 bytes] [app bytes...]
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/http1/body_decoder.h"
#include "server/http1/message.h"
#include "server/http1/response_parser.h"
#include "tests/fuzz/fuzz_input.h"
#include "tests/fuzz/http1_transcript.h"

namespace forkd::fuzz {
namespace {

constexpr int kMaxMessages = 8;

std::string Transcript(std::string_view bytes, std::string_view method,
                       uint64_t max_body, const std::vector<size_t>& ends) {
  std::string log;
  http1::ResponseParser parser;
  std::optional<http1::BodyDecoder> body;
  std::string payload;
  std::string buf;
  int messages = 0;
  bool dead = false;
  size_t from = 0;
  auto finish_body = [&] {
    if (body->payload_bytes() != payload.size()) __builtin_trap();
    log += "body " + payload + "\n";
    AppendFields(body->trailers(), &log);
    body.reset();
    if (++messages == kMaxMessages) dead = true;
  };
  for (size_t end : ends) {
    buf.append(bytes.substr(from, end - from));
    from = end;
    while (!dead) {
      if (!body) {
        size_t consumed = 0;
        http1::ParseStatus st = parser.Parse(buf, method, &consumed);
        if (st == http1::ParseStatus::kNeedMore) break;
        if (st == http1::ParseStatus::kError) {
          log += "head error " +
                 std::to_string(static_cast<int>(parser.error().kind)) + " " +
                 parser.error().detail + "\n";
          dead = true;
          break;
        }
        const http1::ResponseHead& h = parser.head();
        log += "head " + std::to_string(h.status) + " " + h.reason + " 1." +
               std::to_string(h.version_minor) + " framing " +
               std::to_string(static_cast<int>(h.framing)) + " cl " +
               std::to_string(h.content_length) + " ka " +
               std::to_string(h.keep_alive) + "\n";
        AppendFields(h.headers, &log);
        if (consumed == 0 || consumed > buf.size()) __builtin_trap();
        buf.erase(0, consumed);
        body.emplace(h.framing, h.content_length, max_body);
        payload.clear();
      }
      if (!DecodeBodyStep(*body, &buf, &payload, &log)) {
        dead = true;
        break;
      }
      if (!body->done()) break;
      finish_body();
    }
    if (dead) break;
  }
  if (!dead && body) {
    // The app closed the connection.
    body->OnEof();
    if (body->failed()) {
      log += "eof error " + body->error().detail + "\n";
    } else if (body->done()) {
      finish_body();
    }
  }
  log += "left " + std::to_string(dead ? 0 : buf.size()) + "\n";
  return log;
}

}  // namespace
}  // namespace forkd::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace forkd::fuzz;
  static constexpr std::string_view kMethods[] = {"GET", "HEAD", "CONNECT",
                                                  "POST"};
  Input in(data, size);
  const uint8_t choice = in.Byte();
  const std::string_view method = kMethods[choice % 4];
  const uint64_t max_body = (choice & 4) ? 32 : 0;
  const uint16_t seed = in.Word();
  const std::string_view bytes = in.rest();
  const std::string whole =
      Transcript(bytes, method, max_body, OnePiece(bytes.size()));
  if (Transcript(bytes, method, max_body, ByteByByte(bytes.size())) != whole) {
    __builtin_trap();
  }
  if (Transcript(bytes, method, max_body,
                 SplitPlan(bytes.size(), seed, 1 + seed % 97)) != whole) {
    __builtin_trap();
  }
  return 0;
}
