#include "server/http2/outgoing_fields.h"

#include <algorithm>

#include "absl/strings/ascii.h"

namespace forkd::http2 {
namespace {

bool IsConnectionSpecific(std::string_view lower_name,
                          const std::vector<std::string>& connection_tokens) {
  static constexpr std::string_view kNames[] = {
      "connection", "keep-alive", "proxy-connection", "transfer-encoding",
      "upgrade",    "host",       "http2-settings"};
  return std::find(std::begin(kNames), std::end(kNames), lower_name) !=
             std::end(kNames) ||
         std::find(connection_tokens.begin(), connection_tokens.end(),
                   lower_name) != connection_tokens.end();
}

}  // namespace

void OutgoingFields::AddPseudo(std::string_view name, std::string_view value) {
  const std::string& n = owned_.emplace_back(name);
  const std::string& v = owned_.emplace_back(value);
  Add(n, v);
}

void OutgoingFields::AddRegular(const std::vector<http1::Header>& headers,
                                bool keep_te_trailers) {
  std::vector<std::string> tokens = http1::ConnectionTokens(headers);
  for (const http1::Header& h : headers) {
    std::string name = absl::AsciiStrToLower(
        absl::string_view(h.name.data(), h.name.size()));
    if (name == "te") {
      if (!keep_te_trailers || !http1::TeAcceptsTrailers(h.value)) continue;
      AddPseudo("te", "trailers");  // owned copies, like a pseudo-header
      continue;
    }
    if (name.empty() || name[0] == ':' || IsConnectionSpecific(name, tokens) ||
        !nghttp2_check_header_name(
            reinterpret_cast<const uint8_t*>(name.data()), name.size()) ||
        !nghttp2_check_header_value_rfc9113(
            reinterpret_cast<const uint8_t*>(h.value.data()), h.value.size())) {
      continue;
    }
    Add(owned_.emplace_back(std::move(name)), h.value);
  }
}

void OutgoingFields::Add(std::string_view name, std::string_view value) {
  nghttp2_nv nv;
  nv.name = reinterpret_cast<uint8_t*>(const_cast<char*>(name.data()));
  nv.namelen = name.size();
  nv.value = reinterpret_cast<uint8_t*>(const_cast<char*>(value.data()));
  nv.valuelen = value.size();
  nv.flags = NGHTTP2_NV_FLAG_NONE;
  nv_.push_back(nv);
}

}  // namespace forkd::http2
