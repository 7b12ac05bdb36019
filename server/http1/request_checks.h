// The checks of a request head that do not depend on how it arrived: the
// HTTP/1.1 parser runs them on the head it parsed from bytes, and the proxy
// runs them on a head an HTTP/2 stream delivered already parsed, so both
// clients get the same answer for the same head. Pure functions, no I/O.
#ifndef FORKD_SERVER_HTTP1_REQUEST_CHECKS_H_
#define FORKD_SERVER_HTTP1_REQUEST_CHECKS_H_

#include <string>
#include <string_view>

#include "server/http1/message.h"

namespace forkd::http1 {

// The request line's method is a token and its target a non-empty run of
// allowed bytes (RFC 9112 3). The parser checks the version between this
// and CheckTargetForm(), so a line with several faults keeps its answer.
Error CheckMethodAndTarget(std::string_view method, std::string_view target);

// The target is the request-target form its method calls for (RFC 9112
// 3.2); userinfo is refused. On success *absolute_authority is the
// authority of an absolute-form target, else "".
Error CheckTargetForm(std::string_view method, std::string_view target,
                      std::string* absolute_authority);

// Host (RFC 9112 3.2: exactly one for HTTP/1.1, valid), the body length
// (RFC 9112 6.1, 6.3: Content-Length, Transfer-Encoding, --limit-request-body
// via limits.max_body) and what the fields say of the connection. On success
// fills head->framing, content_length, keep_alive, expect_continue and
// upgrade from head->headers and head->version_minor.
Error CheckRequestHead(const Limits& limits, RequestHead* head);

// The size limits of a head that arrived whole (an HTTP/2 stream's), judged
// on the head as the HTTP/1.1 request line and field lines it stands for:
// "METHOD TARGET HTTP/1.1" within --limit-request-line (414), at most
// --limit-request-fields fields, each "name: value" line within
// --limit-request-field-size and the whole within the parser's header cap
// (431). Fields are judged in order and the first one over a limit decides,
// as the parser does line by line. The count is the head's own fields: for
// an HTTP/2 stream the client's fields plus the Host made from :authority.
// *head_bytes (may be null) gets the size of that HTTP/1.1 head.
Error CheckHeadLimits(const Limits& limits, const RequestHead& head,
                      size_t* head_bytes);

// The largest request head the parser takes, request line included.
size_t RequestHeadCap(const Limits& limits);

}  // namespace forkd::http1

#endif  // FORKD_SERVER_HTTP1_REQUEST_CHECKS_H_
