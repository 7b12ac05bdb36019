// libFuzzer target: the HTTP/2 server session (server/http2/http2_session)
// fed a client's bytes after the connection preface, in pieces the input
// chooses, while a handler answers streams the ways the proxy does
// (at once, after the body with trailers, reset, never) and the output is
// drained after every read. Checks the Handler contract too: every stream
// the handler saw is closed exactly once, and nothing arrives for a
// stream after its close.
//
// Input: [settings] [split seed: 2 bytes] [client frames...]
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "server/common/buffer.h"
#include "server/http2/http2_session.h"
#include "tests/fuzz/fuzz_input.h"

namespace forkd::fuzz {
namespace {

using http2::Http2Session;

constexpr std::string_view kPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

class AnsweringHandler : public Http2Session::Handler {
 public:
  Http2Session* session = nullptr;

  void OnRequestHeaders(int32_t id, std::string_view, std::string_view,
                        std::string_view, std::string_view,
                        std::vector<http1::Header>, bool end_stream) override {
    if (state_.count(id) != 0) __builtin_trap();  // a stream opened twice
    state_[id] = kOpen;
    switch ((id >> 1) % 4) {
      case 0:
        (void)session->SubmitResponse(id, 200, {{"x-a", "1"}}, false);
        (void)session->AppendResponseData(id, "hello");
        (void)session->EndResponse(id);
        break;
      case 1:
        if (end_stream) Answer(id);
        break;
      case 2:
        session->ResetStream(id, http2::kInternalError);
        break;
      default:
        break;  // never answered
    }
  }
  void OnRequestData(int32_t id, std::string_view data) override {
    Check(id);
    session->ConsumeRequestData(id, data.size());
  }
  void OnRequestEnd(int32_t id, std::vector<http1::Header>) override {
    Check(id);
    if ((id >> 1) % 4 == 1) Answer(id);
  }
  void OnStreamClosed(int32_t id, uint32_t) override {
    auto it = state_.find(id);
    if (it != state_.end() && it->second == kClosed) __builtin_trap();
    state_[id] = kClosed;
  }

 private:
  enum State { kOpen, kClosed };
  void Check(int32_t id) {
    auto it = state_.find(id);
    if (it == state_.end() || it->second != kOpen) __builtin_trap();
  }
  void Answer(int32_t id) {
    (void)session->SubmitInterim(id, 100, {});
    (void)session->SubmitResponse(id, 200, {}, false);
    (void)session->AppendResponseData(id, std::string(3000, 'b'));
    (void)session->EndResponse(id, std::vector<http1::Header>{{"x-t", "1"}});
  }
  std::map<int32_t, State> state_;
};

}  // namespace
}  // namespace forkd::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace forkd::fuzz;
  using forkd::http2::Http2Session;
  Input in(data, size);
  const uint8_t choice = in.Byte();
  const uint16_t seed = in.Word();
  forkd::http2::Http2Settings settings;
  if (choice & 1) {
    settings.max_concurrent_streams = 2;
    settings.initial_window_size = 16;
    settings.max_header_list_size = 256;
  }
  int64_t now = 0;
  forkd::http2::Http2Context ctx;
  ctx.now_ms = [&now] { return now; };
  if (choice & 2) {
    ctx.limits.max_resets_per_second = 3;
    ctx.limits.max_pings_per_second = 3;
    ctx.limits.max_settings_per_second = 3;
    ctx.limits.max_continuations = 1;
  }
  AnsweringHandler handler;
  auto created = Http2Session::Create(settings, &handler, &ctx);
  if (!created.ok()) __builtin_trap();
  std::unique_ptr<Http2Session> session = std::move(*created);
  handler.session = session.get();

  const std::string bytes = std::string(kPreface) + std::string(in.rest());
  forkd::Buffer out;
  size_t from = 0;
  for (size_t end : SplitPlan(bytes.size(), seed, 1 + seed % 512)) {
    now += 7;
    bool ok = session->Receive(bytes.data() + from, end - from).ok();
    from = end;
    // A slow reader sometimes: the client's window governs what leaves.
    session->TakeOutput(&out, (seed & 1) ? 100 : 64 * 1024);
    out.Clear();
    if (!ok || !session->WantRead()) break;
  }
  if (choice & 4) session->StartGracefulShutdown();
  for (int i = 0; i < 64 && session->WantWrite(); ++i) {
    session->TakeOutput(&out);
    out.Clear();
  }
  session->Abort();
  return 0;
}
