#include "server/proxyproto/proxy_header.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace forkd::proxyproto {
namespace {

const std::string kSig("\x0D\x0A\x0D\x0A\x00\x0D\x0A\x51\x55\x49\x54\x0A", 12);

std::string U16(uint16_t v) {
  return std::string{static_cast<char>(v >> 8), static_cast<char>(v & 0xFF)};
}

// A v2 header: version/command byte, family/transport byte, then `body`.
std::string V2(uint8_t ver_cmd, uint8_t fam, const std::string& body) {
  return kSig + std::string{static_cast<char>(ver_cmd), static_cast<char>(fam)} +
         U16(static_cast<uint16_t>(body.size())) + body;
}

std::string Inet4Block() {
  // 203.0.113.7:51234 -> 192.0.2.1:443
  return std::string("\xCB\x00\x71\x07\xC0\x00\x02\x01", 8) + U16(51234) +
         U16(443);
}

std::string Inet6Block() {
  std::string src(16, '\0'), dst(16, '\0');
  src[0] = '\x20'; src[1] = '\x01'; src[2] = '\x0d'; src[3] = '\xb8';
  src[15] = '\x01';  // 2001:db8::1
  dst[0] = '\x20'; dst[1] = '\x01'; dst[2] = '\x0d'; dst[3] = '\xb8';
  dst[15] = '\x02';  // 2001:db8::2
  return src + dst + U16(1234) + U16(8443);
}

// Every prefix must say "need more" or already the whole input's verdict.
void ExpectSplitsAgree(const std::string& input) {
  ParseResult whole = ParseProxyHeader(input);
  for (size_t k = 0; k <= input.size(); ++k) {
    ParseResult part = ParseProxyHeader(std::string_view(input).substr(0, k));
    if (part.status == ParseStatus::kNeedMore) continue;
    ASSERT_EQ(part.status, whole.status) << "split at " << k;
    EXPECT_EQ(part.consumed, whole.consumed) << "split at " << k;
    EXPECT_EQ(part.header, whole.header) << "split at " << k;
    EXPECT_EQ(part.error, whole.error) << "split at " << k;
  }
}

TEST(ProxyHeaderTest, V1Tcp4) {
  std::string in = "PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\nGET / HTTP/1.1";
  ParseResult r = ParseProxyHeader(in);
  ASSERT_EQ(r.status, ParseStatus::kDone) << r.error;
  EXPECT_EQ(r.consumed, in.find('\n') + 1);
  EXPECT_FALSE(r.header.local);
  EXPECT_EQ(r.header.source_address, "203.0.113.7");
  EXPECT_EQ(r.header.source_port, 51234);
  EXPECT_EQ(r.header.destination_address, "192.0.2.1");
  EXPECT_EQ(r.header.destination_port, 443);
  ExpectSplitsAgree(in);
}

TEST(ProxyHeaderTest, V1Tcp6IsCanonicalised) {
  std::string in = "PROXY TCP6 2001:DB8:0:0::1 ::ffff:192.0.2.1 0 65535\r\n";
  ParseResult r = ParseProxyHeader(in);
  ASSERT_EQ(r.status, ParseStatus::kDone) << r.error;
  EXPECT_EQ(r.consumed, in.size());
  EXPECT_EQ(r.header.source_address, "2001:db8::1");
  EXPECT_EQ(r.header.destination_address, "::ffff:192.0.2.1");
  EXPECT_EQ(r.header.source_port, 0);
  EXPECT_EQ(r.header.destination_port, 65535);
  ExpectSplitsAgree(in);
}

TEST(ProxyHeaderTest, V1Unknown) {
  for (std::string in : {std::string("PROXY UNKNOWN\r\n"),
                         std::string("PROXY UNKNOWN ffff::1 ::2 1 2\r\nxyz")}) {
    ParseResult r = ParseProxyHeader(in);
    ASSERT_EQ(r.status, ParseStatus::kDone) << in;
    EXPECT_TRUE(r.header.local);
    EXPECT_EQ(r.header.source_address, "");
    EXPECT_EQ(r.consumed, in.find('\n') + 1);
    ExpectSplitsAgree(in);
  }
}

TEST(ProxyHeaderTest, V1LongestHeaderFits) {
  std::string in =
      "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
  ASSERT_EQ(in.size(), kMaxV1Length - 3);  // the spec's 107 has room
  EXPECT_EQ(ParseProxyHeader(in).status, ParseStatus::kDone);
  std::string unknown = "PROXY UNKNOWN " + std::string(91, 'x') + "\r\n";
  ASSERT_EQ(unknown.size(), kMaxV1Length);
  EXPECT_EQ(ParseProxyHeader(unknown).status, ParseStatus::kDone);
}

TEST(ProxyHeaderTest, V1Malformed) {
  const std::vector<std::string> bad = {
      "PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\n",    // bare LF
      "PROXY TCP4 203.0.113.7 192.0.2.1 51234 443\r\r\n",
      "PROXY TCP4 203.0.113.7  192.0.2.1 51234 443\r\n",  // two spaces
      "PROXY TCP4 203.0.113.7 192.0.2.1 51234\r\n",       // a port missing
      "PROXY TCP4 203.0.113.7 192.0.2.1 51234 443 1\r\n",
      "PROXY TCP4 2001:db8::1 192.0.2.1 1 2\r\n",          // v6 in TCP4
      "PROXY TCP6 203.0.113.7 2001:db8::1 1 2\r\n",        // v4 in TCP6
      "PROXY TCP4 203.0.113.256 192.0.2.1 1 2\r\n",
      "PROXY TCP4 203.0.113.07 192.0.2.1 1 2\r\n",
      "PROXY TCP4 203.0.113.7 192.0.2.1 65536 2\r\n",
      "PROXY TCP4 203.0.113.7 192.0.2.1 -1 2\r\n",
      "PROXY TCP4 203.0.113.7 192.0.2.1 01 2\r\n",
      "PROXY TCP4 203.0.113.7 192.0.2.1 1 +2\r\n",
      "PROXY UDP4 203.0.113.7 192.0.2.1 1 2\r\n",
      "PROXY tcp4 203.0.113.7 192.0.2.1 1 2\r\n",
      "PROXY \r\n",
      "PROXY UNKNOWNX\r\n",
      std::string("PROXY TCP4 203.0.113.7\0 192.0.2.1 1 2\r\n", 41),
      "PROXY TCP4 " + std::string(120, '1') + "\r\n",  // over 107 bytes
      "PROXYTCP4 203.0.113.7 192.0.2.1 1 2\r\n",
      "GET / HTTP/1.1\r\nHost: x\r\n\r\n",                // no header at all
      "\x16\x03\x01\x02\x00\x01",                        // a TLS hello
      "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
  };
  for (const std::string& in : bad) {
    ParseResult r = ParseProxyHeader(in);
    EXPECT_EQ(r.status, ParseStatus::kError) << in;
    EXPECT_FALSE(r.error.empty()) << in;
    ExpectSplitsAgree(in);
  }
}

TEST(ProxyHeaderTest, V1WithoutLfWaitsUpTo107Bytes) {
  std::string in = "PROXY UNKNOWN " + std::string(80, 'x');
  EXPECT_EQ(ParseProxyHeader(in).status, ParseStatus::kNeedMore);
  in.append(40, 'x');
  ParseResult r = ParseProxyHeader(in);
  EXPECT_EQ(r.status, ParseStatus::kError);
  EXPECT_EQ(r.error, "v1 header longer than 107 bytes");
}

TEST(ProxyHeaderTest, NeedMoreOnEveryPrefixOfASignature) {
  EXPECT_EQ(ParseProxyHeader("").status, ParseStatus::kNeedMore);
  EXPECT_EQ(ParseProxyHeader("PROX").status, ParseStatus::kNeedMore);
  EXPECT_EQ(ParseProxyHeader(kSig.substr(0, 5)).status,
            ParseStatus::kNeedMore);
  EXPECT_EQ(ParseProxyHeader("PROXI").status, ParseStatus::kError);
}

TEST(ProxyHeaderTest, V2ProxyInet) {
  std::string in = V2(0x21, 0x11, Inet4Block()) + "GET /";
  ParseResult r = ParseProxyHeader(in);
  ASSERT_EQ(r.status, ParseStatus::kDone) << r.error;
  EXPECT_EQ(r.consumed, 16u + 12u);
  EXPECT_FALSE(r.header.local);
  EXPECT_EQ(r.header.source_address, "203.0.113.7");
  EXPECT_EQ(r.header.source_port, 51234);
  EXPECT_EQ(r.header.destination_address, "192.0.2.1");
  EXPECT_EQ(r.header.destination_port, 443);
  ExpectSplitsAgree(in);
}

TEST(ProxyHeaderTest, V2ProxyInet6) {
  std::string in = V2(0x21, 0x21, Inet6Block());
  ParseResult r = ParseProxyHeader(in);
  ASSERT_EQ(r.status, ParseStatus::kDone) << r.error;
  EXPECT_EQ(r.consumed, in.size());
  EXPECT_EQ(r.header.source_address, "2001:db8::1");
  EXPECT_EQ(r.header.destination_address, "2001:db8::2");
  EXPECT_EQ(r.header.source_port, 1234);
  EXPECT_EQ(r.header.destination_port, 8443);
  ExpectSplitsAgree(in);
}

TEST(ProxyHeaderTest, V2TlvsAreSkipped) {
  // PP2_TYPE_ALPN "h2", PP2_TYPE_AUTHORITY, an AWS-style custom TLV, NOOP.
  std::string tlvs = std::string("\x01", 1) + U16(2) + "h2" +
                     std::string("\x02", 1) + U16(11) + "example.com" +
                     std::string("\xEA", 1) + U16(5) + "\x01vpce" +
                     std::string("\x04", 1) + U16(0);
  std::string in = V2(0x21, 0x11, Inet4Block() + tlvs) + "rest";
  ParseResult r = ParseProxyHeader(in);
  ASSERT_EQ(r.status, ParseStatus::kDone) << r.error;
  EXPECT_EQ(r.consumed, in.size() - 4);
  EXPECT_EQ(r.header.source_address, "203.0.113.7");
  ExpectSplitsAgree(in);
}

TEST(ProxyHeaderTest, V2LocalKeepsThePeer) {
  // A health check from the balancer itself; the address block is skipped.
  for (const std::string& in :
       {V2(0x20, 0x00, ""), V2(0x20, 0x11, Inet4Block()),
        V2(0x20, 0x11, "xy")}) {
    ParseResult r = ParseProxyHeader(in);
    ASSERT_EQ(r.status, ParseStatus::kDone) << r.error;
    EXPECT_TRUE(r.header.local);
    EXPECT_EQ(r.consumed, in.size());
    ExpectSplitsAgree(in);
  }
}

TEST(ProxyHeaderTest, V2UnspecAndUnix) {
  ParseResult unspec = ParseProxyHeader(V2(0x21, 0x00, "ignored"));
  ASSERT_EQ(unspec.status, ParseStatus::kDone);
  EXPECT_TRUE(unspec.header.local);
  std::string paths(216, '\0');
  paths.replace(0, 9, "/run/a.sk");
  ParseResult unix_client = ParseProxyHeader(V2(0x21, 0x31, paths));
  ASSERT_EQ(unix_client.status, ParseStatus::kDone) << unix_client.error;
  EXPECT_FALSE(unix_client.header.local);
  EXPECT_EQ(unix_client.header.source_address, "");
  EXPECT_EQ(unix_client.consumed, 16u + 216u);
}

TEST(ProxyHeaderTest, V2Malformed) {
  std::string block = Inet4Block();
  const std::vector<std::string> bad = {
      V2(0x11, 0x11, block),                         // version 1
      V2(0x31, 0x11, block),                         // version 3
      V2(0x22, 0x11, block),                         // command 2
      V2(0x21, 0x41, block),                         // family 4
      V2(0x21, 0x13, block),                         // transport 3
      V2(0x21, 0x11, block.substr(0, 11)),           // short for INET
      V2(0x21, 0x21, block),                         // short for INET6
      V2(0x21, 0x31, block),                         // short for UNIX
      V2(0x21, 0x11, block + "\x01\x00"),            // truncated TLV head
      V2(0x21, 0x11, block + std::string("\x01\x00\x05" "ab", 5)),  // long TLV
      kSig.substr(0, 11) + "X",                      // a bad signature
  };
  for (const std::string& in : bad) {
    ParseResult r = ParseProxyHeader(in);
    EXPECT_EQ(r.status, ParseStatus::kError) << testing::PrintToString(in);
    EXPECT_FALSE(r.error.empty());
    ExpectSplitsAgree(in);
  }
}

TEST(ProxyHeaderTest, V2WaitsForItsWholeLength) {
  std::string in = V2(0x21, 0x11, Inet4Block() + std::string(1000, '\x04'));
  // Its length field says 1012 bytes follow: every shorter prefix waits.
  EXPECT_EQ(ParseProxyHeader(std::string_view(in).substr(0, 500)).status,
            ParseStatus::kNeedMore);
  EXPECT_EQ(ParseProxyHeader(std::string_view(in).substr(0, 16)).status,
            ParseStatus::kNeedMore);
}

TEST(ProxyHeaderTest, NeverReadsPastTheView) {
  // A view into a larger buffer whose tail would complete the header: the
  // parser must stop at the view's end.
  std::string buffer = V2(0x21, 0x11, Inet4Block());
  std::string_view view(buffer.data(), buffer.size() - 1);
  EXPECT_EQ(ParseProxyHeader(view).status, ParseStatus::kNeedMore);
  std::string v1 = "PROXY TCP4 203.0.113.7 192.0.2.1 1 2\r\n";
  EXPECT_EQ(ParseProxyHeader(std::string_view(v1).substr(0, v1.size() - 1))
                .status,
            ParseStatus::kNeedMore);
}

}  // namespace
}  // namespace forkd::proxyproto
