// The egress rule syntax, its validator and its decisions (docs/NETWORK.md).
#include "policy/egress.h"

#include <gtest/gtest.h>

namespace agentfense::policy {
namespace {

IpAddress Ip(const char* s) {
  auto a = IpAddress::Parse(s);
  EXPECT_TRUE(a.has_value()) << s;
  return a.value_or(IpAddress{});
}

TEST(EgressRule, CanonicalForms) {
  struct Case {
    const char* in;
    const char* out;
  } cases[] = {
      {"GitHub.com", "github.com"},
      {"github.com.", "github.com"},
      {"github.com:443", "github.com:443"},
      {"tcp:github.com:22,443", "github.com:22,443"},
      {"*.PyPI.org", "*.pypi.org"},
      {"*.pypi.org:443", "*.pypi.org:443"},
      {"10.0.0.0/8", "10.0.0.0/8"},
      {"10.1.2.3", "10.1.2.3"},
      {"10.1.2.3/32:5432", "10.1.2.3:5432"},
      {"udp:10.0.0.0/8:5000-5100", "udp:10.0.0.0/8:5000-5100"},
      {"2001:db8::/32", "[2001:db8::/32]"},
      {"[2001:db8::1]:443", "[2001:db8::1]:443"},
      {"::ffff:10.0.0.1", "10.0.0.1"},
      {"_srv.example.com", "_srv.example.com"},
      {"localhost:8080", "localhost:8080"},
      // A host named like a transport keeps its explicit "tcp:" (found by egress_fuzz).
      {"tcp:udp:4", "tcp:udp:4"},
      {"UDP:443", "tcp:udp:443"},  // transports are lower case: this is TCP to the host UDP
      {"udp:tcp:53", "udp:tcp:53"},
  };
  for (const auto& c : cases) {
    auto r = ParseEgressRule(c.in);
    ASSERT_TRUE(r.ok()) << c.in << ": " << r.error().ToString();
    EXPECT_EQ(r->text, c.out) << c.in;
    // The canonical form parses to itself.
    auto again = ParseEgressRule(r->text);
    ASSERT_TRUE(again.ok()) << r->text;
    EXPECT_EQ(again->text, r->text);
  }
}

TEST(EgressRule, RefusedWithReasons) {
  struct Case {
    const char* in;
    const char* says;
  } cases[] = {
      {"", "empty rule"},
      {"*", "'*' alone is not a rule"},
      {"a.*.com", "whole first label"},
      {"*.", "a wildcard is"},
      {"github.com:0", "bad port '0'"},
      {"github.com:65536", "bad port"},
      {"github.com:", "empty port list"},
      {"github.com:80-22", "backwards"},
      {"github.com:http", "bad port 'http'"},
      {"10.0.0.1/8", "host bits are set (did you mean 10.0.0.0/8?)"},
      {"10.0.0.0/33", "bad prefix length"},
      {"300.1.2.3", "not an IP address"},
      {"1.2.3", "not an IP address"},
      {"exa mple.com", "printable ASCII"},
      {"bücher.de", "xn--"},
      {"-bad.com", "not a host name"},
      {"[10.0.0.1]:80", "brackets are for IPv6"},
      {"[2001:db8::1]80", "expected ':PORTS'"},
      {"[2001:db8::1", "missing ']'"},
      {"2001:db8::zz", "not an IP address"},
      {"a..b", "not a host name"},
  };
  for (const auto& c : cases) {
    auto r = ParseEgressRule(c.in);
    ASSERT_FALSE(r.ok()) << c.in;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
    EXPECT_NE(r.error().ToString().find(c.says), std::string::npos)
        << c.in << " -> " << r.error().ToString();
  }
  std::string long_name(260, 'a');
  EXPECT_FALSE(ParseEgressRule(long_name).ok());
}

TEST(EgressPolicy, ErrorsNameTheRuleIndexAndLimits) {
  auto p = EgressPolicy::Create(false, {"github.com", "bad rule"});
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().ToString().find("egress rule 1"), std::string::npos);
  std::vector<std::string> many(kMaxEgressRules + 1, "a.com");
  EXPECT_FALSE(EgressPolicy::Create(false, many).ok());
  EXPECT_FALSE(EgressPolicy::Create(true, {}, {"127.0.0.0/16"}).ok());
  EXPECT_FALSE(EgressPolicy::Create(true, {}, {"169.254.169.254"}).ok());
  EXPECT_FALSE(EgressPolicy::Create(true, {}, {"0.0.0.0/0"}).ok());
  EXPECT_TRUE(EgressPolicy::Create(true, {}, {"198.51.100.0/24"}).ok());
}

TEST(SpecialPurpose, Table) {
  for (const char* s : {"127.0.0.1",
                        "10.1.2.3",
                        "172.16.0.1",
                        "172.31.255.255",
                        "192.168.1.1",
                        "169.254.169.254",
                        "100.64.0.1",
                        "100.100.100.200",
                        "0.0.0.0",
                        "255.255.255.255",
                        "224.0.0.1",
                        "192.0.0.192",
                        "198.51.100.7",
                        "::1",
                        "::",
                        "fe80::1",
                        "fd00:ec2::254",
                        "fc00::1",
                        "ff02::1",
                        "2001:db8::1",
                        "::ffff:127.0.0.1",
                        "::ffff:169.254.169.254",
                        "64:ff9b::7f00:1",
                        "2002:7f00:1::",
                        "2001::1",
                        "::127.0.0.1"}) {
    EXPECT_TRUE(IsSpecialPurpose(Ip(s))) << s;
  }
  for (const char* s : {"1.1.1.1", "8.8.8.8", "140.82.112.3", "172.32.0.1", "100.128.0.1",
                        "2606:4700::1111", "2a00:1450::1"}) {
    EXPECT_FALSE(IsSpecialPurpose(Ip(s))) << s;
  }
}

TEST(EgressPolicy, NamesWildcardsAndPorts) {
  auto p = EgressPolicy::Create(false, {"github.com:22,443", "*.pypi.org", "udp:ntp.example:123"});
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->AllowsLookup("github.com").allowed);
  EXPECT_TRUE(p->AllowsLookup("files.pypi.org").allowed);
  EXPECT_TRUE(p->AllowsLookup("a.b.pypi.org").allowed);
  EXPECT_TRUE(p->AllowsLookup("ntp.example").allowed);
  EXPECT_FALSE(p->AllowsLookup("pypi.org").allowed);  // the wildcard is strictly below
  EXPECT_FALSE(p->AllowsLookup("xpypi.org").allowed);
  EXPECT_FALSE(p->AllowsLookup("github.com.evil.test").allowed);
  EXPECT_FALSE(p->AllowsLookup("evil.test").allowed);

  EXPECT_TRUE(p->AllowsName("github.com", 443, Transport::kTcp).allowed);
  EXPECT_TRUE(p->AllowsName("github.com", 22, Transport::kTcp).allowed);
  EXPECT_FALSE(p->AllowsName("github.com", 80, Transport::kTcp).allowed);
  EXPECT_FALSE(p->AllowsName("github.com", 443, Transport::kUdp).allowed);
  EXPECT_TRUE(p->AllowsName("files.pypi.org", 8443, Transport::kTcp).allowed);
  EXPECT_TRUE(p->AllowsName("ntp.example", 123, Transport::kUdp).allowed);
  EXPECT_FALSE(p->AllowsName("ntp.example", 123, Transport::kTcp).allowed);
  auto d = p->AllowsName("evil.test", 443, Transport::kTcp);
  EXPECT_FALSE(d.allowed);
  EXPECT_EQ(d.reason, "tcp evil.test:443 refused: no egress rule allows it");
  EXPECT_EQ(p->AllowsName("github.com", 22, Transport::kTcp).rule, 0);
}

TEST(EgressPolicy, AddressesNeedAnAddressRule) {
  auto p = EgressPolicy::Create(
      false, {"github.com", "10.9.0.0/16:5432", "127.0.0.1:5201", "udp:10.9.0.53:53"});
  ASSERT_TRUE(p.ok());
  // A raw public address is refused with a list: names do not allow their addresses.
  EXPECT_FALSE(p->AllowsAddress(Ip("140.82.112.3"), 443, Transport::kTcp, false).allowed);
  EXPECT_TRUE(p->AllowsAddress(Ip("10.9.1.2"), 5432, Transport::kTcp, false).allowed);
  EXPECT_FALSE(p->AllowsAddress(Ip("10.9.1.2"), 5433, Transport::kTcp, false).allowed);
  EXPECT_FALSE(p->AllowsAddress(Ip("10.9.1.2"), 5432, Transport::kUdp, false).allowed);
  EXPECT_TRUE(p->AllowsAddress(Ip("10.9.0.53"), 53, Transport::kUdp, false).allowed);
  // Host loopback only through the explicit rule, on its port.
  EXPECT_TRUE(p->AllowsAddress(Ip("127.0.0.1"), 5201, Transport::kTcp, true).allowed);
  EXPECT_FALSE(p->AllowsAddress(Ip("127.0.0.1"), 9000, Transport::kTcp, true).allowed);
  // The mapped spelling decides like the IPv4 one.
  EXPECT_TRUE(p->AllowsAddress(Ip("::ffff:127.0.0.1"), 5201, Transport::kTcp, true).allowed);
}

TEST(EgressPolicy, AnyPublicMode) {
  auto p = EgressPolicy::Create(true, {}, {"198.51.100.0/24"});
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->AllowsLookup("anything.example").allowed);
  EXPECT_TRUE(p->AllowsAddress(Ip("1.1.1.1"), 443, Transport::kTcp, false).allowed);
  EXPECT_TRUE(p->AllowsAddress(Ip("1.1.1.1"), 123, Transport::kUdp, false).allowed);
  EXPECT_TRUE(p->AllowsAddress(Ip("198.51.100.9"), 80, Transport::kTcp, false).allowed);
  for (const char* s : {"127.0.0.1", "10.0.0.1", "169.254.169.254", "192.168.0.1", "::1",
                        "fd00:ec2::254", "203.0.113.1"}) {
    auto d = p->AllowsAddress(Ip(s), 80, Transport::kTcp, false);
    EXPECT_FALSE(d.allowed) << s;
    EXPECT_NE(d.reason.find("not a public address"), std::string::npos) << d.reason;
  }
  // A public address of the host itself is not "public" for a sandbox.
  auto own = p->AllowsAddress(Ip("1.1.1.1"), 443, Transport::kTcp, true);
  EXPECT_FALSE(own.allowed);
  EXPECT_NE(own.reason.find("address of the host"), std::string::npos);
}

TEST(EgressPolicy, RebindingAnswers) {
  auto p = EgressPolicy::Create(false, {"allowed.test", "10.5.0.0/16"});
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->AllowsAnswer(Ip("140.82.112.3"), false));
  EXPECT_FALSE(p->AllowsAnswer(Ip("127.0.0.1"), false));
  EXPECT_FALSE(p->AllowsAnswer(Ip("169.254.169.254"), false));
  EXPECT_FALSE(p->AllowsAnswer(Ip("10.1.0.1"), false));
  EXPECT_TRUE(p->AllowsAnswer(Ip("10.5.0.1"), false));  // named by an address rule
  EXPECT_FALSE(p->AllowsAnswer(Ip("140.82.112.3"), true));
}

TEST(EgressPolicy, NetworkOffAllowsNothing) {
  EgressPolicy off;
  EXPECT_FALSE(off.AllowsLookup("github.com").allowed);
  EXPECT_FALSE(off.AllowsAddress(Ip("1.1.1.1"), 443, Transport::kTcp, false).allowed);
}

TEST(EgressMode, WhatTheSwitchesMean) {
  auto off = ResolveEgressMode(false, false, 0);
  EXPECT_FALSE(off.network);
  auto on = ResolveEgressMode(true, false, 0);  // network: true alone = any public destination
  EXPECT_TRUE(on.network && on.any_public);
  auto list = ResolveEgressMode(false, false, 2);  // a list implies the network, default deny
  EXPECT_TRUE(list.network && !list.any_public);
  auto both = ResolveEgressMode(true, false, 2);
  EXPECT_TRUE(both.network && !both.any_public);
  auto plus = ResolveEgressMode(false, true, 2);  // public plus the listed exceptions
  EXPECT_TRUE(plus.network && plus.any_public);
}

TEST(SocketAddress, Parse) {
  auto a = ParseSocketAddress("198.51.100.53", 53);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->address.ToString(), "198.51.100.53");
  EXPECT_EQ(a->port, 53);
  EXPECT_EQ(ParseSocketAddress("10.0.0.1:5353", 53)->port, 5353);
  EXPECT_EQ(ParseSocketAddress("[2001:db8::1]:5353", 53)->port, 5353);
  EXPECT_TRUE(ParseSocketAddress("2001:db8::1", 53).ok());
  EXPECT_FALSE(ParseSocketAddress("dns.example", 53).ok());
  EXPECT_FALSE(ParseSocketAddress("10.0.0.1:0", 53).ok());
  EXPECT_FALSE(ParseSocketAddress("[2001:db8::1", 53).ok());
}

TEST(HostName, Normalize) {
  EXPECT_EQ(NormalizeHostName("WWW.Example.COM."), "www.example.com");
  EXPECT_FALSE(NormalizeHostName("10.0.0.1").has_value());
  EXPECT_FALSE(NormalizeHostName("::1").has_value());
  EXPECT_FALSE(NormalizeHostName("1.2.3.4.5").has_value());
  EXPECT_FALSE(NormalizeHostName("").has_value());
  EXPECT_FALSE(NormalizeHostName("a b").has_value());
  EXPECT_TRUE(NormalizeHostName("3com.com").has_value());
}

}  // namespace
}  // namespace agentfense::policy
