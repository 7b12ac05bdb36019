// The head checks shared by the HTTP/1.1 parser and a head given parsed
// (an HTTP/2 stream), and the body decoder's decoded mode.
#include "server/http1/request_checks.h"

#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "server/http1/body_decoder.h"
#include "server/http1/request_parser.h"

namespace forkd::http1 {
namespace {

RequestHead Head(std::vector<Header> fields, std::string method = "GET",
                 std::string target = "/") {
  RequestHead h;
  h.method = std::move(method);
  h.target = std::move(target);
  h.headers = std::move(fields);
  return h;
}

// The verdict the parser gives the same head as bytes.
Error Parsed(const Limits& limits, const RequestHead& h) {
  std::string bytes = h.method + " " + h.target + " HTTP/1.1\r\n";
  for (const Header& f : h.headers) bytes += f.name + ": " + f.value + "\r\n";
  bytes += "\r\n";
  RequestParser p(limits);
  size_t consumed = 0;
  p.Parse(bytes, &consumed);
  return p.error();
}

Error Checked(const Limits& limits, RequestHead h) {
  Error e = CheckMethodAndTarget(h.method, h.target);
  std::string authority;
  if (e.kind == ErrorKind::kNone)
    e = CheckTargetForm(h.method, h.target, &authority);
  if (e.kind == ErrorKind::kNone) e = CheckHeadLimits(limits, h, nullptr);
  if (e.kind == ErrorKind::kNone) e = CheckRequestHead(limits, &h);
  return e;
}

TEST(RequestChecksTest, AGoodHeadGetsItsFraming) {
  RequestHead h = Head({{"Host", "a"}, {"Content-Length", "5"}}, "POST");
  ASSERT_EQ(CheckRequestHead(Limits(), &h).kind, ErrorKind::kNone);
  EXPECT_EQ(h.framing, Framing::kContentLength);
  EXPECT_EQ(h.content_length, 5u);
  EXPECT_TRUE(h.keep_alive);
  RequestHead e = Head({{"Host", "a"}, {"Expect", "100-continue"}});
  ASSERT_EQ(CheckRequestHead(Limits(), &e).kind, ErrorKind::kNone);
  EXPECT_TRUE(e.expect_continue);
  EXPECT_EQ(e.framing, Framing::kNone);
}

// Each fault gets the same kind and detail whether the head came as bytes
// through the parser or given parsed.
TEST(RequestChecksTest, SameVerdictAsTheParser) {
  Limits limits;
  limits.max_fields = 4;
  limits.max_field_size = 40;
  limits.max_request_line = 30;
  limits.max_body = 100;
  std::vector<RequestHead> heads = {
      Head({}),                                        // missing Host
      Head({{"Host", "a"}, {"host", "b"}}),            // two
      Head({{"Host", "a b"}}),                         // invalid
      Head({{"Host", "a"}, {"Content-Length", "x"}}),  // invalid CL
      Head({{"Host", "a"}, {"Content-Length", "1"}, {"Content-Length", "2"}}),
      Head({{"Host", "a"}, {"Content-Length", "101"}}),  // 413
      Head({{"Host", "a"}, {"Transfer-Encoding", "gzip"}}),
      Head({{"Host", "a"}, {"A", "1"}, {"B", "2"}, {"C", "3"}, {"D", "4"}}),
      Head({{"Host", "a"}, {"X-Long", std::string(40, 'v')}}),
      Head({{"Host", "a"}}, "GET", "/" + std::string(40, 'p')),  // 414
      Head({{"Host", "a"}}, "G@T"),
      Head({{"Host", "a"}}, "GET", "*"),
      Head({{"Host", "a"}}, "GET", "http://u@h/"),
      Head({{"Host", "a"}}),  // fine
  };
  for (const RequestHead& h : heads) {
    Error want = Parsed(limits, h);
    Error got = Checked(limits, h);
    EXPECT_EQ(got.kind, want.kind) << h.method << " " << h.target << " "
                                   << got.detail << " / " << want.detail;
    EXPECT_EQ(got.detail, want.detail);
  }
  EXPECT_EQ(Checked(limits, heads[5]).kind, ErrorKind::kBodyTooLarge);
  EXPECT_EQ(Checked(limits, heads[7]).detail, "too many header fields");
  EXPECT_EQ(Checked(limits, heads[8]).detail, "header field too long");
  EXPECT_EQ(Checked(limits, heads[9]).kind, ErrorKind::kUriTooLong);
  EXPECT_EQ(Checked(limits, heads.back()).kind, ErrorKind::kNone);
}

// The field count is the head's own fields: exactly --limit-request-fields
// pass (the HTTP/2 path used to count two lines of its own on top).
TEST(RequestChecksTest, CountsTheHeadsOwnFields) {
  Limits limits;
  limits.max_fields = 3;
  RequestHead h = Head({{"Host", "a"}, {"A", "1"}, {"B", "2"}});
  EXPECT_EQ(CheckHeadLimits(limits, h, nullptr).kind, ErrorKind::kNone);
  h.headers.push_back({"C", "3"});
  EXPECT_EQ(CheckHeadLimits(limits, h, nullptr).detail,
            "too many header fields");
}

TEST(RequestChecksTest, HeadBytesAreTheHttp11HeadSize) {
  RequestHead h = Head({{"Host", "a"}});
  size_t bytes = 0;
  ASSERT_EQ(CheckHeadLimits(Limits(), h, &bytes).kind, ErrorKind::kNone);
  EXPECT_EQ(bytes, std::string("GET / HTTP/1.1\r\nHost: a\r\n\r\n").size());
}

TEST(BodyDecoderDecodedTest, CountsAStreamedBodyAsAChunkedOne) {
  BodyDecoder d(Framing::kChunked, 0, /*max_body=*/5);
  std::string out;
  EXPECT_EQ(d.AcceptDecoded("abc", &out), 3u);
  EXPECT_EQ(d.AcceptDecoded("def", &out), 0u);
  EXPECT_TRUE(d.failed());
  EXPECT_EQ(d.error().kind, ErrorKind::kBodyTooLarge);
  EXPECT_EQ(d.error().detail, "chunked body exceeds limit");
  EXPECT_EQ(out, "abc");
}

TEST(BodyDecoderDecodedTest, TrailersAreJudgedAsATrailerSection) {
  BodyDecoder ok(Framing::kChunked, 0, 0, TrailerLimits{2, 20});
  std::string out;
  ok.AcceptDecoded("x", &out);
  EXPECT_TRUE(ok.EndDecoded({{"A", "1"}, {"B", "2"}}));
  EXPECT_TRUE(ok.done());
  ASSERT_EQ(ok.trailers().size(), 2u);
  EXPECT_EQ(ok.trailers()[1].name, "B");

  BodyDecoder many(Framing::kChunked, 0, 0, TrailerLimits{2, 20});
  many.EndDecoded({{"A", "1"}, {"B", "2"}, {"C", "3"}});
  EXPECT_EQ(many.error().kind, ErrorKind::kHeadersTooLarge);
  EXPECT_EQ(many.error().detail, "too many trailer fields");

  BodyDecoder big(Framing::kChunked, 0, 0, TrailerLimits{2, 20});
  big.EndDecoded({{"A", std::string(30, 'v')}});
  EXPECT_EQ(big.error().detail, "trailer field too long");
}

TEST(BodyDecoderDecodedTest, AContentLengthBodyTakesItsLengthAndNoTrailers) {
  BodyDecoder d(Framing::kContentLength, 4, 0);
  std::string out;
  EXPECT_EQ(d.AcceptDecoded("abcdef", &out), 4u);
  EXPECT_TRUE(d.done());
  EXPECT_EQ(out, "abcd");
  BodyDecoder cut(Framing::kContentLength, 4, 0);
  cut.AcceptDecoded("ab", &out);
  EXPECT_FALSE(cut.EndDecoded({{"X", "1"}}));  // the trailers are dropped
  EXPECT_TRUE(cut.failed());
}

}  // namespace
}  // namespace forkd::http1
