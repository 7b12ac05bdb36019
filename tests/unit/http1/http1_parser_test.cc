#include <string>
#include <string_view>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/http1/body_decoder.h"
#include "server/http1/fields.h"
#include "server/http1/message.h"
#include "server/http1/request_parser.h"
#include "server/http1/response_parser.h"

namespace forkd::http1 {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Parses `raw` in one call and expects an error; returns its kind.
ErrorKind RequestError(std::string_view raw, const Limits& limits = Limits()) {
  RequestParser parser(limits);
  size_t consumed = 99;
  ParseStatus status = parser.Parse(raw, &consumed);
  EXPECT_EQ(status, ParseStatus::kError) << "input: " << raw;
  EXPECT_FALSE(parser.error().detail.empty());
  return parser.error().kind;
}

std::string RequestErrorDetail(std::string_view raw,
                               const Limits& limits = Limits()) {
  RequestParser parser(limits);
  size_t consumed = 0;
  EXPECT_EQ(parser.Parse(raw, &consumed), ParseStatus::kError);
  return parser.error().detail;
}

// Parses `raw` in one call and expects success; returns the head.
RequestHead ParseRequest(std::string_view raw,
                         const Limits& limits = Limits()) {
  RequestParser parser(limits);
  size_t consumed = 0;
  ParseStatus status = parser.Parse(raw, &consumed);
  EXPECT_EQ(status, ParseStatus::kDone)
      << "input: " << raw << " error: " << parser.error().detail;
  EXPECT_EQ(consumed, raw.size());
  return parser.head();
}

// Decodes `in` in one call; *consumed gets the count.
std::string DecodeAll(BodyDecoder& decoder, std::string_view in,
                      size_t* consumed) {
  std::string out;
  *consumed = decoder.Decode(in, &out);
  return out;
}

// Feeds `in` one byte at a time, stopping once done or failed.
std::string DecodeByteByByte(BodyDecoder& decoder, std::string_view in,
                             size_t* consumed) {
  std::string out;
  *consumed = 0;
  for (size_t i = 0; i < in.size() && !decoder.done() && !decoder.failed();
       ++i) {
    *consumed += decoder.Decode(in.substr(i, 1), &out);
  }
  return out;
}

ErrorKind ChunkedError(std::string_view in, uint64_t max_body = 0) {
  BodyDecoder decoder(Framing::kChunked, 0, max_body);
  std::string out;
  decoder.Decode(in, &out);
  EXPECT_TRUE(decoder.failed()) << "input: " << in;
  EXPECT_FALSE(decoder.done());
  EXPECT_FALSE(decoder.error().detail.empty());
  // The same verdict when the bytes trickle in.
  BodyDecoder slow(Framing::kChunked, 0, max_body);
  size_t consumed = 0;
  DecodeByteByByte(slow, in, &consumed);
  EXPECT_TRUE(slow.failed()) << "byte by byte: " << in;
  EXPECT_EQ(slow.error().kind, decoder.error().kind);
  return decoder.error().kind;
}

// ---------------------------------------------------------------------------
// Requests: valid messages

TEST(RequestParserTest, ParsesSimpleGet) {
  constexpr std::string_view kRaw =
      "GET /index.html?q=1 HTTP/1.1\r\n"
      "Host: example.com\r\n"
      "User-Agent: test/1.0\r\n"
      "Accept: */*\r\n"
      "\r\n";
  RequestHead head = ParseRequest(kRaw);
  EXPECT_EQ(head.method, "GET");
  EXPECT_EQ(head.target, "/index.html?q=1");
  EXPECT_EQ(head.version_minor, 1);
  ASSERT_EQ(head.headers.size(), 3u);
  EXPECT_EQ(head.headers[0].name, "Host");
  EXPECT_EQ(head.headers[0].value, "example.com");
  EXPECT_EQ(head.headers[1].name, "User-Agent");
  EXPECT_EQ(head.framing, Framing::kNone);
  EXPECT_TRUE(head.keep_alive);
  EXPECT_FALSE(head.expect_continue);
  EXPECT_FALSE(head.upgrade);
}

TEST(RequestParserTest, ParsesPostWithContentLengthAndLeavesBody) {
  constexpr std::string_view kHead =
      "POST /submit HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n";
  std::string raw = std::string(kHead) + "hello world";
  RequestParser parser{Limits()};
  size_t consumed = 0;
  ASSERT_EQ(parser.Parse(raw, &consumed), ParseStatus::kDone);
  EXPECT_EQ(consumed, kHead.size());
  EXPECT_EQ(parser.head().framing, Framing::kContentLength);
  EXPECT_EQ(parser.head().content_length, 11u);
}

TEST(RequestParserTest, ContentLengthZeroIsContentLengthFraming) {
  RequestHead head =
      ParseRequest("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(head.framing, Framing::kContentLength);
  EXPECT_EQ(head.content_length, 0u);
}

TEST(RequestParserTest, ParsesChunkedTransferEncoding) {
  RequestHead head = ParseRequest(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n\r\n");
  EXPECT_EQ(head.framing, Framing::kChunked);
}

TEST(RequestParserTest, ChunkedListWithEmptyElementsIsAccepted) {
  RequestHead head = ParseRequest(
      "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , chunked ,\r\n\r\n");
  EXPECT_EQ(head.framing, Framing::kChunked);
}

TEST(RequestParserTest, StripsOwsAndKeepsObsText) {
  RequestHead head = ParseRequest(
      "GET / HTTP/1.1\r\nHost: a\r\nX-A: \t  spaced \tvalue \t \r\n"
      "X-Empty:\r\nX-Utf8: caf\xC3\xA9\r\n\r\n");
  ASSERT_EQ(head.headers.size(), 4u);
  EXPECT_EQ(head.headers[1].value, "spaced \tvalue");
  EXPECT_EQ(head.headers[2].value, "");
  EXPECT_EQ(head.headers[3].value, "caf\xC3\xA9");
}

TEST(RequestParserTest, FindIsCaseInsensitiveAndReturnsFirst) {
  RequestHead head = ParseRequest(
      "GET / HTTP/1.1\r\nHost: a\r\nX-Dup: one\r\nx-dup: two\r\n\r\n");
  ASSERT_NE(head.Find("X-DUP"), nullptr);
  EXPECT_EQ(*head.Find("X-DUP"), "one");
  EXPECT_EQ(*head.Find("host"), "a");
  EXPECT_EQ(head.Find("missing"), nullptr);
}

TEST(RequestParserTest, Http11KeepAliveUnlessClose) {
  EXPECT_TRUE(ParseRequest("GET / HTTP/1.1\r\nHost: a\r\n\r\n").keep_alive);
  EXPECT_FALSE(ParseRequest("GET / HTTP/1.1\r\nHost: a\r\n"
                            "Connection: foo, CLOSE\r\n\r\n")
                   .keep_alive);
}

TEST(RequestParserTest, Http10CloseUnlessKeepAlive) {
  RequestHead plain = ParseRequest("GET / HTTP/1.0\r\n\r\n");
  EXPECT_EQ(plain.version_minor, 0);
  EXPECT_FALSE(plain.keep_alive);
  EXPECT_TRUE(ParseRequest("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
                  .keep_alive);
}

TEST(RequestParserTest, ExpectContinueOnlyInHttp11) {
  EXPECT_TRUE(ParseRequest("PUT / HTTP/1.1\r\nHost: a\r\nExpect: "
                           "100-Continue\r\nContent-Length: 1\r\n\r\n")
                  .expect_continue);
  EXPECT_FALSE(ParseRequest("PUT / HTTP/1.0\r\nExpect: 100-continue\r\n"
                            "Content-Length: 1\r\n\r\n")
                   .expect_continue);
  EXPECT_FALSE(ParseRequest("PUT / HTTP/1.1\r\nHost: a\r\nExpect: other\r\n"
                            "Content-Length: 1\r\n\r\n")
                   .expect_continue);
}

TEST(RequestParserTest, UpgradeNeedsConnectionTokenAndUpgradeField) {
  EXPECT_TRUE(ParseRequest("GET / HTTP/1.1\r\nHost: a\r\n"
                           "Connection: keep-alive, Upgrade\r\n"
                           "Upgrade: websocket\r\n\r\n")
                  .upgrade);
  EXPECT_FALSE(ParseRequest("GET / HTTP/1.1\r\nHost: a\r\n"
                            "Upgrade: websocket\r\n\r\n")
                   .upgrade);
  EXPECT_FALSE(ParseRequest("GET / HTTP/1.1\r\nHost: a\r\n"
                            "Connection: upgrade\r\n\r\n")
                   .upgrade);
}

TEST(RequestParserTest, AcceptsAllRequestTargetForms) {
  EXPECT_EQ(ParseRequest("GET http://example.com/x HTTP/1.1\r\nHost: a\r\n\r\n")
                .target,
            "http://example.com/x");
  EXPECT_EQ(ParseRequest("CONNECT example.com:443 HTTP/1.1\r\n"
                         "Host: example.com:443\r\n\r\n")
                .target,
            "example.com:443");
  EXPECT_EQ(ParseRequest("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").target, "*");
  // Raw UTF-8 in the path is tolerated (obs-text).
  EXPECT_EQ(ParseRequest("GET /caf\xC3\xA9 HTTP/1.1\r\nHost: a\r\n\r\n").target,
            "/caf\xC3\xA9");
}

TEST(RequestParserTest, AbsoluteFormAuthorityReplacesHost) {
  // RFC 9112 3.2.2: the app gets the target's authority as Host, never
  // the client's other Host.
  RequestHead head = ParseRequest(
      "GET http://example.com:8080/x?q HTTP/1.1\r\n"
      "Host: other.example\r\nX-A: 1\r\n\r\n");
  ASSERT_EQ(head.headers.size(), 2u);
  EXPECT_EQ(head.headers[0].name, "Host");
  EXPECT_EQ(head.headers[0].value, "example.com:8080");
  EXPECT_EQ(*head.Find("host"), "example.com:8080");
  EXPECT_EQ(head.target, "http://example.com:8080/x?q");
  // HTTP/1.0 may omit Host: one is added.
  head = ParseRequest("GET https://[::1]/ HTTP/1.0\r\n\r\n");
  ASSERT_NE(head.Find("Host"), nullptr);
  EXPECT_EQ(*head.Find("Host"), "[::1]");
  // Authority up to "?" or "#" too.
  EXPECT_EQ(*ParseRequest("GET http://a.b?x HTTP/1.1\r\nHost: c\r\n\r\n")
                 .Find("Host"),
            "a.b");
  // HTTP/1.1 still needs a Host field (RFC 9112 3.2).
  EXPECT_EQ(RequestErrorDetail("GET http://a/ HTTP/1.1\r\n\r\n"),
            "missing Host header");
  // A parser reused for the next request forgets the authority.
  RequestParser parser{Limits()};
  size_t consumed = 0;
  ASSERT_EQ(
      parser.Parse("GET http://a/ HTTP/1.1\r\nHost: b\r\n\r\n", &consumed),
      ParseStatus::kDone);
  parser.Reset();
  ASSERT_EQ(parser.Parse("GET / HTTP/1.1\r\nHost: b\r\n\r\n", &consumed),
            ParseStatus::kDone);
  EXPECT_EQ(*parser.head().Find("Host"), "b");
}

TEST(RequestParserTest, AbsoluteFormAuthorityIsValidated) {
  constexpr std::string_view kBad[] = {
      "GET s://]ufd/ HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET http://[::1/ HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET http://[]/ HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET http://a]/ HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET http://a:8x/ HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET http://a:1:2/ HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET http://a%zz/ HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET http://a\"b/ HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET http:///x HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET http://?x HTTP/1.1\r\nHost: a\r\n\r\n",
  };
  for (std::string_view raw : kBad) {
    EXPECT_EQ(RequestErrorDetail(raw), "invalid authority in request target")
        << raw;
  }
  EXPECT_EQ(
      RequestErrorDetail("GET http://user:pw@a/ HTTP/1.1\r\nHost: a\r\n\r\n"),
      "userinfo in request target");
  // Valid: reg-names, IPv4, IP literals, pct-encoding, an empty port.
  for (std::string_view target :
       {"http://a.example/", "http://10.0.0.1:80/", "http://[::1]:8080/",
        "http://[v1.fe]/", "http://x%41y/", "http://a:/", "ftp://a"}) {
    ParseRequest("GET " + std::string(target) + " HTTP/1.1\r\nHost: a\r\n\r\n");
  }
}

TEST(RequestParserTest, AcceptsExtensionMethods) {
  EXPECT_EQ(ParseRequest("PROPFIND /d HTTP/1.1\r\nHost: a\r\n\r\n").method,
            "PROPFIND");
}

TEST(RequestParserTest, SkipsLeadingEmptyLinesAndCountsThem) {
  constexpr std::string_view kRaw = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
  RequestHead head = ParseRequest(kRaw);  // checks consumed == size
  EXPECT_EQ(head.method, "GET");
}

TEST(RequestParserTest, NeedsMoreUntilTheBlankLine) {
  RequestParser parser{Limits()};
  size_t consumed = 7;
  EXPECT_EQ(parser.Parse("", &consumed), ParseStatus::kNeedMore);
  EXPECT_EQ(parser.Parse("GET / HTTP/1.1\r\n", &consumed),
            ParseStatus::kNeedMore);
  EXPECT_EQ(parser.Parse("GET / HTTP/1.1\r\nHost: a\r\n", &consumed),
            ParseStatus::kNeedMore);
  EXPECT_EQ(parser.Parse("GET / HTTP/1.1\r\nHost: a\r\n\r", &consumed),
            ParseStatus::kNeedMore);
  EXPECT_EQ(consumed, 0u);
  EXPECT_EQ(parser.Parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n", &consumed),
            ParseStatus::kDone);
  EXPECT_EQ(consumed, 27u);
}

TEST(RequestParserTest, ByteAtATimeMatchesOneShot) {
  constexpr std::string_view kRaw =
      "\r\nPOST /upload HTTP/1.1\r\nHost: example.com\r\n"
      "Content-Length: 42\r\nX-Long: a b c d e f g\r\n\r\n";
  RequestParser parser{Limits()};
  size_t consumed = 0;
  for (size_t n = 1; n < kRaw.size(); ++n) {
    ASSERT_EQ(parser.Parse(kRaw.substr(0, n), &consumed),
              ParseStatus::kNeedMore)
        << "at " << n << ": " << parser.error().detail;
  }
  ASSERT_EQ(parser.Parse(kRaw, &consumed), ParseStatus::kDone);
  EXPECT_EQ(consumed, kRaw.size());
  EXPECT_EQ(parser.head().method, "POST");
  EXPECT_EQ(parser.head().content_length, 42u);
  ASSERT_EQ(parser.head().headers.size(), 3u);
  EXPECT_EQ(parser.head().headers[2].value, "a b c d e f g");
}

TEST(RequestParserTest, PipelinedRequestsStopAtTheBoundary) {
  constexpr std::string_view kFirst = "GET /a HTTP/1.1\r\nHost: a\r\n\r\n";
  constexpr std::string_view kSecond = "GET /b HTTP/1.1\r\nHost: b\r\n\r\n";
  std::string raw = std::string(kFirst) + std::string(kSecond);
  RequestParser parser{Limits()};
  size_t consumed = 0;
  ASSERT_EQ(parser.Parse(raw, &consumed), ParseStatus::kDone);
  EXPECT_EQ(consumed, kFirst.size());
  EXPECT_EQ(parser.head().target, "/a");

  parser.Reset();
  std::string_view rest = std::string_view(raw).substr(consumed);
  ASSERT_EQ(parser.Parse(rest, &consumed), ParseStatus::kDone);
  EXPECT_EQ(consumed, kSecond.size());
  EXPECT_EQ(parser.head().target, "/b");
  ASSERT_EQ(parser.head().headers.size(), 1u);
  EXPECT_EQ(parser.head().headers[0].value, "b");
}

TEST(RequestParserTest, PipelinedPostBodyDecoderStopsAtBodyEnd) {
  std::string raw =
      "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello"
      "GET /b HTTP/1.1\r\nHost: a\r\n\r\n";
  RequestParser parser{Limits()};
  size_t consumed = 0;
  ASSERT_EQ(parser.Parse(raw, &consumed), ParseStatus::kDone);
  std::string_view rest = std::string_view(raw).substr(consumed);
  BodyDecoder body(parser.head().framing, parser.head().content_length, 0);
  std::string payload;
  size_t used = body.Decode(rest, &payload);
  EXPECT_EQ(used, 5u);
  EXPECT_EQ(payload, "hello");
  EXPECT_TRUE(body.done());
  rest.remove_prefix(used);

  parser.Reset();
  ASSERT_EQ(parser.Parse(rest, &consumed), ParseStatus::kDone);
  EXPECT_EQ(parser.head().method, "GET");
  EXPECT_EQ(consumed, rest.size());
}

TEST(RequestParserTest, PipelinedChunkedBodyStopsAtBodyEnd) {
  std::string raw =
      "POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3\r\nabc\r\n0\r\n\r\n"
      "GET /b HTTP/1.1\r\nHost: a\r\n\r\n";
  RequestParser parser{Limits()};
  size_t consumed = 0;
  ASSERT_EQ(parser.Parse(raw, &consumed), ParseStatus::kDone);
  std::string_view rest = std::string_view(raw).substr(consumed);
  BodyDecoder body(parser.head().framing, 0, 0);
  std::string payload;
  size_t used = body.Decode(rest, &payload);
  EXPECT_EQ(used, 13u);
  EXPECT_TRUE(body.done());
  EXPECT_EQ(payload, "abc");
  EXPECT_TRUE(rest.substr(used).starts_with("GET /b"));
}

TEST(RequestParserTest, ResetClearsPreviousHead) {
  RequestParser parser{Limits()};
  size_t consumed = 0;
  ASSERT_EQ(parser.Parse("POST / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
                         "Content-Length: 3\r\n\r\n",
                         &consumed),
            ParseStatus::kDone);
  parser.Reset();
  ASSERT_EQ(parser.Parse("GET /x HTTP/1.1\r\nHost: b\r\n\r\n", &consumed),
            ParseStatus::kDone);
  EXPECT_EQ(parser.head().framing, Framing::kNone);
  EXPECT_EQ(parser.head().content_length, 0u);
  EXPECT_TRUE(parser.head().keep_alive);
  EXPECT_EQ(parser.head().headers.size(), 1u);
}

TEST(RequestParserTest, ErrorIsStickyUntilReset) {
  RequestParser parser{Limits()};
  size_t consumed = 0;
  ASSERT_EQ(parser.Parse("GET / HTTP/9.9\r\n", &consumed), ParseStatus::kError);
  EXPECT_EQ(parser.Parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n", &consumed),
            ParseStatus::kError);
  parser.Reset();
  EXPECT_EQ(parser.error().kind, ErrorKind::kNone);
  EXPECT_EQ(parser.Parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n", &consumed),
            ParseStatus::kDone);
}

// ---------------------------------------------------------------------------
// Requests: request line rejections

TEST(RequestParserTest, RejectsMalformedRequestLines) {
  constexpr std::string_view kBad[] = {
      "GE(T / HTTP/1.1\r\nHost: a\r\n\r\n",      // non-token method
      " / HTTP/1.1\r\nHost: a\r\n\r\n",          // empty method
      "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",      // double SP
      "GET /  HTTP/1.1\r\nHost: a\r\n\r\n",      // double SP before version
      "GET / HTTP/1.1 \r\nHost: a\r\n\r\n",      // trailing SP
      "GET /\r\nHost: a\r\n\r\n",                // no version
      "GET\r\nHost: a\r\n\r\n",                  // method only
      "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n",      // HTAB separator
      "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n",    // SP in target
      "GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n",  // control in target
      "GET /a\x7F HTTP/1.1\r\nHost: a\r\n\r\n",  // DEL in target
      "GET x HTTP/1.1\r\nHost: a\r\n\r\n",       // no known form
      "GET example.com:80 HTTP/1.1\r\nHost: a\r\n\r\n",  // authority w/o
                                                         // CONNECT
      "GET * HTTP/1.1\r\nHost: a\r\n\r\n",               // asterisk w/o OPTIONS
      "CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n",          // origin-form CONNECT
      "CONNECT example.com HTTP/1.1\r\nHost: a\r\n\r\n",  // no port
      "GET http:// HTTP/1.1\r\nHost: a\r\n\r\n",          // empty absolute
  };
  for (std::string_view raw : kBad) {
    EXPECT_EQ(RequestError(raw), ErrorKind::kBadRequest) << raw;
  }
}

TEST(RequestParserTest, RejectsNulInRequestLine) {
  std::string raw("GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n", 31);
  EXPECT_EQ(RequestError(raw), ErrorKind::kBadRequest);
}

TEST(RequestParserTest, HigherMinorVersionsAreServedAsHttp11) {
  // RFC 9112 2.3: process it as the highest minor version implemented.
  for (char minor = '2'; minor <= '9'; ++minor) {
    std::string raw = std::string("GET / HTTP/1.") + minor + "\r\n\r\n";
    RequestHead head = ParseRequest(std::string("GET / HTTP/1.") + minor +
                                    "\r\nHost: a\r\n\r\n");
    EXPECT_EQ(head.version_minor, 1) << minor;
    EXPECT_TRUE(head.keep_alive);
    // ...with HTTP/1.1's rules: Host is required.
    EXPECT_EQ(RequestErrorDetail(raw), "missing Host header");
  }
}

TEST(RequestParserTest, UnsupportedVersionsAre505) {
  EXPECT_EQ(RequestError("GET / HTTP/2.0\r\nHost: a\r\n\r\n"),
            ErrorKind::kVersionNotSupported);
  EXPECT_EQ(RequestError("GET / HTTP/0.9\r\n\r\n"),
            ErrorKind::kVersionNotSupported);
}

TEST(RequestParserTest, GarbageVersionsAre400) {
  constexpr std::string_view kBad[] = {
      "GET / HTTX/1.1\r\nHost: a\r\n\r\n",  "GET / http/1.1\r\nHost: a\r\n\r\n",
      "GET / HTTP/1.10\r\nHost: a\r\n\r\n", "GET / HTTP/1\r\nHost: a\r\n\r\n",
      "GET / HTTP/a.b\r\nHost: a\r\n\r\n",  "GET / HTTP/1,1\r\nHost: a\r\n\r\n",
  };
  for (std::string_view raw : kBad) {
    EXPECT_EQ(RequestError(raw), ErrorKind::kBadRequest) << raw;
  }
}

TEST(RequestParserTest, RequestLineLimitIsInclusive) {
  Limits limits;
  limits.max_request_line = 30;
  // "GET /" + padding + " HTTP/1.1" is exactly 30 bytes.
  std::string at_limit = "GET /" + std::string(16, 'a') + " HTTP/1.1";
  ASSERT_EQ(at_limit.size(), 30u);
  ParseRequest(at_limit + "\r\nHost: a\r\n\r\n", limits);
  std::string over = "GET /" + std::string(17, 'a') + " HTTP/1.1";
  EXPECT_EQ(RequestError(over + "\r\nHost: a\r\n\r\n", limits),
            ErrorKind::kUriTooLong);
}

TEST(RequestParserTest, RequestLineLimitDetectedBeforeLineEnds) {
  Limits limits;
  limits.max_request_line = 30;
  RequestParser parser(limits);
  size_t consumed = 0;
  std::string partial = "GET /" + std::string(25, 'a');  // 30 bytes
  EXPECT_EQ(parser.Parse(partial, &consumed), ParseStatus::kNeedMore);
  EXPECT_EQ(parser.Parse(partial + "\r", &consumed), ParseStatus::kNeedMore);
  partial += 'a';  // 31 bytes, still no CRLF
  EXPECT_EQ(parser.Parse(partial, &consumed), ParseStatus::kError);
  EXPECT_EQ(parser.error().kind, ErrorKind::kUriTooLong);
}

TEST(RequestParserTest, TooManyLeadingEmptyLinesAreRejected) {
  std::string raw;
  for (int i = 0; i < 600; ++i) raw += "\r\n";
  EXPECT_EQ(RequestError(raw), ErrorKind::kBadRequest);
}

// ---------------------------------------------------------------------------
// Requests: field rejections

TEST(RequestParserTest, RejectsObsFold) {
  EXPECT_EQ(RequestErrorDetail("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n"
                               " continued\r\n\r\n"),
            "obs-fold not allowed");
  EXPECT_EQ(RequestError("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n"
                         "\tcontinued\r\n\r\n"),
            ErrorKind::kBadRequest);
  // Whitespace before the first field line.
  EXPECT_EQ(RequestError("GET / HTTP/1.1\r\n Host: a\r\n\r\n"),
            ErrorKind::kBadRequest);
}

TEST(RequestParserTest, RejectsBareCr) {
  EXPECT_EQ(
      RequestErrorDetail("GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n"),
      "bare CR in header");
  EXPECT_EQ(RequestError("GET / HTTP/1.1\rHost: a\r\n\r\n"),
            ErrorKind::kBadRequest);
  EXPECT_EQ(RequestError("GET / HTTP/1.1\r\nHost: a\r\r\n\r\n"),
            ErrorKind::kBadRequest);
  EXPECT_EQ(RequestError("GET / HTTP/1.1\r\nHost: a\r\nX\rY: b\r\n\r\n"),
            ErrorKind::kBadRequest);
  EXPECT_EQ(RequestError("GET / HTTP/1.1\r\nHost: a\r\n\r\r\n"),
            ErrorKind::kBadRequest);
}

TEST(RequestParserTest, RejectsBareLf) {
  EXPECT_EQ(RequestError("GET / HTTP/1.1\nHost: a\r\n\r\n"),
            ErrorKind::kBadRequest);
  EXPECT_EQ(RequestError("GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n"),
            ErrorKind::kBadRequest);
  EXPECT_EQ(RequestError("GET / HTTP/1.1\r\nHost: a\r\n\n"),
            ErrorKind::kBadRequest);
  EXPECT_EQ(RequestError("\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"),
            ErrorKind::kBadRequest);
}

TEST(RequestParserTest, RejectsNulInFields) {
  std::string in_value("GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n", 36);
  EXPECT_EQ(RequestError(in_value), ErrorKind::kBadRequest);
  std::string in_name("GET / HTTP/1.1\r\nHost: a\r\nX\0: ab\r\n\r\n", 36);
  EXPECT_EQ(RequestError(in_name), ErrorKind::kBadRequest);
}

TEST(RequestParserTest, RejectsInvalidFieldNames) {
  constexpr std::string_view kBad[] = {
      "GET / HTTP/1.1\r\nHost: a\r\nX(A): b\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX\"A: b\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX/A: b\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX\xC3\xA4: b\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX A: b\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n",
  };
  for (std::string_view raw : kBad) {
    EXPECT_EQ(RequestError(raw), ErrorKind::kBadRequest) << raw;
  }
}

TEST(RequestParserTest, RejectsWhitespaceBeforeColon) {
  EXPECT_EQ(RequestErrorDetail("GET / HTTP/1.1\r\nHost : a\r\n\r\n"),
            "whitespace before colon");
  EXPECT_EQ(RequestError("GET / HTTP/1.1\r\nHost: a\r\nX-A\t: b\r\n\r\n"),
            ErrorKind::kBadRequest);
}

TEST(RequestParserTest, RejectsControlCharsInValues) {
  constexpr std::string_view kBad[] = {
      "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01z\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX: a\x1Fz\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX: a\x7Fz\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX: \x0B\r\n\r\n",
  };
  for (std::string_view raw : kBad) {
    EXPECT_EQ(RequestError(raw), ErrorKind::kBadRequest) << raw;
  }
  // HTAB inside a value is fine.
  EXPECT_EQ(ParseRequest("GET / HTTP/1.1\r\nHost: a\r\nX: a\tb\r\n\r\n")
                .headers[1]
                .value,
            "a\tb");
}

TEST(RequestParserTest, HostRules) {
  EXPECT_EQ(RequestErrorDetail("GET / HTTP/1.1\r\n\r\n"),
            "missing Host header");
  EXPECT_EQ(RequestError("GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"),
            ErrorKind::kBadRequest);
  EXPECT_EQ(RequestError("GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n"),
            ErrorKind::kBadRequest);
  EXPECT_EQ(RequestError("GET / HTTP/1.1\r\nHost: a b\r\n\r\n"),
            ErrorKind::kBadRequest);
  EXPECT_EQ(RequestError("GET / HTTP/1.1\r\nHost: a/b\r\n\r\n"),
            ErrorKind::kBadRequest);
  // The authority grammar, as for absolute-form targets.
  for (std::string_view host : {"]ufd", "a]", "[::1", "a:b", "u@a", "a%2"}) {
    EXPECT_EQ(RequestErrorDetail(
                  "GET / HTTP/1.1\r\nHost: " + std::string(host) + "\r\n\r\n"),
              "invalid Host header")
        << host;
  }
  // HTTP/1.0 may omit it; empty and IPv6 literals are valid.
  ParseRequest("GET / HTTP/1.0\r\n\r\n");
  ParseRequest("GET / HTTP/1.1\r\nHost:\r\n\r\n");
  ParseRequest("GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n");
}

TEST(RequestParserTest, FieldCountLimit) {
  Limits limits;
  limits.max_fields = 3;
  ParseRequest("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n", limits);
  EXPECT_EQ(RequestError("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n"
                         "C: 3\r\n\r\n",
                         limits),
            ErrorKind::kHeadersTooLarge);
}

TEST(RequestParserTest, FieldCountLimitDetectedBeforeLineEnds) {
  Limits limits;
  limits.max_fields = 1;
  RequestParser parser(limits);
  size_t consumed = 0;
  EXPECT_EQ(parser.Parse("GET / HTTP/1.1\r\nHost: a\r\n\r", &consumed),
            ParseStatus::kNeedMore);
  EXPECT_EQ(parser.Parse("GET / HTTP/1.1\r\nHost: a\r\nX", &consumed),
            ParseStatus::kError);
  EXPECT_EQ(parser.error().kind, ErrorKind::kHeadersTooLarge);
}

TEST(RequestParserTest, FieldSizeLimitIsInclusive) {
  Limits limits;
  limits.max_field_size = 20;
  // The limit counts the CRLF, as Gunicorn does: 18 bytes + CRLF.
  std::string at_limit = "X-Pad: " + std::string(11, 'v');
  ParseRequest("GET / HTTP/1.1\r\nHost: a\r\n" + at_limit + "\r\n\r\n", limits);
  EXPECT_EQ(
      RequestError("GET / HTTP/1.1\r\nHost: a\r\n" + at_limit + "v\r\n\r\n",
                   limits),
      ErrorKind::kHeadersTooLarge);
}

TEST(RequestParserTest, FieldSizeLimitDetectedBeforeLineEnds) {
  Limits limits;
  limits.max_field_size = 20;
  RequestParser parser(limits);
  size_t consumed = 0;
  std::string head = "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: " +
                     std::string(11, 'v');  // 18 bytes: 20 with the CRLF
  EXPECT_EQ(parser.Parse(head, &consumed), ParseStatus::kNeedMore);
  EXPECT_EQ(parser.Parse(head + "v", &consumed), ParseStatus::kError);
  EXPECT_EQ(parser.error().kind, ErrorKind::kHeadersTooLarge);
}

TEST(RequestParserTest, UnlimitedLimitsStillCapTheHead) {
  Limits limits;
  limits.max_request_line = 0;
  limits.max_fields = 0;
  limits.max_field_size = 0;
  RequestParser parser(limits);
  size_t consumed = 0;
  std::string head = "GET / HTTP/1.1\r\nHost: a\r\n";
  while (head.size() < 60 * 1024)
    head += "X-Pad: " + std::string(100, 'v') + "\r\n";
  EXPECT_EQ(parser.Parse(head, &consumed), ParseStatus::kNeedMore);
  while (head.size() <= 64 * 1024)
    head += "X-Pad: " + std::string(100, 'v') + "\r\n";
  EXPECT_EQ(parser.Parse(head, &consumed), ParseStatus::kError);
  EXPECT_EQ(parser.error().kind, ErrorKind::kHeadersTooLarge);
  // A long request line is fine when only the line is unlimited.
  ParseRequest(
      "GET /" + std::string(10000, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n",
      limits);
}

// ---------------------------------------------------------------------------
// Requests: framing rejections

TEST(RequestParserTest, RejectsContentLengthWithTransferEncoding) {
  EXPECT_EQ(RequestErrorDetail("POST / HTTP/1.1\r\nHost: a\r\n"
                               "Content-Length: 5\r\n"
                               "Transfer-Encoding: chunked\r\n\r\n"),
            "both Content-Length and Transfer-Encoding");
  EXPECT_EQ(RequestError("POST / HTTP/1.1\r\nHost: a\r\n"
                         "Transfer-Encoding: chunked\r\n"
                         "Content-Length: 5\r\n\r\n"),
            ErrorKind::kBadRequest);
}

TEST(RequestParserTest, RejectsDifferingDuplicateContentLength) {
  EXPECT_EQ(
      RequestErrorDetail("POST / HTTP/1.1\r\nHost: a\r\n"
                         "Content-Length: 5\r\nContent-Length: 6\r\n\r\n"),
      "duplicate Content-Length with different values");
  EXPECT_EQ(RequestError("POST / HTTP/1.1\r\nHost: a\r\n"
                         "Content-Length: 5, 6\r\n\r\n"),
            ErrorKind::kBadRequest);
}

TEST(RequestParserTest, AcceptsEqualDuplicateContentLength) {
  RequestHead two = ParseRequest(
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n"
      "content-length: 5\r\n\r\n");
  EXPECT_EQ(two.framing, Framing::kContentLength);
  EXPECT_EQ(two.content_length, 5u);
  RequestHead list = ParseRequest(
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 7 ,7,  07\r\n\r\n");
  EXPECT_EQ(list.content_length, 7u);
}

TEST(RequestParserTest, RejectsInvalidContentLength) {
  constexpr std::string_view kBad[] = {"+5",
                                       "-1",
                                       "5 5",
                                       "0x10",
                                       "",
                                       "5,",
                                       "1e3",
                                       "18446744073709551616",
                                       "99999999999999999999999"};
  for (std::string_view cl : kBad) {
    std::string raw =
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + std::string(cl) +
        "\r\n\r\n";
    EXPECT_EQ(RequestError(raw), ErrorKind::kBadRequest) << cl;
  }
  EXPECT_EQ(ParseRequest("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: "
                         "18446744073709551615\r\n\r\n")
                .content_length,
            18446744073709551615u);
}

TEST(RequestParserTest, ContentLengthOverMaxBodyIs413) {
  Limits limits;
  limits.max_body = 100;
  EXPECT_EQ(ParseRequest("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100"
                         "\r\n\r\n",
                         limits)
                .content_length,
            100u);
  EXPECT_EQ(RequestError("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101"
                         "\r\n\r\n",
                         limits),
            ErrorKind::kBodyTooLarge);
}

TEST(RequestParserTest, TransferCodingRules) {
  auto te = [](std::string_view codings) {
    return "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: " +
           std::string(codings) + "\r\n\r\n";
  };
  EXPECT_EQ(RequestError(te("gzip")), ErrorKind::kNotImplemented);
  EXPECT_EQ(RequestError(te("identity")), ErrorKind::kNotImplemented);
  EXPECT_EQ(RequestError(te("gzip, chunked")), ErrorKind::kNotImplemented);
  EXPECT_EQ(RequestError(te("chunked, gzip")), ErrorKind::kBadRequest);
  EXPECT_EQ(RequestError(te("chunked, chunked")), ErrorKind::kBadRequest);
  EXPECT_EQ(RequestErrorDetail(te("chunked, chunked")),
            "chunked applied more than once");
  EXPECT_EQ(RequestErrorDetail(te("chunked, gzip")),
            "chunked is not the final transfer coding");
  EXPECT_EQ(RequestError(te("")), ErrorKind::kBadRequest);
  EXPECT_EQ(RequestError(te(",")), ErrorKind::kBadRequest);
  EXPECT_EQ(RequestError(te("chunked;x=1")), ErrorKind::kBadRequest);
  EXPECT_EQ(RequestError(te("chu(nked")), ErrorKind::kBadRequest);
}

TEST(RequestParserTest, TransferCodingListSpansFieldLines) {
  EXPECT_EQ(RequestError("POST / HTTP/1.1\r\nHost: a\r\n"
                         "Transfer-Encoding: chunked\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n"),
            ErrorKind::kBadRequest);
  EXPECT_EQ(RequestError("POST / HTTP/1.1\r\nHost: a\r\n"
                         "Transfer-Encoding: chunked\r\n"
                         "Transfer-Encoding: gzip\r\n\r\n"),
            ErrorKind::kBadRequest);
  EXPECT_EQ(RequestError("POST / HTTP/1.1\r\nHost: a\r\n"
                         "Transfer-Encoding: gzip\r\n"
                         "Transfer-Encoding: chunked\r\n\r\n"),
            ErrorKind::kNotImplemented);
}

TEST(RequestParserTest, TransferEncodingInHttp10Is400) {
  EXPECT_EQ(RequestError("POST / HTTP/1.0\r\nTransfer-Encoding: chunked"
                         "\r\n\r\n"),
            ErrorKind::kBadRequest);
}

// ---------------------------------------------------------------------------
// BodyDecoder

TEST(BodyDecoderTest, NoneIsDoneImmediately) {
  BodyDecoder decoder(Framing::kNone, 0, 0);
  EXPECT_TRUE(decoder.done());
  std::string out;
  EXPECT_EQ(decoder.Decode("GET / HTTP/1.1\r\n", &out), 0u);
  EXPECT_TRUE(out.empty());
}

TEST(BodyDecoderTest, ContentLengthNeverConsumesPastTheBody) {
  BodyDecoder decoder(Framing::kContentLength, 5, 0);
  std::string out;
  EXPECT_EQ(decoder.Decode("hel", &out), 3u);
  EXPECT_FALSE(decoder.done());
  EXPECT_EQ(decoder.Decode("loGET", &out), 2u);
  EXPECT_TRUE(decoder.done());
  EXPECT_EQ(out, "hello");
  EXPECT_EQ(decoder.payload_bytes(), 5u);
  EXPECT_EQ(decoder.Decode("more", &out), 0u);
}

TEST(BodyDecoderTest, ContentLengthByteAtATime) {
  BodyDecoder decoder(Framing::kContentLength, 4, 0);
  size_t consumed = 0;
  EXPECT_EQ(DecodeByteByByte(decoder, "abcdef", &consumed), "abcd");
  EXPECT_EQ(consumed, 4u);
  EXPECT_TRUE(decoder.done());
}

TEST(BodyDecoderTest, ContentLengthZeroIsDone) {
  BodyDecoder decoder(Framing::kContentLength, 0, 0);
  EXPECT_TRUE(decoder.done());
}

TEST(BodyDecoderTest, ContentLengthOverMaxBodyFails) {
  BodyDecoder decoder(Framing::kContentLength, 11, 10);
  EXPECT_TRUE(decoder.failed());
  EXPECT_EQ(decoder.error().kind, ErrorKind::kBodyTooLarge);
}

TEST(BodyDecoderTest, ContentLengthEofBeforeEndFails) {
  BodyDecoder decoder(Framing::kContentLength, 5, 0);
  std::string out;
  decoder.Decode("abc", &out);
  decoder.OnEof();
  EXPECT_TRUE(decoder.failed());
  EXPECT_FALSE(decoder.done());
}

TEST(BodyDecoderTest, DecodesChunked) {
  constexpr std::string_view kIn = "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
  BodyDecoder decoder(Framing::kChunked, 0, 0);
  size_t consumed = 0;
  EXPECT_EQ(DecodeAll(decoder, kIn, &consumed), "hello world");
  EXPECT_EQ(consumed, kIn.size());
  EXPECT_TRUE(decoder.done());
  EXPECT_FALSE(decoder.failed());
  EXPECT_EQ(decoder.payload_bytes(), 11u);
}

TEST(BodyDecoderTest, DecodesHexSizesInAnyCase) {
  std::string in = "A\r\n" + std::string(10, 'x') + "\r\n00b\r\n" +
                   std::string(11, 'y') + "\r\n000\r\n\r\n";
  BodyDecoder decoder(Framing::kChunked, 0, 0);
  size_t consumed = 0;
  EXPECT_EQ(DecodeAll(decoder, in, &consumed).size(), 21u);
  EXPECT_TRUE(decoder.done());
}

constexpr std::string_view kChunkedWithExtrasAndTrailers =
    "5;name=value;flag ; q=\"quo\\\"ted; x\"\r\nhello\r\n"
    "3 ;a=b\r\nabc\r\n"
    "0;last=\"yes\"\r\n"
    "X-Checksum: 1234\r\n"
    "Server-Timing: total;dur=5\r\n"
    "\r\n";

TEST(BodyDecoderTest, AcceptsExtensionsAndKeepsTrailers) {
  std::string in = std::string(kChunkedWithExtrasAndTrailers) + "NEXT";
  BodyDecoder decoder(Framing::kChunked, 0, 0);
  size_t consumed = 0;
  EXPECT_EQ(DecodeAll(decoder, in, &consumed), "helloabc");
  EXPECT_TRUE(decoder.done()) << decoder.error().detail;
  ASSERT_EQ(decoder.trailers().size(), 2u);
  EXPECT_EQ(decoder.trailers()[0].name, "X-Checksum");
  EXPECT_EQ(decoder.trailers()[1].value, "total;dur=5");
  EXPECT_EQ(consumed, kChunkedWithExtrasAndTrailers.size());
  std::string out;
  EXPECT_EQ(decoder.Decode("NEXT", &out), 0u);
}

TEST(BodyDecoderTest, ChunkedByteAtATime) {
  std::string in = std::string(kChunkedWithExtrasAndTrailers) + "NEXT";
  BodyDecoder decoder(Framing::kChunked, 0, 0);
  size_t consumed = 0;
  EXPECT_EQ(DecodeByteByByte(decoder, in, &consumed), "helloabc");
  EXPECT_TRUE(decoder.done()) << decoder.error().detail;
  EXPECT_EQ(consumed, kChunkedWithExtrasAndTrailers.size());
}

TEST(BodyDecoderTest, ChunkedInArbitrarySplits) {
  std::string in(kChunkedWithExtrasAndTrailers);
  for (size_t split = 1; split < in.size(); ++split) {
    BodyDecoder decoder(Framing::kChunked, 0, 0);
    std::string out;
    size_t used = decoder.Decode(std::string_view(in).substr(0, split), &out);
    EXPECT_EQ(used, split);
    used += decoder.Decode(std::string_view(in).substr(split), &out);
    EXPECT_EQ(used, in.size()) << split;
    EXPECT_EQ(out, "helloabc") << split;
    EXPECT_TRUE(decoder.done()) << split;
  }
}

TEST(BodyDecoderTest, RejectsInvalidChunkSizes) {
  EXPECT_EQ(ChunkedError("zz\r\n"), ErrorKind::kBadRequest);
  EXPECT_EQ(ChunkedError("\r\n"), ErrorKind::kBadRequest);
  EXPECT_EQ(ChunkedError("-1\r\n"), ErrorKind::kBadRequest);
  EXPECT_EQ(ChunkedError("+1\r\n"), ErrorKind::kBadRequest);
  EXPECT_EQ(ChunkedError("0x5\r\n"), ErrorKind::kBadRequest);
  EXPECT_EQ(ChunkedError(" 5\r\nhello\r\n"), ErrorKind::kBadRequest);
  EXPECT_EQ(ChunkedError("5 \r\nhello\r\n"), ErrorKind::kBadRequest);
  // 17 hex digits: more than 64 bits, or just too many.
  EXPECT_EQ(ChunkedError("1ffffffffffffffff\r\n"), ErrorKind::kBadRequest);
  EXPECT_EQ(ChunkedError("00000000000000005\r\nhello\r\n"),
            ErrorKind::kBadRequest);
}

TEST(BodyDecoderTest, SixteenHexDigitsAreAccepted) {
  BodyDecoder decoder(Framing::kChunked, 0, 0);
  std::string out;
  EXPECT_EQ(decoder.Decode("ffffffffffffffff\r\nab", &out), 20u);
  EXPECT_FALSE(decoder.failed());
  EXPECT_EQ(out, "ab");
}

TEST(BodyDecoderTest, InvalidChunkSizeDetail) {
  BodyDecoder decoder(Framing::kChunked, 0, 0);
  std::string out;
  decoder.Decode("zz\r\n", &out);
  EXPECT_EQ(decoder.error().detail, "invalid chunk size");
}

TEST(BodyDecoderTest, RejectsBadChunkExtensions) {
  constexpr std::string_view kBad[] = {
      "5;\r\nhello\r\n",             // empty name
      "5;=v\r\nhello\r\n",           // no name
      "5;n=\r\nhello\r\n",           // empty value
      "5;n=\"open\r\nhello\r\n",     // unterminated quoted-string
      "5;n=v v\r\nhello\r\n",        // garbage after value
      "5;n=(x)\r\nhello\r\n",        // value not a token
      "5;n\rx\r\nhello\r\n",         // bare CR inside
      "5;n=\"a\x01\"\r\nhello\r\n",  // control in quoted-string
      "5x\r\nhello\r\n",             // garbage after size
      "5;a;\r\nhello\r\n",           // trailing ";"
  };
  for (std::string_view in : kBad) {
    EXPECT_EQ(ChunkedError(in), ErrorKind::kBadRequest) << in;
  }
}

TEST(BodyDecoderTest, RejectsBareLfAfterChunkSize) {
  EXPECT_EQ(ChunkedError("5\nhello\r\n"), ErrorKind::kBadRequest);
}

TEST(BodyDecoderTest, CapsTheChunkSizeLine) {
  // The line without its CRLF may be 4096 bytes, not 4097.
  std::string ok = "1;x=" + std::string(4092, 'a') + "\r\nz\r\n0\r\n\r\n";
  ASSERT_EQ(ok.find('\r'), 4096u);
  BodyDecoder decoder(Framing::kChunked, 0, 0);
  std::string out;
  decoder.Decode(ok, &out);
  EXPECT_TRUE(decoder.done()) << decoder.error().detail;

  std::string too_long = "1;x=" + std::string(4093, 'a') + "\r\nz\r\n";
  EXPECT_EQ(ChunkedError(too_long), ErrorKind::kBadRequest);
  // Without a line end in sight, too.
  EXPECT_EQ(ChunkedError("1;x=" + std::string(5000, 'a')),
            ErrorKind::kBadRequest);
}

TEST(BodyDecoderTest, RejectsMissingCrlfAfterData) {
  EXPECT_EQ(ChunkedError("5\r\nhelloX\r\n0\r\n\r\n"), ErrorKind::kBadRequest);
  EXPECT_EQ(ChunkedError("5\r\nhello\rX0\r\n\r\n"), ErrorKind::kBadRequest);
  EXPECT_EQ(ChunkedError("5\r\nhello\n0\r\n\r\n"), ErrorKind::kBadRequest);
  EXPECT_EQ(ChunkedError("5\r\nhello0\r\n\r\n"), ErrorKind::kBadRequest);
}

TEST(BodyDecoderTest, RejectsBadTrailers) {
  EXPECT_EQ(ChunkedError("0\r\nno colon\r\n\r\n"), ErrorKind::kBadRequest);
  EXPECT_EQ(ChunkedError("0\r\nX: a\r\n folded\r\n\r\n"),
            ErrorKind::kBadRequest);
  EXPECT_EQ(ChunkedError("0\r\nX: a\rb\r\n\r\n"), ErrorKind::kBadRequest);
  EXPECT_EQ(ChunkedError("0\r\nX: a\n\r\n"), ErrorKind::kBadRequest);
  EXPECT_EQ(ChunkedError("0\r\n\n"), ErrorKind::kBadRequest);
}

TEST(BodyDecoderTest, ChunkedTotalOverMaxBodyIs413) {
  {
    BodyDecoder decoder(Framing::kChunked, 0, 10);
    std::string out;
    decoder.Decode("5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n", &out);
    EXPECT_TRUE(decoder.done());
  }
  EXPECT_EQ(ChunkedError("5\r\nhello\r\n6\r\nworld!\r\n0\r\n\r\n", 10),
            ErrorKind::kBodyTooLarge);
  EXPECT_EQ(ChunkedError("b\r\n", 10), ErrorKind::kBodyTooLarge);
}

TEST(BodyDecoderTest, UntilCloseRunsUntilEof) {
  BodyDecoder decoder(Framing::kUntilClose, 0, 0);
  size_t consumed = 0;
  EXPECT_EQ(DecodeAll(decoder, "abc\r\n\r\n0\r\n", &consumed),
            "abc\r\n\r\n0\r\n");
  EXPECT_EQ(consumed, 10u);
  EXPECT_FALSE(decoder.done());
  decoder.OnEof();
  EXPECT_TRUE(decoder.done());
  EXPECT_FALSE(decoder.failed());
}

TEST(BodyDecoderTest, UntilCloseOverMaxBodyIs413) {
  BodyDecoder decoder(Framing::kUntilClose, 0, 4);
  std::string out;
  EXPECT_EQ(decoder.Decode("abcdef", &out), 4u);
  EXPECT_TRUE(decoder.failed());
  EXPECT_EQ(decoder.error().kind, ErrorKind::kBodyTooLarge);
}

TEST(BodyDecoderTest, StopsAfterAnError) {
  BodyDecoder decoder(Framing::kChunked, 0, 0);
  std::string out;
  decoder.Decode("zz\r\n", &out);
  ASSERT_TRUE(decoder.failed());
  EXPECT_EQ(decoder.Decode("5\r\nhello\r\n", &out), 0u);
  EXPECT_TRUE(out.empty());
}

// ---------------------------------------------------------------------------
// ResponseParser

ResponseHead ParseResponse(std::string_view raw,
                           std::string_view method = "GET") {
  ResponseParser parser;
  size_t consumed = 0;
  ParseStatus status = parser.Parse(raw, method, &consumed);
  EXPECT_EQ(status, ParseStatus::kDone)
      << "input: " << raw << " error: " << parser.error().detail;
  EXPECT_EQ(consumed, raw.size());
  return parser.head();
}

ErrorKind ResponseError(std::string_view raw, std::string_view method = "GET") {
  ResponseParser parser;
  size_t consumed = 0;
  EXPECT_EQ(parser.Parse(raw, method, &consumed), ParseStatus::kError) << raw;
  EXPECT_FALSE(parser.error().detail.empty());
  return parser.error().kind;
}

TEST(ResponseParserTest, ParsesContentLengthResponse) {
  ResponseHead head = ParseResponse(
      "HTTP/1.1 201 Created Here\r\nContent-Length: 12\r\nX-A: b\r\n\r\n");
  EXPECT_EQ(head.status, 201);
  EXPECT_EQ(head.reason, "Created Here");
  EXPECT_EQ(head.version_minor, 1);
  EXPECT_EQ(head.framing, Framing::kContentLength);
  EXPECT_EQ(head.content_length, 12u);
  EXPECT_TRUE(head.keep_alive);
  ASSERT_NE(head.Find("x-a"), nullptr);
  EXPECT_EQ(*head.Find("x-a"), "b");
}

TEST(ResponseParserTest, ToleratesEmptyReason) {
  ResponseHead no_sp =
      ParseResponse("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(no_sp.status, 200);
  EXPECT_EQ(no_sp.reason, "");
  ResponseHead sp = ParseResponse("HTTP/1.1 404 \r\nContent-Length: 0\r\n\r\n");
  EXPECT_EQ(sp.status, 404);
  EXPECT_EQ(sp.reason, "");
}

TEST(ResponseParserTest, BodylessResponses) {
  EXPECT_EQ(
      ParseResponse("HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n", "HEAD")
          .framing,
      Framing::kNone);
  EXPECT_EQ(ParseResponse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked"
                          "\r\n\r\n",
                          "HEAD")
                .framing,
            Framing::kNone);
  EXPECT_EQ(ParseResponse("HTTP/1.1 204 No Content\r\n\r\n").framing,
            Framing::kNone);
  EXPECT_TRUE(ParseResponse("HTTP/1.1 204 No Content\r\n\r\n").keep_alive);
  EXPECT_EQ(ParseResponse("HTTP/1.1 304 Not Modified\r\nContent-Length: 9"
                          "\r\n\r\n")
                .framing,
            Framing::kNone);
  EXPECT_EQ(ParseResponse("HTTP/1.1 100 Continue\r\n\r\n").framing,
            Framing::kNone);
  EXPECT_EQ(ParseResponse("HTTP/1.1 101 Switching Protocols\r\n"
                          "Connection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
                .framing,
            Framing::kNone);
}

TEST(ResponseParserTest, InterimResponseThenFinal) {
  constexpr std::string_view kInterim = "HTTP/1.1 100 Continue\r\n\r\n";
  std::string raw =
      std::string(kInterim) + "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
  ResponseParser parser;
  size_t consumed = 0;
  ASSERT_EQ(parser.Parse(raw, "POST", &consumed), ParseStatus::kDone);
  EXPECT_EQ(consumed, kInterim.size());
  EXPECT_EQ(parser.head().status, 100);
  parser.Reset();
  std::string_view rest = std::string_view(raw).substr(consumed);
  ASSERT_EQ(parser.Parse(rest, "POST", &consumed), ParseStatus::kDone);
  EXPECT_EQ(parser.head().status, 200);
  EXPECT_EQ(rest.substr(consumed), "ok");
}

TEST(ResponseParserTest, ChunkedAndUntilClose) {
  ResponseHead chunked = ParseResponse(
      "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n");
  EXPECT_EQ(chunked.framing, Framing::kChunked);
  EXPECT_TRUE(chunked.keep_alive);

  ResponseHead not_last =
      ParseResponse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n");
  EXPECT_EQ(not_last.framing, Framing::kUntilClose);
  EXPECT_FALSE(not_last.keep_alive);

  ResponseHead bare = ParseResponse("HTTP/1.1 200 OK\r\n\r\n");
  EXPECT_EQ(bare.framing, Framing::kUntilClose);
  EXPECT_FALSE(bare.keep_alive);
}

TEST(ResponseParserTest, KeepAliveRules) {
  EXPECT_FALSE(ParseResponse("HTTP/1.1 200 OK\r\nConnection: close\r\n"
                             "Content-Length: 0\r\n\r\n")
                   .keep_alive);
  EXPECT_FALSE(
      ParseResponse("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n").keep_alive);
  EXPECT_TRUE(ParseResponse("HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n"
                            "Content-Length: 0\r\n\r\n")
                  .keep_alive);
}

TEST(ResponseParserTest, ContentLengthRules) {
  EXPECT_EQ(ResponseError("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
                          "Content-Length: 2\r\n\r\n"),
            ErrorKind::kBadRequest);
  EXPECT_EQ(ParseResponse("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
                          "Content-Length: 3\r\n\r\n")
                .content_length,
            3u);
  EXPECT_EQ(ResponseError("HTTP/1.1 200 OK\r\nContent-Length: -3\r\n\r\n"),
            ErrorKind::kBadRequest);
  EXPECT_EQ(ResponseError("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n"
                          "Transfer-Encoding: chunked\r\n\r\n"),
            ErrorKind::kBadRequest);
  EXPECT_EQ(ResponseError("HTTP/1.0 200 OK\r\n"
                          "Transfer-Encoding: chunked\r\n\r\n"),
            ErrorKind::kBadRequest);
  EXPECT_EQ(ResponseError("HTTP/1.1 200 OK\r\n"
                          "Transfer-Encoding: chunked, chunked\r\n\r\n"),
            ErrorKind::kBadRequest);
}

TEST(ResponseParserTest, RejectsBadStatusLines) {
  constexpr std::string_view kBad[] = {
      "HTTP/1.1 20 OK\r\n\r\n",    "HTTP/1.1 abc OK\r\n\r\n",
      "HTTP/1.1 200OK\r\n\r\n",    "HTTX/1.1 200 OK\r\n\r\n",
      "HTTP/1.1  200 OK\r\n\r\n",  "HTTP/1.1 099 Low\r\n\r\n",
      "HTTP/1.1 600 High\r\n\r\n", "HTTP/1.1 200 O\x01K\r\n\r\n",
      "HTTP/1.1\r\n\r\n",
  };
  for (std::string_view raw : kBad) {
    EXPECT_EQ(ResponseError(raw), ErrorKind::kBadRequest) << raw;
  }
  EXPECT_EQ(ResponseError("HTTP/2.0 200 OK\r\n\r\n"),
            ErrorKind::kVersionNotSupported);
}

TEST(ResponseParserTest, SameFieldRulesAsRequests) {
  EXPECT_EQ(ResponseError("HTTP/1.1 200 OK\r\nX: a\r\n b\r\n\r\n"),
            ErrorKind::kBadRequest);
  EXPECT_EQ(ResponseError("HTTP/1.1 200 OK\r\nX: a\rb\r\n\r\n"),
            ErrorKind::kBadRequest);
  EXPECT_EQ(ResponseError("HTTP/1.1 200 OK\nX: a\r\n\r\n"),
            ErrorKind::kBadRequest);
  EXPECT_EQ(ResponseError("HTTP/1.1 200 OK\r\nX : a\r\n\r\n"),
            ErrorKind::kBadRequest);
}

TEST(ResponseParserTest, CapsTheHeadAt64KiB) {
  ResponseParser parser;
  size_t consumed = 0;
  std::string head = "HTTP/1.1 200 OK\r\n";
  while (head.size() <= 64 * 1024)
    head += "X-Pad: " + std::string(200, 'v') + "\r\n";
  EXPECT_EQ(parser.Parse(head, "GET", &consumed), ParseStatus::kError);
  EXPECT_EQ(parser.error().kind, ErrorKind::kHeadersTooLarge);
}

TEST(ResponseParserTest, ByteAtATime) {
  constexpr std::string_view kRaw =
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
      "5\r\n\r\n";
  ResponseParser parser;
  size_t consumed = 0;
  for (size_t n = 1; n < kRaw.size(); ++n) {
    ASSERT_EQ(parser.Parse(kRaw.substr(0, n), "GET", &consumed),
              ParseStatus::kNeedMore)
        << n;
  }
  ASSERT_EQ(parser.Parse(kRaw, "GET", &consumed), ParseStatus::kDone);
  EXPECT_EQ(consumed, kRaw.size());
  EXPECT_EQ(parser.head().content_length, 5u);
  EXPECT_EQ(parser.head().headers.size(), 2u);
}

// ---------------------------------------------------------------------------
// Helpers

TEST(Http1HelpersTest, StatusForError) {
  EXPECT_EQ(StatusForError(ErrorKind::kBadRequest), 400);
  EXPECT_EQ(StatusForError(ErrorKind::kUriTooLong), 414);
  EXPECT_EQ(StatusForError(ErrorKind::kHeadersTooLarge), 431);
  EXPECT_EQ(StatusForError(ErrorKind::kBodyTooLarge), 413);
  EXPECT_EQ(StatusForError(ErrorKind::kNotImplemented), 501);
  EXPECT_EQ(StatusForError(ErrorKind::kVersionNotSupported), 505);
}

TEST(Http1HelpersTest, ReasonPhrase) {
  EXPECT_EQ(ReasonPhrase(200), "OK");
  EXPECT_EQ(ReasonPhrase(308), "Permanent Redirect");
  EXPECT_EQ(ReasonPhrase(404), "Not Found");
  EXPECT_EQ(ReasonPhrase(431), "Request Header Fields Too Large");
  EXPECT_EQ(ReasonPhrase(502), "Bad Gateway");
  EXPECT_EQ(ReasonPhrase(505), "HTTP Version Not Supported");
  EXPECT_EQ(ReasonPhrase(299), "");
  for (int code : {100, 101, 200, 201, 202, 203, 204, 205, 206, 300, 301, 302,
                   303, 304, 307, 308, 400, 401, 403, 404, 405, 408, 411, 413,
                   414, 415, 429, 431, 500, 501, 502, 503, 504, 505}) {
    EXPECT_FALSE(ReasonPhrase(code).empty()) << code;
  }
}

TEST(Http1HelpersTest, IsHopByHop) {
  const std::vector<std::string> none;
  for (std::string_view name : {"Connection", "keep-alive", "Proxy-Connection",
                                "TE", "transfer-encoding", "Upgrade",
                                "Proxy-Authenticate", "PROXY-AUTHORIZATION"}) {
    EXPECT_TRUE(IsHopByHop(name, none)) << name;
  }
  EXPECT_FALSE(IsHopByHop("Content-Length", none));
  EXPECT_FALSE(IsHopByHop("X-Custom", none));
  EXPECT_FALSE(IsHopByHop("Trailers", none));
  EXPECT_FALSE(IsHopByHop("Trailer", none));  // end to end (RFC 9110 6.6.2)
  EXPECT_TRUE(IsHopByHop("X-Custom", {"x-custom"}));
}

TEST(Http1HelpersTest, ConnectionTokens) {
  std::vector<Header> headers = {
      {"Connection", "Keep-Alive, X-Foo"},
      {"Host", "a"},
      {"connection", " ,UPGRADE ,, "},
  };
  EXPECT_THAT(ConnectionTokens(headers),
              ElementsAre("keep-alive", "x-foo", "upgrade"));
  EXPECT_TRUE(ConnectionTokens({}).empty());
}

TEST(Http1HelpersTest, EqualsIgnoreCase) {
  EXPECT_TRUE(EqualsIgnoreCase("Content-Length", "content-LENGTH"));
  EXPECT_TRUE(EqualsIgnoreCase("", ""));
  EXPECT_FALSE(EqualsIgnoreCase("Host", "Hosts"));
  EXPECT_FALSE(EqualsIgnoreCase("a-b", "a_b"));
}

TEST(Http1HelpersTest, ErrorDetailsNameTheCause) {
  EXPECT_THAT(RequestErrorDetail("GET / HTTP/1.1\r\nHost: a\r\n"
                                 "Transfer-Encoding: gzip\r\n\r\n"),
              HasSubstr("transfer coding"));
  EXPECT_THAT(RequestErrorDetail("GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n"),
              HasSubstr("bare LF"));
}

}  // namespace
}  // namespace forkd::http1
