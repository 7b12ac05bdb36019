// The parsers' one ordering rule: the verdict on a message never depends on
// how its bytes were split across calls. Every input below is parsed in one
// call, byte by byte, and cut in two at every offset; all must agree.
#include <algorithm>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/http1/body_decoder.h"
#include "server/http1/message.h"
#include "server/http1/request_parser.h"
#include "server/http1/response_parser.h"

namespace forkd::http1 {
namespace {

// What a parse ended with, comparable across splits.
struct Verdict {
  ParseStatus status = ParseStatus::kNeedMore;
  ErrorKind kind = ErrorKind::kNone;
  std::string detail;
  size_t consumed = 0;
  std::vector<std::string> fields;  // "name: value" of a finished head

  friend bool operator==(const Verdict&, const Verdict&) = default;
};

std::ostream& operator<<(std::ostream& os, const Verdict& v) {
  return os << "status=" << static_cast<int>(v.status)
            << " kind=" << static_cast<int>(v.kind) << " detail=\"" << v.detail
            << "\" consumed=" << v.consumed << " fields=" << v.fields.size();
}

template <typename Head>
std::vector<std::string> FieldsOf(const Head& head) {
  std::vector<std::string> out;
  for (const Header& h : head.headers) out.push_back(h.name + ": " + h.value);
  return out;
}

// Feeds `raw` as growing prefixes ending at each of `ends` (ascending, the
// last one raw.size()), as a connection's buffer grows, until a verdict.
Verdict RequestVerdict(std::string_view raw, const Limits& limits,
                       const std::vector<size_t>& ends) {
  RequestParser parser(limits);
  Verdict v;
  for (size_t end : ends) {
    v.status = parser.Parse(raw.substr(0, end), &v.consumed);
    if (v.status != ParseStatus::kNeedMore) break;
  }
  v.kind = parser.error().kind;
  v.detail = parser.error().detail;
  if (v.status == ParseStatus::kDone) {
    v.fields = FieldsOf(parser.head());
    v.fields.push_back(parser.head().method + " " + parser.head().target);
  }
  return v;
}

Verdict ResponseVerdict(std::string_view raw, const std::vector<size_t>& ends) {
  ResponseParser parser;
  Verdict v;
  for (size_t end : ends) {
    v.status = parser.Parse(raw.substr(0, end), "GET", &v.consumed);
    if (v.status != ParseStatus::kNeedMore) break;
  }
  v.kind = parser.error().kind;
  v.detail = parser.error().detail;
  if (v.status == ParseStatus::kDone) v.fields = FieldsOf(parser.head());
  return v;
}

// A chunked body decoded from pieces ending at `ends`.
Verdict ChunkedVerdict(std::string_view raw, TrailerLimits limits,
                       const std::vector<size_t>& ends) {
  BodyDecoder decoder(Framing::kChunked, 0, /*max_body=*/1000, limits);
  std::string payload;
  size_t from = 0;
  Verdict v;
  for (size_t end : ends) {
    // Like the proxy: unconsumed bytes stay in front of the next read.
    from += decoder.Decode(raw.substr(from, end - from), &payload);
    if (decoder.done() || decoder.failed()) break;
  }
  v.status = decoder.failed() ? ParseStatus::kError
             : decoder.done() ? ParseStatus::kDone
                              : ParseStatus::kNeedMore;
  v.kind = decoder.error().kind;
  v.detail = decoder.error().detail;
  if (!decoder.failed()) v.consumed = from;
  for (const Header& h : decoder.trailers()) {
    v.fields.push_back(h.name + ": " + h.value);
  }
  v.fields.push_back(payload);
  return v;
}

std::vector<size_t> OneChunk(size_t n) { return {n}; }

std::vector<size_t> ByteByByte(size_t n) {
  std::vector<size_t> ends;
  for (size_t i = 1; i <= n; ++i) ends.push_back(i);
  return ends;
}

// Checks that every way of splitting gives the one-chunk verdict, and
// returns it. `stride` > 1 thins out the two-piece splits of long inputs.
template <typename Fn>
Verdict SameForEverySplit(std::string_view raw, Fn verdict_for,
                          size_t stride = 1) {
  const Verdict whole = verdict_for(OneChunk(raw.size()));
  EXPECT_EQ(verdict_for(ByteByByte(raw.size())), whole)
      << "byte by byte, input of " << raw.size() << " bytes";
  for (size_t cut = 1; cut < raw.size(); cut += stride) {
    EXPECT_EQ(verdict_for(std::vector<size_t>{cut, raw.size()}), whole)
        << "cut at " << cut << " of " << raw.size();
  }
  // Cut just before and after every LF: where the ordering used to differ.
  for (size_t i = 0; i < raw.size(); ++i) {
    if (raw[i] != '\n') continue;
    EXPECT_EQ(verdict_for(std::vector<size_t>{i, raw.size()}), whole)
        << "cut before the LF at " << i;
    EXPECT_EQ(verdict_for(std::vector<size_t>{i, i + 1, raw.size()}), whole)
        << "LF alone at " << i;
  }
  return whole;
}

Verdict SameRequestVerdict(std::string_view raw,
                           const Limits& limits = Limits(), size_t stride = 1) {
  return SameForEverySplit(
      raw,
      [&](const std::vector<size_t>& ends) {
        return RequestVerdict(raw, limits, ends);
      },
      stride);
}

// The reproduction: a request line over --limit-request-line that
// ends in a bare LF was 400 ("bare LF") in one write and 414 in pieces.
TEST(SplitVerdictTest, LongRequestLineEndingInBareLfIs414EveryWay) {
  std::string raw = "GET /" + std::string(4100, 'a') + " HTTP/1.1\n";
  Verdict v = SameRequestVerdict(raw, Limits(), /*stride=*/7);
  EXPECT_EQ(v.status, ParseStatus::kError);
  EXPECT_EQ(v.kind, ErrorKind::kUriTooLong);
}

TEST(SplitVerdictTest, LongFieldLineEndingInBareLfIs431EveryWay) {
  Limits limits;
  limits.max_field_size = 20;
  std::string raw =
      "GET / HTTP/1.1\r\nHost: a\r\nX-Long: " + std::string(30, 'v') + "\n";
  Verdict v = SameRequestVerdict(raw, limits);
  EXPECT_EQ(v.kind, ErrorKind::kHeadersTooLarge);
  EXPECT_EQ(v.detail, "header field too long");
}

TEST(SplitVerdictTest, FieldPastTheCountEndingInBareLfIs431EveryWay) {
  Limits limits;
  limits.max_fields = 1;
  Verdict v =
      SameRequestVerdict("GET / HTTP/1.1\r\nHost: a\r\nX: 1\n\r\n", limits);
  EXPECT_EQ(v.detail, "too many header fields");
}

// Three limits broken by one line: the one whose byte came first decides,
// not the order the checks happen to run in.
TEST(SplitVerdictTest, FirstBrokenLimitDecidesWithinALine) {
  Limits limits;
  limits.max_request_line = 30;
  limits.max_fields = 2;
  limits.max_field_size = 12;
  // Past the count at its first byte, too long at its 11th and past the
  // section's cap (62 bytes) at its 32nd: "too many", whatever the split.
  EXPECT_EQ(SameRequestVerdict("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: " +
                                   std::string(37, 'v') + "\r\n\r\n",
                               limits)
                .detail,
            "too many header fields");
  // A lone CR might still be the empty line that ends the head: the count
  // is broken only by the byte after it.
  EXPECT_EQ(SameRequestVerdict(
                "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\n\rB: 2\r\n\r\n", limits)
                .detail,
            "too many header fields");
  Verdict done =
      SameRequestVerdict("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\n\r\n", limits);
  EXPECT_EQ(done.status, ParseStatus::kDone);
}

// --limit-request-field-size counts the field line with its CRLF, as
// Gunicorn does (len(line) + 2 > limit is refused).
TEST(SplitVerdictTest, FieldSizeCountsTheCrlf) {
  Limits limits;
  limits.max_field_size = 20;
  std::string at_limit = "X-Pad: " + std::string(11, 'v');  // 18 + CRLF
  EXPECT_EQ(SameRequestVerdict(
                "GET / HTTP/1.1\r\nHost: a\r\n" + at_limit + "\r\n\r\n", limits)
                .status,
            ParseStatus::kDone);
  EXPECT_EQ(
      SameRequestVerdict(
          "GET / HTTP/1.1\r\nHost: a\r\n" + at_limit + "v\r\n\r\n", limits)
          .detail,
      "header field too long");
  // A limit under 2 leaves no room for any field line.
  limits.max_field_size = 1;
  EXPECT_EQ(
      SameRequestVerdict("GET / HTTP/1.1\r\nHost: a\r\n\r\n", limits).detail,
      "header field too long");
  EXPECT_EQ(SameRequestVerdict("GET / HTTP/1.0\r\n\r\n", limits).status,
            ParseStatus::kDone);
}

TEST(SplitVerdictTest, AssortedRequestsAgree) {
  Limits tight;
  tight.max_request_line = 24;
  tight.max_fields = 3;
  tight.max_field_size = 16;
  const std::string_view kInputs[] = {
      "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
      "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET / HTTP/1.1\nHost: a\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\n\n",
      "GET / HTTP/1.1\r\nHost: a\r\r\n\r\n",
      "GET /aaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n",
      "GET /aaaaaaaaaaaaaaaaaaaaaaaaaa\r HTTP/1.1\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX: 0123456789abcdef\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nX: 0123456789ab\r\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n",
      "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\rC\n",
      "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
      "GET / HTTP/1.2\r\nHost: a\r\n\r\n",
      "GET / HTTP/2.0\r\nHost: a\r\n\r\n",
      "GET http://b:80/x HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET s://]ufd/ HTTP/1.1\r\nHost: a\r\n\r\n",
  };
  for (std::string_view raw : kInputs) {
    SCOPED_TRACE(raw);
    SameRequestVerdict(raw);
    SameRequestVerdict(raw, tight);
  }
}

// Requests derived from a few seeds by a fixed sequence of edits (a tiny,
// deterministic fuzzer): byte flips to the bytes that matter here.
TEST(SplitVerdictTest, EditedRequestsAgree) {
  Limits tight;
  tight.max_request_line = 20;
  tight.max_fields = 2;
  tight.max_field_size = 12;
  const std::string seeds[] = {
      "GET /abc HTTP/1.1\r\nHost: a\r\nX-A: bcdefg\r\n\r\n",
      "POST /u HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
  };
  constexpr char kBytes[] = {'\r', '\n', 'a', ' ', ':', '\0'};
  uint32_t state = 12345;
  auto next = [&state] {
    state = state * 1103515245u + 12345u;
    return state >> 8;
  };
  for (const std::string& seed : seeds) {
    for (int round = 0; round < 60; ++round) {
      std::string raw = seed;
      for (int edit = 0; edit < 3; ++edit) {
        raw[next() % raw.size()] = kBytes[next() % sizeof(kBytes)];
      }
      SCOPED_TRACE(raw);
      SameRequestVerdict(raw, tight);
    }
  }
}

TEST(SplitVerdictTest, ResponseHeadOverTheCapEndingInBareLfIs431EveryWay) {
  std::string raw =
      "HTTP/1.1 200 OK\r\nX-Big: " + std::string(64 * 1024, 'v') + "\n";
  Verdict v = SameForEverySplit(
      raw,
      [&](const std::vector<size_t>& ends) {
        return ResponseVerdict(raw, ends);
      },
      /*stride=*/4099);
  EXPECT_EQ(v.kind, ErrorKind::kHeadersTooLarge);
}

TEST(SplitVerdictTest, AssortedResponsesAgree) {
  const std::string_view kInputs[] = {
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
      "HTTP/1.1 200 OK\nContent-Length: 2\r\n\r\n",
      "HTTP/1.1 200 OK\r\nA\r: b\r\n\r\n",
      "HTTP/1.2 204 No Content\r\n\r\n",
      "HTTP/2.0 200 OK\r\n\r\n",
      "HTTP/1.1 200 OK\r\nX: y\r\n\n",
  };
  for (std::string_view raw : kInputs) {
    SCOPED_TRACE(raw);
    SameForEverySplit(raw, [&](const std::vector<size_t>& ends) {
      return ResponseVerdict(raw, ends);
    });
  }
}

TEST(SplitVerdictTest, ChunkedBodiesAgree) {
  const TrailerLimits limits{/*max_fields=*/2, /*max_field_size=*/12};
  const std::string_view kInputs[] = {
      "3\r\nabc\r\n0\r\n\r\n",
      "3\r\nabc\r\n0\r\nX: 1\r\nY: 2\r\n\r\n",
      "3\r\nabc\r\n0\r\nX: 1\r\nY: 2\r\nZ: 3\r\n\r\n",
      "3\r\nabc\r\n0\r\nX: 0123456789\n",
      "3\r\nabc\r\n0\r\nX: 01234567\r\r\n",
      "3\r\nabc\r\n0\r\nX: 0123456\r\n\r\n",
      "3\r\nabc\r\n0\r\nX: 01234567\r\n\r\n",
      "3\r\nabc\n",
      "3;x=\"a\"\r\nabc\r\n0\r\n\r\n",
      "FFFFFFFFFFFFFFFFF1\r\n",
      "0x5\r\nhello\r\n0\r\n\r\n",
      "5\r\nabc\r\n",
  };
  for (std::string_view raw : kInputs) {
    SCOPED_TRACE(raw);
    SameForEverySplit(raw, [&](const std::vector<size_t>& ends) {
      return ChunkedVerdict(raw, limits, ends);
    });
  }
}

// The section cap and a line's length are broken at different bytes of the
// same line: the earlier one decides.
TEST(SplitVerdictTest, TrailerSectionCapAndLineLengthKeepByteOrder) {
  // Lines of at most 18 bytes + CRLF; the section holds 2 * 20 + 2 bytes.
  const TrailerLimits limits{/*max_fields=*/2, /*max_field_size=*/20};
  auto verdict = [&](const std::string& raw) {
    return SameForEverySplit(raw, [&](const std::vector<size_t>& ends) {
      return ChunkedVerdict(raw, limits, ends);
    });
  };
  const std::string full = "0\r\nA: 0123456789abcde\r\nB: 0123456789abcde\r\n";
  // After two full lines 2 bytes are left: the third line breaks the
  // section at its third byte, long before its own length.
  EXPECT_EQ(verdict(full + "C: 0123456789abcdefghij\r\n\r\n").detail,
            "trailer section too large");
  // A line too long at its 19th byte, with room for 22: the line.
  EXPECT_EQ(verdict("0\r\nA: 0123456789abcdefghijkl\r\n\r\n").detail,
            "trailer field too long");
}

}  // namespace
}  // namespace forkd::http1
