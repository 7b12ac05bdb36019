#include "server/http2/outgoing_fields.h"

#include <string>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace forkd::http2 {
namespace {

std::vector<std::pair<std::string, std::string>> Pairs(
    const OutgoingFields& f) {
  std::vector<std::pair<std::string, std::string>> out;
  for (size_t i = 0; i < f.size(); ++i) {
    const nghttp2_nv& nv = f.data()[i];
    out.emplace_back(std::string(reinterpret_cast<char*>(nv.name), nv.namelen),
                     std::string(reinterpret_cast<char*>(nv.value),
                                 nv.valuelen));
  }
  return out;
}

using Fields = std::vector<std::pair<std::string, std::string>>;

TEST(OutgoingFieldsTest, LowercasesAndDropsConnectionSpecificFields) {
  OutgoingFields f;
  f.AddPseudo(":status", std::to_string(200));
  f.AddRegular({{"Content-Type", "text/plain"},
                {"Connection", "keep-alive, X-Hop"},
                {"X-Hop", "1"},
                {"Keep-Alive", "timeout=5"},
                {"Transfer-Encoding", "chunked"},
                {"Upgrade", "h2c"},
                {"Host", "example"},
                {"HTTP2-Settings", "AAMAAABkAAQAAP__"},
                {"Proxy-Connection", "close"},
                {"X-Kept", "yes"}},
               /*keep_te_trailers=*/false);
  EXPECT_EQ(Pairs(f), (Fields{{":status", "200"},
                              {"content-type", "text/plain"},
                              {"x-kept", "yes"}}));
}

TEST(OutgoingFieldsTest, TeGoesOnlyAsTrailersAndOnlyWhenAsked) {
  std::vector<http1::Header> te = {{"TE", "gzip, trailers"}};
  OutgoingFields request;
  request.AddRegular(te, /*keep_te_trailers=*/true);
  EXPECT_EQ(Pairs(request), (Fields{{"te", "trailers"}}));

  OutgoingFields response;
  response.AddRegular(te, /*keep_te_trailers=*/false);
  EXPECT_EQ(response.size(), 0u);

  OutgoingFields no_trailers;
  no_trailers.AddRegular({{"TE", "gzip"}}, /*keep_te_trailers=*/true);
  EXPECT_EQ(no_trailers.size(), 0u);
}

TEST(OutgoingFieldsTest, DropsPseudoNamesAndFieldsNghttp2Refuses) {
  OutgoingFields f;
  f.AddRegular({{":path", "/evil"},
                {"bad name", "x"},
                {"x-bad-value", "a\r\nb"},
                {"x-good", "ok"}},
               /*keep_te_trailers=*/false);
  EXPECT_EQ(Pairs(f), (Fields{{"x-good", "ok"}}));
}

TEST(OutgoingFieldsTest, EntriesStayValidAsFieldsAreAdded) {
  OutgoingFields f;
  std::vector<http1::Header> many;
  for (int i = 0; i < 50; ++i) {
    many.push_back({"X-F" + std::to_string(i), std::to_string(i)});
  }
  f.AddPseudo(":method", "GET");
  f.AddRegular(many, /*keep_te_trailers=*/false);
  Fields got = Pairs(f);
  ASSERT_EQ(got.size(), 51u);
  EXPECT_EQ(got[0], (std::pair<std::string, std::string>{":method", "GET"}));
  EXPECT_EQ(got[50], (std::pair<std::string, std::string>{"x-f49", "49"}));
}

}  // namespace
}  // namespace forkd::http2
