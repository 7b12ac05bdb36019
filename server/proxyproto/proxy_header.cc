#include "server/proxyproto/proxy_header.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace forkd::proxyproto {
namespace {

constexpr std::string_view kV1Signature = "PROXY ";
constexpr std::string_view kV2Signature{
    "\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A", 12};
constexpr size_t kV2FixedLength = 16;

// v2 address families (high nibble of byte 13) and the address block each
// needs at least (proxy-protocol.txt 2.2).
constexpr uint8_t kFamilyUnspec = 0x0;
constexpr uint8_t kFamilyInet = 0x1;
constexpr uint8_t kFamilyInet6 = 0x2;
constexpr uint8_t kFamilyUnix = 0x3;
constexpr size_t kInetBlock = 12;
constexpr size_t kInet6Block = 36;
constexpr size_t kUnixBlock = 216;

ParseResult Error(std::string reason) {
  ParseResult r;
  r.status = ParseStatus::kError;
  r.error = std::move(reason);
  return r;
}

// True when the first min(len, prefix) bytes of `bytes` equal `prefix`.
bool MatchesSoFar(std::string_view bytes, std::string_view prefix) {
  size_t n = std::min(bytes.size(), prefix.size());
  return bytes.substr(0, n) == prefix.substr(0, n);
}

// inet_pton wants a NUL-terminated string; the field is at most 39 bytes
// of an address (the v1 line is at most 107).
bool ParseAddress(std::string_view text, int family, void* out) {
  char buf[64];
  if (text.empty() || text.size() >= sizeof(buf)) return false;
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  return inet_pton(family, buf, out) == 1;
}

std::string FormatAddress(int family, const void* addr) {
  char text[INET6_ADDRSTRLEN] = {0};
  if (inet_ntop(family, addr, text, sizeof(text)) == nullptr) return "";
  return text;
}

// Decimal 0..65535, no sign, no leading zero but "0" itself.
bool ParsePort(std::string_view text, uint16_t* port) {
  if (text.empty() || text.size() > 5) return false;
  if (text.size() > 1 && text[0] == '0') return false;
  uint32_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  if (v > 65535) return false;
  *port = static_cast<uint16_t>(v);
  return true;
}

ParseResult ParseV1(std::string_view bytes) {
  // Decided only at the line's LF (or at the length limit), so a verdict
  // never depends on how the bytes were split.
  std::string_view window = bytes.substr(0, kMaxV1Length);
  size_t lf = window.find('\n');
  if (lf == std::string_view::npos) {
    if (bytes.size() >= kMaxV1Length) {
      return Error("v1 header longer than 107 bytes");
    }
    return {};
  }
  if (lf == 0 || window[lf - 1] != '\r') {
    return Error("v1 header line does not end in CRLF");
  }
  std::string_view line = window.substr(0, lf - 1);
  if (line.find('\r') != std::string_view::npos ||
      line.find('\0') != std::string_view::npos) {
    return Error("v1 header has a stray CR or NUL");
  }
  line.remove_prefix(kV1Signature.size());
  ParseResult r;
  r.consumed = lf + 1;
  if (line == "UNKNOWN" || line.starts_with("UNKNOWN ")) {
    // The sender cannot say (a health check, an unknown protocol): the
    // rest of the line is to be ignored (2.1).
    r.status = ParseStatus::kDone;
    r.header.local = true;
    return r;
  }
  std::vector<std::string_view> fields;
  size_t start = 0;
  while (true) {
    size_t sp = line.find(' ', start);
    fields.push_back(line.substr(start, sp - start));
    if (sp == std::string_view::npos) break;
    start = sp + 1;
  }
  if (fields.size() != 5) {
    return Error(
        "v1 header is not \"PROXY TCP4|TCP6 SRC DST SRCPORT DSTPORT\"");
  }
  int family;
  if (fields[0] == "TCP4") {
    family = AF_INET;
  } else if (fields[0] == "TCP6") {
    family = AF_INET6;
  } else {
    return Error("v1 header names an unknown protocol");
  }
  in6_addr src, dst;  // large enough for either family
  if (!ParseAddress(fields[1], family, &src) ||
      !ParseAddress(fields[2], family, &dst)) {
    return Error(family == AF_INET ? "v1 header has a bad IPv4 address"
                                   : "v1 header has a bad IPv6 address");
  }
  if (!ParsePort(fields[3], &r.header.source_port) ||
      !ParsePort(fields[4], &r.header.destination_port)) {
    return Error("v1 header has a bad port");
  }
  r.header.source_address = FormatAddress(family, &src);
  r.header.destination_address = FormatAddress(family, &dst);
  r.status = ParseStatus::kDone;
  return r;
}

uint16_t ReadU16(std::string_view b, size_t at) {
  return static_cast<uint16_t>(static_cast<uint8_t>(b[at]) << 8 |
                               static_cast<uint8_t>(b[at + 1]));
}

ParseResult ParseV2(std::string_view bytes) {
  // Each check needs only bytes it waits for, so the verdict on a prefix
  // is the verdict on the whole.
  if (bytes.size() > kV2Signature.size()) {
    uint8_t ver_cmd = static_cast<uint8_t>(bytes[12]);
    if ((ver_cmd >> 4) != 2) return Error("v2 header has a bad version");
    if ((ver_cmd & 0xF) > 1) return Error("v2 header has an unknown command");
  }
  if (bytes.size() > 13) {
    uint8_t fam = static_cast<uint8_t>(bytes[13]);
    if ((fam >> 4) > kFamilyUnix) {
      return Error("v2 header has an unknown address family");
    }
    if ((fam & 0xF) > 2) return Error("v2 header has an unknown transport");
  }
  if (bytes.size() < kV2FixedLength) return {};
  bool local = (static_cast<uint8_t>(bytes[12]) & 0xF) == 0;
  uint8_t family = static_cast<uint8_t>(bytes[13]) >> 4;
  size_t length = ReadU16(bytes, 14);
  size_t block = 0;
  switch (family) {
    case kFamilyInet:
      block = kInetBlock;
      break;
    case kFamilyInet6:
      block = kInet6Block;
      break;
    case kFamilyUnix:
      block = kUnixBlock;
      break;
    default:
      break;
  }
  // LOCAL's addresses are to be skipped whatever they are (2.2).
  if (!local && length < block) {
    return Error("v2 header too short for its address family");
  }
  if (bytes.size() < kV2FixedLength + length) return {};
  std::string_view body = bytes.substr(kV2FixedLength, length);

  ParseResult r;
  r.consumed = kV2FixedLength + length;
  if (!local && family != kFamilyUnspec) {
    // TLVs (2.2.x) follow the addresses: each must fit; their contents
    // (ALPN, authority, CRC32C, SSL...) are not used.
    size_t at = block;
    while (at < body.size()) {
      if (body.size() - at < 3) return Error("v2 header has a truncated TLV");
      size_t tlv_length = ReadU16(body, at + 1);
      if (body.size() - at - 3 < tlv_length) {
        return Error("v2 header has a TLV longer than the header");
      }
      at += 3 + tlv_length;
    }
  }
  r.status = ParseStatus::kDone;
  if (local || family == kFamilyUnspec) {
    r.header.local = true;
    return r;
  }
  ProxyHeader& h = r.header;
  if (family == kFamilyInet) {
    h.source_address = FormatAddress(AF_INET, body.data());
    h.destination_address = FormatAddress(AF_INET, body.data() + 4);
    h.source_port = ReadU16(body, 8);
    h.destination_port = ReadU16(body, 10);
  } else if (family == kFamilyInet6) {
    h.source_address = FormatAddress(AF_INET6, body.data());
    h.destination_address = FormatAddress(AF_INET6, body.data() + 16);
    h.source_port = ReadU16(body, 32);
    h.destination_port = ReadU16(body, 34);
  }
  // kFamilyUnix: paths, not addresses; the client is a unix-socket one ("").
  return r;
}

}  // namespace

ParseResult ParseProxyHeader(std::string_view bytes) {
  if (bytes.empty()) return {};
  if (bytes[0] == kV1Signature[0]) {
    if (!MatchesSoFar(bytes, kV1Signature)) {
      return Error("no PROXY protocol header");
    }
    if (bytes.size() < kV1Signature.size()) return {};
    return ParseV1(bytes);
  }
  if (!MatchesSoFar(bytes, kV2Signature)) {
    return Error("no PROXY protocol header");
  }
  if (bytes.size() < kV2Signature.size()) return {};
  return ParseV2(bytes);
}

}  // namespace forkd::proxyproto
