// The trailer section of chunked bodies (RFC 9112 7.1.2): kept for the
// caller, bounded by the head's field limits, strictly validated; and the
// helpers that decide which trailer fields and TE values go on.
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/http1/body_decoder.h"
#include "server/http1/fields.h"
#include "server/http1/message.h"

namespace forkd::http1 {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

using Fields = std::vector<std::pair<std::string, std::string>>;

Fields AsPairs(const std::vector<Header>& headers) {
  Fields out;
  for (const Header& h : headers) out.emplace_back(h.name, h.value);
  return out;
}

// Decodes `in` whole, then byte by byte, expecting the same trailers and a
// done decoder both times; returns them.
Fields DecodeTrailers(std::string_view in, TrailerLimits limits = {}) {
  BodyDecoder whole(Framing::kChunked, 0, 0, limits);
  std::string out;
  EXPECT_EQ(whole.Decode(in, &out), in.size());
  EXPECT_TRUE(whole.done()) << whole.error().detail;

  BodyDecoder slow(Framing::kChunked, 0, 0, limits);
  std::string slow_out;
  for (size_t i = 0; i < in.size(); ++i) {
    EXPECT_EQ(slow.Decode(in.substr(i, 1), &slow_out), 1u) << i;
  }
  EXPECT_TRUE(slow.done()) << slow.error().detail;
  EXPECT_EQ(slow_out, out);
  EXPECT_EQ(AsPairs(slow.trailers()), AsPairs(whole.trailers()));
  return AsPairs(whole.trailers());
}

// Expects `in` to fail, whole and byte by byte, with the same kind; returns
// the error.
Error TrailerError(std::string_view in, TrailerLimits limits = {}) {
  BodyDecoder whole(Framing::kChunked, 0, 0, limits);
  std::string out;
  whole.Decode(in, &out);
  EXPECT_TRUE(whole.failed()) << "input: " << in;
  EXPECT_FALSE(whole.done());

  BodyDecoder slow(Framing::kChunked, 0, 0, limits);
  for (size_t i = 0; i < in.size() && !slow.failed(); ++i) {
    slow.Decode(in.substr(i, 1), &out);
  }
  EXPECT_TRUE(slow.failed()) << "byte by byte: " << in;
  EXPECT_EQ(slow.error().kind, whole.error().kind) << in;
  return whole.error();
}

TEST(ChunkedTrailersTest, KeepsFieldsInOrderWithValuesTrimmed) {
  EXPECT_THAT(
      DecodeTrailers("3\r\nabc\r\n0\r\n"
                     "X-Checksum:  sha256=abc \r\n"
                     "grpc-status:0\r\n"
                     "X-Empty:\r\n"
                     "X-Checksum: again\r\n"
                     "\r\n"),
      ElementsAre(std::pair("X-Checksum", "sha256=abc"),
                  std::pair("grpc-status", "0"), std::pair("X-Empty", ""),
                  std::pair("X-Checksum", "again")));
}

TEST(ChunkedTrailersTest, NoTrailerSectionMeansNoFields) {
  EXPECT_THAT(DecodeTrailers("0\r\n\r\n"), IsEmpty());
  EXPECT_THAT(DecodeTrailers("2\r\nhi\r\n0;ext=1\r\n\r\n"), IsEmpty());
}

TEST(ChunkedTrailersTest, StopsAtTheEndOfTheSection) {
  // A pipelined request behind the body is not part of it.
  std::string_view body = "0\r\nX-A: 1\r\n\r\n";
  std::string in = std::string(body) + "GET / HTTP/1.1\r\n";
  BodyDecoder decoder(Framing::kChunked, 0, 0);
  std::string out;
  EXPECT_EQ(decoder.Decode(in, &out), body.size());
  EXPECT_TRUE(decoder.done());
  EXPECT_THAT(AsPairs(decoder.trailers()), ElementsAre(std::pair("X-A", "1")));
}

TEST(ChunkedTrailersTest, FieldCountLimitIs431) {
  TrailerLimits limits{/*max_fields=*/2, /*max_field_size=*/100};
  EXPECT_THAT(DecodeTrailers("0\r\nA: 1\r\nB: 2\r\n\r\n", limits),
              ElementsAre(std::pair("A", "1"), std::pair("B", "2")));
  Error e = TrailerError("0\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", limits);
  EXPECT_EQ(e.kind, ErrorKind::kHeadersTooLarge);
  EXPECT_EQ(StatusForError(e.kind), 431);
  EXPECT_THAT(e.detail, HasSubstr("too many trailer fields"));
}

TEST(ChunkedTrailersTest, FieldSizeLimitIs431) {
  TrailerLimits limits{/*max_fields=*/10, /*max_field_size=*/20};
  // "X: " + 15 bytes + CRLF is 20: at the limit, which counts the CRLF
  // as --limit-request-field-size does for the head.
  std::string ok = "0\r\nX: " + std::string(15, 'v') + "\r\n\r\n";
  EXPECT_THAT(DecodeTrailers(ok, limits),
              ElementsAre(std::pair("X", std::string(15, 'v'))));
  Error e =
      TrailerError("0\r\nX: " + std::string(16, 'v') + "\r\n\r\n", limits);
  EXPECT_EQ(e.kind, ErrorKind::kHeadersTooLarge);
  EXPECT_THAT(e.detail, HasSubstr("trailer field too long"));
  // Found before the line ends, so a peer cannot make it grow unseen.
  EXPECT_EQ(TrailerError("0\r\nX: " + std::string(5000, 'v'), limits).kind,
            ErrorKind::kHeadersTooLarge);
}

TEST(ChunkedTrailersTest, UnlimitedFieldsStillCapTheSection) {
  // No count or size limit (0): 64 KiB for the whole section.
  std::string section;
  for (int i = 0; section.size() < 70 * 1024; ++i) {
    section +=
        "X-" + std::to_string(i) + ": " + std::string(1000, 'v') + "\r\n";
  }
  Error e = TrailerError("0\r\n" + section + "\r\n");
  EXPECT_EQ(e.kind, ErrorKind::kHeadersTooLarge);
  EXPECT_THAT(e.detail, HasSubstr("trailer section too large"));
  // 60 KiB passes.
  std::string smaller = section.substr(0, section.find("X-60:"));
  EXPECT_EQ(DecodeTrailers("0\r\n" + smaller + "\r\n").size(), 60u);
}

TEST(ChunkedTrailersTest, MalformedTrailersAre400) {
  struct Case {
    std::string_view in;
    std::string_view detail;
  };
  const Case kCases[] = {
      {"0\r\nX: a\rb\r\n\r\n", "bare CR"},
      {"0\r\nX\r: a\r\n\r\n", "bare CR"},
      {"0\r\nX: a\r\n folded\r\n\r\n", "obs-fold"},
      {"0\r\nX: a\r\n\tfolded\r\n\r\n", "obs-fold"},
      {"0\r\n folded: a\r\n\r\n", "obs-fold"},
      {"0\r\nBad Name: a\r\n\r\n", "invalid character in header name"},
      {"0\r\nBad(Name): a\r\n\r\n", "invalid character in header name"},
      {"0\r\nX-\xC3\xA9: a\r\n\r\n", "invalid character in header name"},
      {"0\r\nX : a\r\n\r\n", "whitespace before colon"},
      {"0\r\nnocolon\r\n\r\n", "missing colon"},
      {"0\r\n: empty name\r\n\r\n", "empty header name"},
      {std::string_view("0\r\nX: a\0b\r\n\r\n", 13), "NUL"},
      {"0\r\nX: a\x01\r\n\r\n", "invalid character in header value"},
      {"0\r\nX: a\n\r\n", "bare LF"},
      {"0\r\n\n", "bare LF"},
  };
  for (const Case& c : kCases) {
    Error e = TrailerError(c.in);
    EXPECT_EQ(e.kind, ErrorKind::kBadRequest) << c.in;
    EXPECT_THAT(e.detail, HasSubstr(c.detail)) << c.in;
    EXPECT_THAT(e.detail, HasSubstr("trailer")) << c.in;
  }
}

TEST(ChunkedTrailersTest, ObsTextInValuesIsAccepted) {
  // field-value allows obs-text (RFC 9110 5.5); only names are tokens.
  EXPECT_THAT(DecodeTrailers("0\r\nX-Name: caf\xC3\xA9\r\n\r\n"),
              ElementsAre(std::pair("X-Name", "caf\xC3\xA9")));
}

TEST(TrailerFieldsTest, FieldsThatCannotFollowTheContentAreNotAllowed) {
  for (std::string_view name : {"Content-Length",
                                "transfer-encoding",
                                "Trailer",
                                "TE",
                                "Connection",
                                "Keep-Alive",
                                "Upgrade",
                                "Host",
                                "Authorization",
                                "Proxy-Authorization",
                                "Cookie",
                                "Set-Cookie",
                                "WWW-Authenticate",
                                "Cache-Control",
                                "Expect",
                                "Range",
                                "If-Match",
                                "Content-Type",
                                "content-encoding",
                                "Content-MD5",
                                "CONTENT-RANGE",
                                "Location",
                                "Vary",
                                "Date",
                                "X-Forwarded-For",
                                "x-forwarded-proto",
                                "X-Forwarded-Host",
                                "X-Request-Id",
                                "Forwarded",
                                "Max-Forwards",
                                "Age",
                                "Expires",
                                "Retry-After"}) {
    EXPECT_FALSE(IsAllowedInTrailer(name)) << name;
  }
  for (std::string_view name :
       {"X-Checksum", "grpc-status", "grpc-message", "Server-Timing", "Digest",
        "ETag-ish", "Content", "X-Content-Length"}) {
    EXPECT_TRUE(IsAllowedInTrailer(name)) << name;
  }
}

TEST(TrailerFieldsTest, TeAcceptsTrailers) {
  EXPECT_TRUE(TeAcceptsTrailers("trailers"));
  EXPECT_TRUE(TeAcceptsTrailers("TRAILERS"));
  EXPECT_TRUE(TeAcceptsTrailers("gzip;q=0.5 , trailers"));
  EXPECT_TRUE(TeAcceptsTrailers(",, trailers ,"));
  EXPECT_FALSE(TeAcceptsTrailers(""));
  EXPECT_FALSE(TeAcceptsTrailers("gzip, deflate"));
  EXPECT_FALSE(TeAcceptsTrailers("trailer"));
  EXPECT_FALSE(TeAcceptsTrailers("trailers;q=1"));
  EXPECT_FALSE(TeAcceptsTrailers("x-trailers"));
}

TEST(TrailerFieldsTest, TrailerIsNotHopByHop) {
  // It announces the trailer section end to end (RFC 9110 6.6.2).
  EXPECT_FALSE(IsHopByHop("Trailer", {}));
  EXPECT_TRUE(IsHopByHop("TE", {}));
}

}  // namespace
}  // namespace forkd::http1
