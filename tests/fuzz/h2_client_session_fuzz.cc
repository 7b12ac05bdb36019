// libFuzzer target: the HTTP/2 client session towards the app
// (server/upstream/h2_client_session) fed the app's bytes in pieces the
// input chooses, with three requests open (a GET, a POST whose body
// waits on the app's windows, one reset by us) and the output drained
// after every read. Checks that each stream closes once and that no event
// arrives for a stream after its close.
//
// Input: [options] [split seed: 2 bytes] [app frames...]
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "server/common/buffer.h"
#include "server/upstream/h2_client_session.h"
#include "tests/fuzz/fuzz_input.h"

namespace forkd::fuzz {
namespace {

using upstream::H2ClientSession;

class RecordingHandler : public H2ClientSession::Handler {
 public:
  H2ClientSession* session = nullptr;
  bool consume = true;

  void OnResponseHeaders(int32_t id, int status, std::vector<http1::Header>,
                         bool) override {
    if (status < 100 || status > 999) __builtin_trap();
    Check(id);
  }
  void OnResponseData(int32_t id, std::string_view data) override {
    Check(id);
    if (consume) session->ConsumeResponseData(id, data.size());
  }
  void OnResponseEnd(int32_t id, std::vector<http1::Header>) override {
    Check(id);
  }
  void OnRequestDataSent(int32_t id, size_t) override { Check(id); }
  void OnStreamClosed(int32_t id, uint32_t) override {
    Check(id);
    closed_[id] = true;
  }
  void Opened(int32_t id) { closed_[id] = false; }

 private:
  void Check(int32_t id) {
    auto it = closed_.find(id);
    if (it == closed_.end() || it->second) __builtin_trap();
  }
  std::map<int32_t, bool> closed_;
};

}  // namespace
}  // namespace forkd::fuzz

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace forkd::fuzz;
  using forkd::upstream::H2ClientSession;
  Input in(data, size);
  const uint8_t choice = in.Byte();
  const uint16_t seed = in.Word();
  H2ClientSession::Settings settings;
  if (choice & 1) {
    settings.initial_window_size = 16;
    settings.max_header_list_size = 128;
  }
  RecordingHandler handler;
  handler.consume = (choice & 2) == 0;
  auto created = H2ClientSession::Create(settings, &handler);
  if (!created.ok()) __builtin_trap();
  std::unique_ptr<H2ClientSession> session = std::move(*created);
  handler.session = session.get();

  const std::vector<forkd::http1::Header> fields = {{"te", "trailers"},
                                                    {"x-a", "1"}};
  auto open = [&](std::string_view method, bool end_stream) {
    auto id = session->SubmitRequest(method, "http", "app", "/svc/M", fields,
                                     end_stream);
    if (!id.ok()) return 0;
    handler.Opened(*id);
    return *id;
  };
  open("GET", true);
  if (int32_t post = open("POST", false)) {
    (void)session->AppendRequestData(post, std::string(4096, 'p'));
    (void)session->EndRequest(post, {{"x-trailer", "1"}});
  }
  int32_t reset = open("GET", true);

  forkd::Buffer out;
  session->TakeOutput(&out);
  out.Clear();
  if (reset != 0 && (choice & 4)) session->ResetStream(reset, 0x8);
  const std::string_view bytes = in.rest();
  size_t from = 0;
  for (size_t end : SplitPlan(bytes.size(), seed, 1 + seed % 512)) {
    bool ok = session->Receive(bytes.data() + from, end - from).ok();
    from = end;
    session->TakeOutput(&out);
    out.Clear();
    if (!ok) break;
    if (session->CanOpenStream() && (choice & 8)) open("HEAD", true);
  }
  session->Abort(0x8);
  return 0;
}
