// The sandbox resolver's DNS codec: questions parsed strictly, answers built from scratch,
// upstream answers read along their CNAME chain, hostile packets refused without overreads.
#include "net/dns_message.h"

#include <gtest/gtest.h>

namespace agentfense::net {
namespace {

using policy::IpAddress;

// The value, or a recorded failure and a default one (keeps every access checked).
template <typename T>
T Must(std::optional<T> v) {
  if (!v) {
    ADD_FAILURE() << "no value";
    return T{};
  }
  return *v;
}

std::string Hex(const char* bytes, size_t n) { return std::string(bytes, n); }

TEST(DnsMessage, ParsesAQuestionKeepingItsCase) {
  std::string q = BuildQuery(0x1234, "ExAmple.TEST");
  DnsQuestion parsed = Must(ParseQuery(q));
  EXPECT_EQ(parsed.id, 0x1234);
  EXPECT_TRUE(parsed.recursion_desired);
  EXPECT_EQ(parsed.name, "example.test");
  EXPECT_EQ(parsed.type, kTypeA);
  EXPECT_EQ(parsed.raw_name, std::string("\x07"
                                          "ExAmple"
                                          "\x04"
                                          "TEST",
                                          13) +
                                  '\0');
  EXPECT_FALSE(parsed.edns);
}

TEST(DnsMessage, RefusesWhatIsNotOneStandardQuestion) {
  std::string q = BuildQuery(1, "a.test");
  EXPECT_FALSE(ParseQuery(q.substr(0, 11)).has_value());  // short header
  std::string response = q;
  response[2] = static_cast<char>(0x80);  // QR set
  EXPECT_FALSE(ParseQuery(response).has_value());
  std::string two = q;
  two[5] = 2;  // two questions
  EXPECT_FALSE(ParseQuery(two).has_value());
  std::string pointer = q.substr(0, 12) + "\xc0\x0c" + q.substr(q.size() - 4);
  EXPECT_FALSE(ParseQuery(pointer).has_value());  // no compression in questions
  std::string truncated = q.substr(0, q.size() - 3);
  EXPECT_FALSE(ParseQuery(truncated).has_value());
  std::string long_label = q;
  long_label[12] = 70;  // a label length beyond the packet
  EXPECT_FALSE(ParseQuery(long_label).has_value());
}

TEST(DnsMessage, AnswersCarryOnlyIpv4AndAnEdeWhenRefused) {
  DnsQuestion q = Must(ParseQuery(BuildQuery(7, "a.test")));
  std::vector<IpAddress> addrs = {Must(IpAddress::Parse("198.51.100.10")),
                                  Must(IpAddress::Parse("2001:db8::1"))};
  std::string a = BuildAnswer(q, Rcode::kNoError, addrs, 60);
  ASSERT_GE(a.size(), 12u);
  EXPECT_EQ(static_cast<uint8_t>(a[3]) & 0xf, 0);
  EXPECT_EQ(a[7], 1);  // one answer: the IPv6 address is not an A record
  EXPECT_EQ(a.substr(a.size() - 4), Hex("\xc6\x33\x64\x0a", 4));

  q.edns = true;
  std::string refused = BuildAnswer(q, Rcode::kRefused, {}, 0, "not allowed");
  EXPECT_EQ(static_cast<uint8_t>(refused[3]) & 0xf, 5);
  EXPECT_EQ(refused[11], 1);  // the OPT record
  EXPECT_NE(refused.find("not allowed"), std::string::npos);
}

// An upstream answer: question a.test, a.test CNAME b.test, b.test A x2, plus an unrelated A.
std::string Upstream(uint16_t id) {
  std::string p = BuildQuery(id, "a.test");
  p[2] = static_cast<char>(0x81);
  p[3] = static_cast<char>(0x80);
  p[7] = 4;  // ancount
  auto rr = [&](const std::string& owner, uint16_t type, uint32_t ttl, const std::string& rdata) {
    p += owner;
    p += std::string{static_cast<char>(type >> 8), static_cast<char>(type & 0xff), 0, 1};
    p += std::string{static_cast<char>(ttl >> 24), static_cast<char>(ttl >> 16),
                     static_cast<char>(ttl >> 8), static_cast<char>(ttl)};
    p += std::string{static_cast<char>(rdata.size() >> 8), static_cast<char>(rdata.size())};
    p += rdata;
  };
  std::string b_test = std::string(
                           "\x01"
                           "b"
                           "\x04"
                           "test",
                           7) +
                       '\0';
  rr("\xc0\x0c", kTypeCname, 300, b_test);
  rr(b_test, kTypeA, 30, Hex("\x01\x02\x03\x04", 4));
  rr(b_test, kTypeA, 90, Hex("\x05\x06\x07\x08", 4));
  rr(std::string("\x01"
                 "c"
                 "\x04"
                 "test",
                 7) +
         '\0',
     kTypeA, 5, Hex("\x7f\x00\x00\x01", 4));
  return p;
}

TEST(DnsMessage, UpstreamAnswerFollowsTheCnameChain) {
  UpstreamAnswer ans = Must(ParseUpstreamAnswer(Upstream(9), "a.test"));
  EXPECT_EQ(ans.id, 9);
  EXPECT_EQ(ans.rcode, Rcode::kNoError);
  ASSERT_EQ(ans.addresses.size(), 2u);  // c.test's record is not part of the chain
  EXPECT_EQ(ans.addresses[0].ToString(), "1.2.3.4");
  EXPECT_EQ(ans.addresses[1].ToString(), "5.6.7.8");
  EXPECT_EQ(ans.ttl, 30u);
  EXPECT_FALSE(ParseUpstreamAnswer(Upstream(9), "other.test").has_value());
}

TEST(DnsMessage, HostileUpstreamAnswersNeverOverread) {
  std::string good = Upstream(3);
  for (size_t n = 0; n < good.size(); ++n) {
    (void)ParseUpstreamAnswer(good.substr(0, n), "a.test");  // must not crash or overread
  }
  std::string loop = good;
  // Make the CNAME's owner a pointer to itself: refused, not followed forever.
  size_t at = good.find("\xc0\x0c", 24);
  ASSERT_NE(at, std::string::npos);
  loop[at + 1] = static_cast<char>(at);
  auto parsed = ParseUpstreamAnswer(loop, "a.test");
  EXPECT_TRUE(parsed.value_or(UpstreamAnswer{}).addresses.empty());
}

}  // namespace
}  // namespace agentfense::net
