// What the HTTP/1 fuzz targets write down of a parse, shared by the
// request and response targets: their transcripts are compared between
// splits, so both must describe fields and bodies the same way.
#ifndef FORKD_TESTS_FUZZ_HTTP1_TRANSCRIPT_H_
#define FORKD_TESTS_FUZZ_HTTP1_TRANSCRIPT_H_

#include <string>
#include <vector>

#include "server/http1/body_decoder.h"
#include "server/http1/message.h"

namespace forkd::fuzz {

inline void AppendFields(const std::vector<http1::Header>& fields,
                         std::string* out) {
  for (const http1::Header& h : fields) {
    out->append(h.name).append(":").append(h.value).push_back('\n');
  }
}

// Feeds `buf` to `body`, erasing what it used and adding the payload to
// `payload`. False once the body failed (written to `log`); true while it
// needs more bytes or is done (body.done()).
inline bool DecodeBodyStep(http1::BodyDecoder& body, std::string* buf,
                           std::string* payload, std::string* log) {
  size_t used = body.Decode(*buf, payload);
  if (used > buf->size()) __builtin_trap();
  buf->erase(0, used);
  if (!body.failed()) return true;
  *log += "body error " + std::to_string(static_cast<int>(body.error().kind)) +
          " " + body.error().detail + " after " + *payload + "\n";
  return false;
}

}  // namespace forkd::fuzz

#endif  // FORKD_TESTS_FUZZ_HTTP1_TRANSCRIPT_H_
