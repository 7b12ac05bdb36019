// HTTP/1 framing and read helpers the parts of ProxySession share
// (proxy_session.cc: the client side; proxy_session_app.cc: the app
// connection; proxy_session_response.cc: the response to the client).
// Internal to the proxy folder.
#ifndef FORKD_SERVER_PROXY_PROXY_SESSION_INTERNAL_H_
#define FORKD_SERVER_PROXY_PROXY_SESSION_INTERNAL_H_

#include <sys/types.h>

#include <cstddef>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "server/common/buffer.h"
#include "server/http1/fields.h"
#include "server/http1/message.h"

namespace forkd::proxy::session_internal {

inline constexpr size_t kReadChunk = 16 * 1024;

// Reads up to kReadChunk bytes with `read_fn` (read(2) semantics) and
// appends them to *buf. Unless *buf already has room for a whole chunk (a
// big transfer, read in place), the bytes land in a per-thread scratch area
// first: a 40-byte request then costs its connection a few hundred bytes of
// buffer instead of a 16 KiB chunk with a dirty page, and the kernel copies
// into one cache-hot area instead of a cold one per connection.
template <typename ReadFn>
inline ssize_t ReadChunk(Buffer* buf, ReadFn&& read_fn) {
  if (buf->room() >= kReadChunk) {
    ssize_t n = read_fn(buf->Reserve(kReadChunk), kReadChunk);
    if (n > 0) buf->Commit(static_cast<size_t>(n));
    return n;
  }
  thread_local char scratch[kReadChunk];
  ssize_t n = read_fn(scratch, kReadChunk);
  if (n > 0) buf->Append({scratch, static_cast<size_t>(n)});
  return n;
}

inline void AppendChunk(Buffer* out, std::string_view data) {
  if (data.empty()) return;
  char size[24];
  int n = snprintf(size, sizeof(size), "%zx\r\n", data.size());
  out->Append(std::string_view(size, n));
  out->Append(data);
  out->Append("\r\n");
}

inline void AppendHeader(std::string* out, std::string_view name,
                         std::string_view value) {
  out->append(name);
  out->append(": ");
  out->append(value);
  out->append("\r\n");
}

// The trailer fields of `trailers` that may be forwarded, as field lines
// ("" when none may).
inline std::string ForwardableTrailers(
    const std::vector<http1::Header>& trailers) {
  std::string lines;
  for (const http1::Header& f : trailers) {
    if (!http1::IsAllowedInTrailer(f.name)) continue;
    AppendHeader(&lines, f.name, f.value);
  }
  return lines;
}

// The same as a field list, for a client that takes trailers structured.
inline std::vector<http1::Header> ForwardableTrailerFields(
    const std::vector<http1::Header>& trailers) {
  std::vector<http1::Header> fields;
  for (const http1::Header& f : trailers) {
    if (http1::IsAllowedInTrailer(f.name)) fields.push_back(f);
  }
  return fields;
}

// The last chunk of a chunked message and its trailer section (RFC 9112
// 7.1): `trailer_lines` from ForwardableTrailers().
inline void AppendLastChunk(Buffer* out, std::string_view trailer_lines) {
  if (trailer_lines.empty()) {
    out->Append("0\r\n\r\n");
    return;
  }
  out->Append("0\r\n");
  out->Append(trailer_lines);
  out->Append("\r\n");
}

}  // namespace forkd::proxy::session_internal

#endif  // FORKD_SERVER_PROXY_PROXY_SESSION_INTERNAL_H_
