#include "server/proxy/forwarding.h"

#include <string>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/http1/fields.h"

namespace forkd::proxy {
namespace {

using Fields = std::vector<std::pair<std::string, std::string>>;
using ::testing::ElementsAre;
using ::testing::Pair;

struct Outcome {
  Fields app;  // what the app gets: kept fields, then forkd's
  ForwardingCounts counts;
};

Outcome Forward(const std::string& allow, HeaderMap map, std::string_view peer,
                const Fields& in, std::string_view scheme = "http",
                std::string_view request_id = "rid-1") {
  ForwardingPolicy policy;
  auto nets = IpNetworks::Parse(allow);
  EXPECT_TRUE(nets.ok());
  policy.forwarded_allow = *nets;
  policy.header_map = map;
  std::vector<http1::Header> fields;
  const std::string* host = nullptr;
  for (const auto& [n, v] : in) fields.push_back({n, v});
  for (const http1::Header& f : fields) {
    if (http1::EqualsIgnoreCase(f.name, "Host")) host = &f.value;
  }
  ClientFacts facts{
      .peer = peer, .scheme = scheme, .host = host, .request_id = request_id};
  Outcome out;
  out.counts = ForwardedFields(
      policy, facts, fields,
      [&](size_t i) { out.app.emplace_back(fields[i].name, fields[i].value); },
      [&](std::string_view n, std::string_view v) {
        out.app.emplace_back(std::string(n), std::string(v));
      });
  return out;
}

const Fields kSpoofing = {
    {"Host", "shop.example"},
    {"X-Forwarded-For", "1.2.3.4"},
    {"x-forwarded-proto", "https"},
    {"X-Forwarded-Host", "evil.example"},
    {"X-Forwarded-Port", "443"},
    {"X-Forwarded-Ssl", "on"},
    {"X-Forwarded-Protocol", "ssl"},
    {"Forwarded", "for=1.2.3.4;proto=https"},
    {"X-Real-IP", "1.2.3.4"},
    {"X-Forwarded-Prefix", "/admin"},
    {"Accept", "*/*"},
};

TEST(ForwardingTest, UntrustedPeerGetsOnlyForkdsFacts) {
  Outcome o = Forward("", HeaderMap::kDrop, "203.0.113.9", kSpoofing);
  EXPECT_THAT(o.app,
              ElementsAre(Pair("Host", "shop.example"), Pair("Accept", "*/*"),
                          Pair("X-Forwarded-For", "203.0.113.9"),
                          Pair("X-Forwarded-Proto", "http"),
                          Pair("X-Forwarded-Host", "shop.example"),
                          Pair("X-Request-Id", "rid-1")));
  EXPECT_EQ(o.counts.untrusted_dropped, 9u);
  EXPECT_EQ(o.counts.underscore_dropped, 0u);
}

TEST(ForwardingTest, PeerOutsideTheListIsUntrusted) {
  Outcome o = Forward("10.0.0.0/8, ::1", HeaderMap::kDrop, "203.0.113.9",
                      kSpoofing, "https");
  EXPECT_EQ(o.counts.untrusted_dropped, 9u);
  EXPECT_THAT(o.app[3], Pair("X-Forwarded-Proto", "https"));
}

TEST(ForwardingTest, TrustedPeerKeepsItsFactsAndIsAppended) {
  Outcome o = Forward("10.0.0.0/8", HeaderMap::kDrop, "10.1.2.3", kSpoofing);
  EXPECT_THAT(
      o.app,
      ElementsAre(
          Pair("Host", "shop.example"), Pair("x-forwarded-proto", "https"),
          Pair("X-Forwarded-Host", "evil.example"),
          Pair("X-Forwarded-Port", "443"), Pair("X-Forwarded-Ssl", "on"),
          Pair("X-Forwarded-Protocol", "ssl"),
          Pair("Forwarded", "for=1.2.3.4;proto=https"),
          Pair("X-Real-IP", "1.2.3.4"), Pair("X-Forwarded-Prefix", "/admin"),
          Pair("Accept", "*/*"), Pair("X-Forwarded-For", "1.2.3.4, 10.1.2.3"),
          Pair("X-Request-Id", "rid-1")));
  EXPECT_EQ(o.counts.untrusted_dropped, 0u);
}

TEST(ForwardingTest, TrustedPeerWithoutFactsGetsForkds) {
  Outcome o = Forward("*", HeaderMap::kDrop, "192.0.2.1",
                      {{"Host", "a"},
                       {"X-Forwarded-For", "1.1.1.1"},
                       {"X-Forwarded-For", ""},
                       {"x-forwarded-for", "2.2.2.2"}});
  EXPECT_THAT(
      o.app, ElementsAre(Pair("Host", "a"),
                         Pair("X-Forwarded-For", "1.1.1.1, 2.2.2.2, 192.0.2.1"),
                         Pair("X-Forwarded-Proto", "http"),
                         Pair("X-Forwarded-Host", "a"),
                         Pair("X-Request-Id", "rid-1")));
}

TEST(ForwardingTest, UnixSocketClient) {
  // No address to state; its claims count only under "*".
  Outcome untrusted = Forward("127.0.0.1", HeaderMap::kDrop, "",
                              {{"X-Forwarded-For", "1.1.1.1"}});
  EXPECT_THAT(untrusted.app, ElementsAre(Pair("X-Forwarded-Proto", "http"),
                                         Pair("X-Request-Id", "rid-1")));
  Outcome trusted =
      Forward("*", HeaderMap::kDrop, "", {{"X-Forwarded-For", "1.1.1.1"}});
  EXPECT_THAT(trusted.app, ElementsAre(Pair("X-Forwarded-For", "1.1.1.1"),
                                       Pair("X-Forwarded-Proto", "http"),
                                       Pair("X-Request-Id", "rid-1")));
}

TEST(ForwardingTest, ClientRequestIdIsReplacedByForkds) {
  Outcome o = Forward("", HeaderMap::kDrop, "192.0.2.1",
                      {{"X-Request-Id", "client"}, {"x-request-id", "again"}},
                      "http", "client");
  EXPECT_THAT(o.app, ElementsAre(Pair("X-Forwarded-For", "192.0.2.1"),
                                 Pair("X-Forwarded-Proto", "http"),
                                 Pair("X-Request-Id", "client")));
}

const Fields kUnderscores = {
    {"X_Forwarded_For", "6.6.6.6"},
    {"X-Forwarded_Proto", "https"},
    {"X_Real_IP", "6.6.6.6"},
    {"X_Request_Id", "mine"},
    {"My_Header", "v"},
    {"My-Header", "w"},
};

TEST(ForwardingTest, DropRemovesUnderscoreNamesEvenFromTrustedPeers) {
  for (const char* allow : {"", "*"}) {
    Outcome o = Forward(allow, HeaderMap::kDrop, "192.0.2.1", kUnderscores);
    EXPECT_THAT(o.app, ElementsAre(Pair("My-Header", "w"),
                                   Pair("X-Forwarded-For", "192.0.2.1"),
                                   Pair("X-Forwarded-Proto", "http"),
                                   Pair("X-Request-Id", "rid-1")))
        << allow;
    EXPECT_EQ(o.counts.underscore_dropped, 5u);
    EXPECT_EQ(o.counts.untrusted_dropped, 0u);
  }
}

TEST(ForwardingTest, DangerousPassesUnderscoresButNeverSpoofedFacts) {
  Outcome o = Forward("", HeaderMap::kDangerous, "192.0.2.1", kUnderscores);
  // X_Forwarded_For is the same WSGI variable as X-Forwarded-For: it goes
  // with the other facts of an untrusted peer.
  EXPECT_THAT(o.app, ElementsAre(Pair("My_Header", "v"), Pair("My-Header", "w"),
                                 Pair("X-Forwarded-For", "192.0.2.1"),
                                 Pair("X-Forwarded-Proto", "http"),
                                 Pair("X-Request-Id", "rid-1")));
  EXPECT_EQ(o.counts.untrusted_dropped, 3u);
  Outcome trusted =
      Forward("*", HeaderMap::kDangerous, "192.0.2.1", kUnderscores);
  EXPECT_THAT(trusted.app,
              ElementsAre(Pair("X-Forwarded_Proto", "https"),
                          Pair("X_Real_IP", "6.6.6.6"), Pair("My_Header", "v"),
                          Pair("My-Header", "w"),
                          Pair("X-Forwarded-For", "6.6.6.6, 192.0.2.1"),
                          Pair("X-Request-Id", "rid-1")));
}

TEST(ForwardingTest, RefusedFieldOnlyUnderRefuse) {
  std::vector<http1::Header> fields = {
      {"Accept", "a"}, {"A_B", "1"}, {"C_D", "2"}};
  const http1::Header* f = RefusedField(HeaderMap::kRefuse, fields);
  ASSERT_NE(f, nullptr);
  EXPECT_EQ(f->name, "A_B");
  EXPECT_EQ(RefusedField(HeaderMap::kDrop, fields), nullptr);
  EXPECT_EQ(RefusedField(HeaderMap::kDangerous, fields), nullptr);
  EXPECT_EQ(RefusedField(HeaderMap::kRefuse, {{"Accept", "a"}}), nullptr);
  EXPECT_EQ(RefusalDetail(*f, /*trailer=*/false),
            "header field name \"A_B\" contains '_' (--header-map refuse)");
  EXPECT_EQ(RefusalDetail(*f, /*trailer=*/true),
            "trailer field name \"A_B\" contains '_' (--header-map refuse)");
}

TEST(ForwardingTest, Trailers) {
  std::vector<http1::Header> trailers = {{"Checksum", "1"},
                                         {"My_Trailer", "2"},
                                         {"X-Forwarded-For", "6.6.6.6"},
                                         {"forwarded", "for=x"}};
  for (HeaderMap map : {HeaderMap::kDrop, HeaderMap::kDangerous}) {
    ForwardingPolicy policy;
    policy.header_map = map;
    std::vector<std::string> kept;
    uint32_t dropped = ForwardedTrailers(
        policy, trailers, [&](size_t i) { kept.push_back(trailers[i].name); });
    if (map == HeaderMap::kDrop) {
      EXPECT_THAT(kept, ElementsAre("Checksum"));
      EXPECT_EQ(dropped, 1u);
    } else {
      EXPECT_THAT(kept, ElementsAre("Checksum", "My_Trailer"));
      EXPECT_EQ(dropped, 0u);
    }
  }
}

TEST(ForwardingTest, ParseHeaderMap) {
  EXPECT_EQ(*ParseHeaderMap("drop"), HeaderMap::kDrop);
  EXPECT_EQ(*ParseHeaderMap("refuse"), HeaderMap::kRefuse);
  EXPECT_EQ(*ParseHeaderMap("dangerous"), HeaderMap::kDangerous);
  EXPECT_FALSE(ParseHeaderMap("Drop").ok());
  EXPECT_FALSE(ParseHeaderMap("").ok());
}

}  // namespace
}  // namespace forkd::proxy
