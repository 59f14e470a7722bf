// The egress policy of a sandbox (docs/NETWORK.md): which destinations its processes may reach
// when its network is on. Pure: parsing, validation and decisions, no I/O. The supervisor's
// egress proxy (net/) asks it about every DNS question, TCP connection and UDP flow; the service
// and the CLI use the same parser, so a rule means the same thing everywhere and is refused
// with the same message everywhere.
//
// A rule is one string:  [udp:|tcp:]TARGET[:PORTS]
//   TARGET  a host name (`github.com`), a wildcard (`*.pypi.org`: every name strictly below
//           pypi.org), an IPv4 address or CIDR (`10.1.2.3`, `10.0.0.0/8`), or an IPv6 address or
//           CIDR, in brackets when PORTS follow (`[2001:db8::/32]:443`).
//   PORTS   `443`, `8000-8100`, or a comma list of both (`22,80,443`). None: every port.
//   udp:    the rule is about UDP datagrams instead of TCP connections (DNS never needs a rule:
//           the sandbox's resolver always answers, for the names the policy allows).
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace agentfense::policy {

// An IPv4 or IPv6 address. IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) are stored as IPv4, so a
// decision never depends on which spelling a program used.
struct IpAddress {
  bool v6 = false;
  std::array<uint8_t, 16> bytes{};  // IPv4: the first 4 bytes

  static IpAddress V4(uint32_t host_order);
  static IpAddress FromBytes(bool v6, const uint8_t* bytes);
  // "10.0.0.1", "2001:db8::1", "::ffff:10.0.0.1". nullopt when not an address.
  static std::optional<IpAddress> Parse(std::string_view text);
  std::string ToString() const;
  size_t size() const { return v6 ? 16 : 4; }
  bool operator==(const IpAddress&) const = default;
  bool operator<(const IpAddress& o) const { return v6 != o.v6 ? v6 < o.v6 : bytes < o.bytes; }
};

struct IpPrefix {
  IpAddress address;  // host bits zero
  int length = 0;     // 0..32 or 0..128
  bool Contains(const IpAddress& a) const;
  std::string ToString() const;  // "10.0.0.0/8", "10.1.2.3" for a /32
};

// Addresses a sandbox may reach only when a rule names them explicitly (by address or CIDR):
// loopback, private (RFC 1918, ULA), shared/CGNAT, link-local (cloud metadata lives there:
// 169.254.169.254, fd00:ec2::254 is ULA), multicast, broadcast, "this network", documentation
// and benchmark ranges, reserved space, and the IPv6 forms that embed an IPv4 address (6to4,
// NAT64, Teredo, IPv4-compatible). Everything else is public.
bool IsSpecialPurpose(const IpAddress& a);

// "IP", "IP:PORT" or "[IPv6]:PORT" (an upstream resolver, for instance).
struct SocketAddress {
  IpAddress address;
  uint16_t port = 0;
};
Result<SocketAddress> ParseSocketAddress(std::string_view text, uint16_t default_port);

struct PortRange {
  uint16_t first = 0;
  uint16_t last = 0;
  bool operator==(const PortRange&) const = default;
};

enum class Transport { kTcp, kUdp };

struct EgressRule {
  enum class Kind { kName, kWildcard, kPrefix };
  Kind kind = Kind::kName;
  Transport transport = Transport::kTcp;
  std::string name;              // kName: the name; kWildcard: the suffix below which names match
  IpPrefix prefix;               // kPrefix
  std::vector<PortRange> ports;  // empty: every port
  std::string text;              // canonical form ("*.pypi.org:443", "udp:10.0.0.0/8:53")

  bool MatchesPort(uint16_t port) const;
};

// Parses and validates one rule (kInvalidArgument with the reason and the rule's text).
Result<EgressRule> ParseEgressRule(std::string_view text);

// A lower-case, dot-free-at-the-end host name, or nullopt when `name` is not a valid DNS name
// (an address literal is not a name).
std::optional<std::string> NormalizeHostName(std::string_view name);

inline constexpr size_t kMaxEgressRules = 256;

// What the API's and the CLI's switches mean, in one place: the network is on when asked or when
// any rule is given; "every public destination" when asked explicitly, or when the network is on
// without a single rule (the historical meaning of `network: true`).
struct EgressMode {
  bool network = false;
  bool any_public = false;
};
inline EgressMode ResolveEgressMode(bool network, bool any_public, size_t rule_count) {
  EgressMode m;
  m.network = network || any_public || rule_count > 0;
  m.any_public = any_public || (m.network && rule_count == 0);
  return m;
}

// Why a destination was allowed or refused, for the audit log and error messages.
struct EgressDecision {
  bool allowed = false;
  int rule = -1;  // index of the deciding rule; -1: any-public mode or no rule
  std::string reason;
};

class EgressPolicy {
 public:
  EgressPolicy() = default;  // network off: nothing allowed
  // `any_public`: every public destination (TCP and UDP) plus what the rules add. The rules are
  // validated one by one; errors name the rule's index. `public_extra`: ranges the operator
  // declares public although they are special-purpose (a lab network); never loopback or
  // link-local (refused).
  static Result<EgressPolicy> Create(bool any_public, const std::vector<std::string>& rules,
                                     const std::vector<std::string>& public_extra = {});

  bool any_public() const { return any_public_; }
  const std::vector<EgressRule>& rules() const { return rules_; }
  std::vector<std::string> RuleTexts() const;

  // Public for this policy: not special-purpose, or in the operator's public_extra ranges.
  bool IsPublic(const IpAddress& a) const;

  // May the sandbox's resolver answer questions about `name` (lower case)? True in any-public
  // mode and when some name or wildcard rule (any port, any transport) matches it.
  EgressDecision AllowsLookup(std::string_view name) const;
  // May an answer for an allowed name carry `a`? Public addresses that are not the host's own
  // (`host_local`), and others only when some address rule names them explicitly: else DNS
  // rebinding could point an allowed name at 127.0.0.1 or the metadata address.
  bool AllowsAnswer(const IpAddress& a, bool host_local) const;
  // A connection or datagram to `a`:`port` decided by address alone: an address rule, or
  // any-public mode and a public address. `host_local`: the address is one of the host's own
  // (reachable only through an explicit address rule).
  EgressDecision AllowsAddress(const IpAddress& a, uint16_t port, Transport t,
                               bool host_local) const;
  // A connection or datagram to `name`:`port`.
  EgressDecision AllowsName(std::string_view name, uint16_t port, Transport t) const;

 private:
  bool any_public_ = false;
  std::vector<EgressRule> rules_;
  std::vector<IpPrefix> public_extra_;
};

}  // namespace agentfense::policy
