#include "server/common/ip_networks.h"

#include "gtest/gtest.h"

namespace forkd {
namespace {

IpNetworks Must(std::string_view list) {
  auto n = IpNetworks::Parse(list);
  EXPECT_TRUE(n.ok()) << n.status();
  return n.ok() ? *n : IpNetworks();
}

TEST(IpNetworksTest, EmptyTrustsNobody) {
  IpNetworks none = Must("");
  EXPECT_TRUE(none.empty());
  EXPECT_FALSE(none.Contains("127.0.0.1"));
  EXPECT_FALSE(none.Contains(""));
  EXPECT_FALSE(IpNetworks().Contains("::1"));
}

TEST(IpNetworksTest, StarIsEveryoneUnixSocketsIncluded) {
  IpNetworks all = Must(" * ");
  EXPECT_TRUE(all.everyone());
  EXPECT_TRUE(all.Contains("203.0.113.9"));
  EXPECT_TRUE(all.Contains("2001:db8::5"));
  EXPECT_TRUE(all.Contains(""));
}

TEST(IpNetworksTest, AddressesAndCidrs) {
  IpNetworks n = Must("10.0.0.0/8, 192.0.2.7 ,2001:db8::/32,::1,172.16.0.0/12");
  EXPECT_TRUE(n.Contains("10.200.3.4"));
  EXPECT_FALSE(n.Contains("11.0.0.1"));
  EXPECT_TRUE(n.Contains("192.0.2.7"));
  EXPECT_FALSE(n.Contains("192.0.2.8"));
  EXPECT_TRUE(n.Contains("2001:db8:ffff::1"));
  EXPECT_FALSE(n.Contains("2001:db9::1"));
  EXPECT_TRUE(n.Contains("::1"));
  EXPECT_TRUE(n.Contains("172.31.255.255"));
  EXPECT_FALSE(n.Contains("172.32.0.0"));
  EXPECT_FALSE(n.Contains(""));  // a unix-socket client
  EXPECT_FALSE(n.Contains("garbage"));
}

TEST(IpNetworksTest, OddPrefixesAndZero) {
  IpNetworks n = Must("192.0.2.128/25");
  EXPECT_TRUE(n.Contains("192.0.2.200"));
  EXPECT_FALSE(n.Contains("192.0.2.127"));
  EXPECT_TRUE(Must("0.0.0.0/0").Contains("8.8.8.8"));
  EXPECT_FALSE(Must("0.0.0.0/0").Contains("2001:db8::1"));
  EXPECT_TRUE(Must("::/0").Contains("2001:db8::1"));
}

TEST(IpNetworksTest, MappedIpv4MatchesIpv4Entries) {
  IpNetworks n = Must("127.0.0.1");
  EXPECT_TRUE(n.Contains("::ffff:127.0.0.1"));
  EXPECT_FALSE(n.Contains("::ffff:127.0.0.2"));
}

TEST(IpNetworksTest, BadEntriesNameThemselves) {
  for (const char* bad :
       {"10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0/8", "example.com",
        "10.0.0.0/8x", "1.2.3.4/-1", "10.0.0.0/08a", "unix"}) {
    auto n = IpNetworks::Parse(bad);
    ASSERT_FALSE(n.ok()) << bad;
    EXPECT_NE(n.status().message().find(bad), std::string_view::npos)
        << n.status();
  }
}

}  // namespace
}  // namespace forkd
