#include "policy/egress.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace agentfense::policy {
namespace {

Error Bad(std::string_view rule, std::string_view why) {
  return Error(ErrorCode::kInvalidArgument, fmt::format("egress rule '{}': {}", rule, why));
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// Special-purpose ranges (IANA IPv4/IPv6 special-purpose address registries, plus the ranges a
// cloud or a host uses internally). Kept as text: the table is read once per process.
constexpr const char* kSpecialV4[] = {
    "0.0.0.0/8",        // "this network"
    "10.0.0.0/8",       // private
    "100.64.0.0/10",    // shared address space (CGNAT; some clouds' metadata: 100.100.100.200)
    "127.0.0.0/8",      // loopback
    "169.254.0.0/16",   // link-local: 169.254.169.254 is the cloud metadata service
    "172.16.0.0/12",    // private
    "192.0.0.0/24",     // IETF protocol assignments (192.0.0.192: a cloud's metadata)
    "192.0.2.0/24",     // documentation
    "192.88.99.0/24",   // 6to4 relay anycast
    "192.168.0.0/16",   // private
    "198.18.0.0/15",    // benchmarking (also used as fake-IP space by proxies)
    "198.51.100.0/24",  // documentation
    "203.0.113.0/24",   // documentation
    "224.0.0.0/4",      // multicast
    "240.0.0.0/4",      // reserved, and 255.255.255.255
};
constexpr const char* kSpecialV6[] = {
    "::/96",           // unspecified, loopback, IPv4-compatible
    "64:ff9b::/96",    // NAT64 (embeds an IPv4 address)
    "64:ff9b:1::/48",  // local-use NAT64
    "100::/64",        // discard-only
    "2001::/23",       // IETF protocol assignments (Teredo 2001::/32 embeds IPv4)
    "2001:db8::/32",   // documentation
    "2002::/16",       // 6to4 (embeds IPv4)
    "3fff::/20",       // documentation
    "5f00::/16",       // segment routing
    "fc00::/7",        // unique local (fd00:ec2::254: a cloud's metadata)
    "fe80::/10",       // link-local
    "fec0::/10",       // site-local (deprecated)
    "ff00::/8",        // multicast
};

// Never declared public by an operator: what a sandbox must not reach through "public" mode.
constexpr const char* kNeverPublic[] = {"127.0.0.0/8", "169.254.0.0/16", "::/96", "fe80::/10",
                                        "0.0.0.0/8"};

std::optional<IpPrefix> ParsePrefix(std::string_view text, std::string* why) {
  size_t slash = text.find('/');
  std::string_view addr_text = text.substr(0, slash);
  auto addr = IpAddress::Parse(addr_text);
  if (!addr) {
    *why = "not an IP address";
    return std::nullopt;
  }
  int max = addr->v6 ? 128 : 32;
  // An IPv4-mapped spelling (::ffff:10.0.0.0/104) is stored as IPv4: shift its length.
  bool mapped = !addr->v6 && addr_text.find(':') != std::string_view::npos;
  int length = max;
  if (slash != std::string_view::npos) {
    std::string_view len_text = text.substr(slash + 1);
    auto [p, ec] = std::from_chars(len_text.data(), len_text.data() + len_text.size(), length);
    int limit = mapped ? 128 : max;
    if (ec != std::errc() || p != len_text.data() + len_text.size() || len_text.empty() ||
        length < 0 || length > limit) {
      *why = fmt::format("bad prefix length '{}' (0-{})", len_text, limit);
      return std::nullopt;
    }
    if (mapped) {
      if (length < 96) {
        *why = "an IPv4-mapped prefix must be /96 or longer";
        return std::nullopt;
      }
      length -= 96;
    }
  }
  IpPrefix p{*addr, length};
  IpPrefix masked = p;
  for (size_t i = 0; i < addr->size(); ++i) {
    int bits = std::clamp(length - static_cast<int>(i) * 8, 0, 8);
    uint8_t mask = bits == 0 ? 0 : static_cast<uint8_t>(0xff << (8 - bits));
    masked.address.bytes[i] = static_cast<uint8_t>(addr->bytes[i] & mask);
  }
  if (!(masked.address == p.address)) {
    *why = fmt::format("host bits are set (did you mean {}?)", masked.ToString());
    return std::nullopt;
  }
  return p;
}

std::vector<IpPrefix> BuildTable(const char* const* begin, const char* const* end) {
  std::vector<IpPrefix> out;
  std::string why;
  for (auto* p = begin; p != end; ++p) {
    if (auto prefix = ParsePrefix(*p, &why)) out.push_back(*prefix);
  }
  return out;
}

bool InAny(const std::vector<IpPrefix>& table, const IpAddress& a) {
  return std::any_of(table.begin(), table.end(), [&](const IpPrefix& p) { return p.Contains(a); });
}

bool ValidLabel(std::string_view label) {
  if (label.empty() || label.size() > 63) return false;
  if (label.front() == '-' || label.back() == '-') return false;
  return std::all_of(label.begin(), label.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
  });
}

Result<std::vector<PortRange>> ParsePorts(std::string_view rule, std::string_view text) {
  std::vector<PortRange> out;
  if (text.empty()) return Bad(rule, "empty port list after ':'");
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    std::string_view item = text.substr(
        start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    size_t dash = item.find('-');
    auto num = [&](std::string_view s, uint16_t* v) {
      unsigned n = 0;
      auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
      if (ec != std::errc() || p != s.data() + s.size() || s.empty() || n == 0 || n > 65535) {
        return false;
      }
      *v = static_cast<uint16_t>(n);
      return true;
    };
    PortRange r;
    if (dash == std::string_view::npos) {
      if (!num(item, &r.first)) {
        return Bad(rule, fmt::format("bad port '{}' (1-65535)", item));
      }
      r.last = r.first;
    } else {
      if (!num(item.substr(0, dash), &r.first) || !num(item.substr(dash + 1), &r.last)) {
        return Bad(rule, fmt::format("bad port range '{}' (FIRST-LAST, 1-65535)", item));
      }
      if (r.first > r.last) return Bad(rule, fmt::format("port range '{}' is backwards", item));
    }
    out.push_back(r);
    if (out.size() > 64) return Bad(rule, "more than 64 port ranges");
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

std::string PortsText(const std::vector<PortRange>& ports) {
  std::string out;
  for (const auto& r : ports) {
    if (!out.empty()) out += ',';
    out += r.first == r.last ? std::to_string(r.first) : fmt::format("{}-{}", r.first, r.last);
  }
  return out;
}

bool NameMatches(const EgressRule& r, std::string_view name) {
  if (r.kind == EgressRule::Kind::kName) return name == r.name;
  if (r.kind != EgressRule::Kind::kWildcard) return false;
  // Strictly below the suffix: "a.pypi.org" and "a.b.pypi.org", never "pypi.org" or "xpypi.org".
  return name.size() > r.name.size() + 1 && name.ends_with(r.name) &&
         name[name.size() - r.name.size() - 1] == '.';
}

}  // namespace

IpAddress IpAddress::V4(uint32_t host_order) {
  IpAddress a;
  a.bytes[0] = static_cast<uint8_t>(host_order >> 24);
  a.bytes[1] = static_cast<uint8_t>(host_order >> 16);
  a.bytes[2] = static_cast<uint8_t>(host_order >> 8);
  a.bytes[3] = static_cast<uint8_t>(host_order);
  return a;
}

IpAddress IpAddress::FromBytes(bool v6, const uint8_t* bytes) {
  IpAddress a;
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (v6 && std::memcmp(bytes, kMapped, 12) == 0) {
    std::memcpy(a.bytes.data(), bytes + 12, 4);
    return a;
  }
  a.v6 = v6;
  std::memcpy(a.bytes.data(), bytes, v6 ? 16 : 4);
  return a;
}

std::optional<IpAddress> IpAddress::Parse(std::string_view text) {
  if (text.empty() || text.size() > 64) return std::nullopt;
  std::string s(text);
  uint8_t buf[16];
  if (s.find(':') == std::string::npos) {
    // inet_pton accepts exactly four decimal parts: no "010.1", "1.2.3", hex or octal forms.
    if (::inet_pton(AF_INET, s.c_str(), buf) != 1) return std::nullopt;
    return FromBytes(false, buf);
  }
  if (::inet_pton(AF_INET6, s.c_str(), buf) != 1) return std::nullopt;
  return FromBytes(true, buf);
}

std::string IpAddress::ToString() const {
  char buf[INET6_ADDRSTRLEN] = {};
  ::inet_ntop(v6 ? AF_INET6 : AF_INET, bytes.data(), buf, sizeof(buf));
  return buf;
}

bool IpPrefix::Contains(const IpAddress& a) const {
  if (a.v6 != address.v6) return false;
  int full = length / 8;
  if (std::memcmp(a.bytes.data(), address.bytes.data(), static_cast<size_t>(full)) != 0) {
    return false;
  }
  int rest = length % 8;
  if (rest == 0) return true;
  uint8_t mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (a.bytes[static_cast<size_t>(full)] & mask) == address.bytes[static_cast<size_t>(full)];
}

std::string IpPrefix::ToString() const {
  if (length == (address.v6 ? 128 : 32)) return address.ToString();
  return fmt::format("{}/{}", address.ToString(), length);
}

bool IsSpecialPurpose(const IpAddress& a) {
  static const std::vector<IpPrefix> v4 = BuildTable(std::begin(kSpecialV4), std::end(kSpecialV4));
  static const std::vector<IpPrefix> v6 = BuildTable(std::begin(kSpecialV6), std::end(kSpecialV6));
  return InAny(a.v6 ? v6 : v4, a);
}

bool EgressRule::MatchesPort(uint16_t port) const {
  if (ports.empty()) return true;
  return std::any_of(ports.begin(), ports.end(),
                     [port](const PortRange& r) { return port >= r.first && port <= r.last; });
}

std::optional<std::string> NormalizeHostName(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.size() > 253) return std::nullopt;
  std::string lower = Lower(name);
  if (IpAddress::Parse(lower)) return std::nullopt;
  size_t start = 0;
  bool all_digits_last = false;
  while (true) {
    size_t dot = lower.find('.', start);
    std::string_view label = std::string_view(lower).substr(
        start, dot == std::string::npos ? std::string::npos : dot - start);
    if (!ValidLabel(label)) return std::nullopt;
    all_digits_last =
        std::all_of(label.begin(), label.end(), [](char c) { return c >= '0' && c <= '9'; });
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  // "1.2.3.4.5" or "10.1": not a name a resolver would look up (and an address in disguise).
  if (all_digits_last) return std::nullopt;
  return lower;
}

Result<EgressRule> ParseEgressRule(std::string_view text) {
  if (text.empty()) return Bad(text, "empty rule");
  if (text.size() > 300) return Bad(text.substr(0, 40), "longer than 300 bytes");
  for (char c : text) {
    if (static_cast<unsigned char>(c) <= ' ' || static_cast<unsigned char>(c) >= 0x7f) {
      return Bad(text,
                 "only printable ASCII without spaces (write internationalized names in "
                 "their xn-- form)");
    }
  }
  EgressRule r;
  std::string_view rest = text;
  if (rest.starts_with("udp:")) {
    r.transport = Transport::kUdp;
    rest.remove_prefix(4);
  } else if (rest.starts_with("tcp:")) {
    rest.remove_prefix(4);
  }
  std::string_view target = rest, ports;
  bool has_ports = false;
  if (rest.starts_with('[')) {
    size_t close = rest.find(']');
    if (close == std::string_view::npos) return Bad(text, "missing ']' after an IPv6 address");
    target = rest.substr(1, close - 1);
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') return Bad(text, "expected ':PORTS' after ']'");
      ports = after.substr(1);
      has_ports = true;
    }
    if (target.find(':') == std::string_view::npos) {
      return Bad(text, "brackets are for IPv6 addresses");
    }
  } else if (std::count(rest.begin(), rest.end(), ':') > 1) {
    target = rest;  // a bare IPv6 address or prefix: no ports (use brackets for ports)
  } else if (size_t colon = rest.find(':'); colon != std::string_view::npos) {
    target = rest.substr(0, colon);
    ports = rest.substr(colon + 1);
    has_ports = true;
  }
  if (target.empty()) return Bad(text, "no host name or address");
  if (has_ports) {
    AF_ASSIGN_OR_RETURN(r.ports, ParsePorts(text, ports));
  }

  bool looks_like_address = target.find(':') != std::string_view::npos ||
                            target.find('/') != std::string_view::npos ||
                            std::all_of(target.begin(), target.end(),
                                        [](char c) { return (c >= '0' && c <= '9') || c == '.'; });
  std::string prefix_text;
  if (looks_like_address) {
    std::string why;
    auto prefix = ParsePrefix(target, &why);
    if (!prefix) return Bad(text, why);
    r.kind = EgressRule::Kind::kPrefix;
    r.prefix = *prefix;
    prefix_text = r.prefix.ToString();
    if (r.prefix.address.v6) prefix_text = "[" + prefix_text + "]";
  } else if (target.starts_with("*.")) {
    auto name = NormalizeHostName(target.substr(2));
    if (!name) {
      return Bad(text,
                 "a wildcard is '*.' followed by a domain name (letters, digits, '-', "
                 "'_', dots)");
    }
    r.kind = EgressRule::Kind::kWildcard;
    r.name = *name;
    prefix_text = "*." + r.name;
  } else {
    if (target.find('*') != std::string_view::npos) {
      return Bad(text, target == "*"
                           ? "'*' alone is not a rule: turn the network on without rules for "
                             "every public destination"
                           : "'*' is only allowed as the whole first label ('*.example.com')");
    }
    auto name = NormalizeHostName(target);
    if (!name) {
      return Bad(text,
                 "not a host name (labels of letters, digits, '-' and '_', at most 253 "
                 "bytes) nor an IP address or CIDR");
    }
    r.kind = EgressRule::Kind::kName;
    r.name = *name;
    prefix_text = r.name;
  }
  // The canonical text reads back as the same rule: TCP is implied, except for a host named like
  // a transport ("udp:4" would read as UDP to 4; "tcp:udp:4" is TCP to the host udp).
  const bool named_like_transport = prefix_text == "udp" || prefix_text == "tcp";
  r.text = (r.transport == Transport::kUdp ? "udp:" : named_like_transport ? "tcp:" : "") +
           prefix_text;
  if (!r.ports.empty()) r.text += ":" + PortsText(r.ports);
  return r;
}

Result<EgressPolicy> EgressPolicy::Create(bool any_public, const std::vector<std::string>& rules,
                                          const std::vector<std::string>& public_extra) {
  if (rules.size() > kMaxEgressRules) {
    return Error(ErrorCode::kInvalidArgument,
                 fmt::format("{} egress rules: at most {}", rules.size(), kMaxEgressRules));
  }
  EgressPolicy p;
  p.any_public_ = any_public;
  for (size_t i = 0; i < rules.size(); ++i) {
    auto r = ParseEgressRule(rules[i]);
    if (!r.ok()) return std::move(r).error().With(fmt::format("egress rule {}", i));
    p.rules_.push_back(std::move(*r));
  }
  static const std::vector<IpPrefix> never =
      BuildTable(std::begin(kNeverPublic), std::end(kNeverPublic));
  for (const auto& text : public_extra) {
    std::string why;
    auto prefix = ParsePrefix(text, &why);
    if (!prefix) {
      return Error(ErrorCode::kInvalidArgument, fmt::format("public range '{}': {}", text, why));
    }
    for (const auto& n : never) {
      if (n.address.v6 == prefix->address.v6 &&
          (n.Contains(prefix->address) || prefix->Contains(n.address))) {
        return Error(ErrorCode::kInvalidArgument,
                     fmt::format("public range '{}' overlaps {}: loopback, link-local and "
                                 "unspecified addresses are never public",
                                 text, n.ToString()));
      }
    }
    p.public_extra_.push_back(*prefix);
  }
  return p;
}

std::vector<std::string> EgressPolicy::RuleTexts() const {
  std::vector<std::string> out;
  out.reserve(rules_.size());
  for (const auto& r : rules_) out.push_back(r.text);
  return out;
}

bool EgressPolicy::IsPublic(const IpAddress& a) const {
  return !IsSpecialPurpose(a) || InAny(public_extra_, a);
}

EgressDecision EgressPolicy::AllowsLookup(std::string_view name) const {
  for (size_t i = 0; i < rules_.size(); ++i) {
    if (NameMatches(rules_[i], name)) {
      return {true, static_cast<int>(i), "rule " + rules_[i].text};
    }
  }
  if (any_public_) return {true, -1, "any public destination"};
  return {false, -1, fmt::format("no egress rule allows the name {}", name)};
}

bool EgressPolicy::AllowsAnswer(const IpAddress& a, bool host_local) const {
  if (!host_local && IsPublic(a)) return true;
  return std::any_of(rules_.begin(), rules_.end(), [&](const EgressRule& r) {
    return r.kind == EgressRule::Kind::kPrefix && r.prefix.Contains(a);
  });
}

EgressDecision EgressPolicy::AllowsAddress(const IpAddress& a, uint16_t port, Transport t,
                                           bool host_local) const {
  for (size_t i = 0; i < rules_.size(); ++i) {
    const EgressRule& r = rules_[i];
    if (r.kind == EgressRule::Kind::kPrefix && r.transport == t && r.prefix.Contains(a) &&
        r.MatchesPort(port)) {
      return {true, static_cast<int>(i), "rule " + r.text};
    }
  }
  if (any_public_ && !host_local && IsPublic(a)) return {true, -1, "any public destination"};
  std::string why;
  if (host_local) {
    why = "it is an address of the host";
  } else if (!IsPublic(a)) {
    why = "it is not a public address (loopback, private, link-local or reserved)";
  } else {
    why = "no egress rule allows it";
  }
  return {false, -1,
          fmt::format("{} {}:{} refused: {}", t == Transport::kUdp ? "udp" : "tcp",
                      a.v6 ? "[" + a.ToString() + "]" : a.ToString(), port, why)};
}

EgressDecision EgressPolicy::AllowsName(std::string_view name, uint16_t port, Transport t) const {
  for (size_t i = 0; i < rules_.size(); ++i) {
    const EgressRule& r = rules_[i];
    if (r.transport == t && NameMatches(r, name) && r.MatchesPort(port)) {
      return {true, static_cast<int>(i), "rule " + r.text};
    }
  }
  if (any_public_) return {true, -1, "any public destination"};
  return {false, -1,
          fmt::format("{} {}:{} refused: no egress rule allows it",
                      t == Transport::kUdp ? "udp" : "tcp", name, port)};
}

Result<SocketAddress> ParseSocketAddress(std::string_view text, uint16_t default_port) {
  SocketAddress s;
  s.port = default_port;
  std::string_view host = text;
  std::string_view port;
  if (text.starts_with('[')) {
    size_t close = text.find(']');
    if (close == std::string_view::npos) {
      return Error(ErrorCode::kInvalidArgument, fmt::format("address '{}': missing ']'", text));
    }
    host = text.substr(1, close - 1);
    if (close + 1 < text.size()) {
      if (text[close + 1] != ':') {
        return Error(ErrorCode::kInvalidArgument, fmt::format("address '{}'", text));
      }
      port = text.substr(close + 2);
    }
  } else if (std::count(text.begin(), text.end(), ':') == 1) {
    host = text.substr(0, text.find(':'));
    port = text.substr(text.find(':') + 1);
  }
  auto addr = IpAddress::Parse(host);
  if (!addr) {
    return Error(ErrorCode::kInvalidArgument, fmt::format("address '{}': not an IP address", text));
  }
  s.address = *addr;
  if (!port.empty()) {
    unsigned v = 0;
    auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
    if (ec != std::errc() || p != port.data() + port.size() || v == 0 || v > 65535) {
      return Error(ErrorCode::kInvalidArgument, fmt::format("address '{}': bad port", text));
    }
    s.port = static_cast<uint16_t>(v);
  }
  return s;
}

}  // namespace agentfense::policy
