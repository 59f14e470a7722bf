// The few DNS messages the sandbox's resolver speaks (RFC 1035, EDNS RFC 6891, Extended DNS Errors
// RFC 8914): it parses the sandbox's questions, builds its own answers from scratch (nothing an
// upstream server sent is passed through verbatim), and reads the A records of an upstream answer
// along its CNAME chain. Pure functions over bytes; every length is checked.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "policy/egress.h"

namespace agentfense::net {

inline constexpr uint16_t kTypeA = 1;
inline constexpr uint16_t kTypeCname = 5;
inline constexpr uint16_t kTypeAaaa = 28;
inline constexpr uint16_t kClassIn = 1;

enum class Rcode : uint8_t {
  kNoError = 0,
  kFormErr = 1,
  kServFail = 2,
  kNxDomain = 3,
  kRefused = 5
};

struct DnsQuestion {
  uint16_t id = 0;
  bool recursion_desired = false;
  bool edns = false;     // the query carried an OPT record: we may answer with one
  std::string name;      // lower case, no trailing dot
  std::string raw_name;  // the wire form as sent (case kept: 0x20 randomization)
  uint16_t type = 0;
  uint16_t klass = 0;
};

// A standard query with exactly one question and no compression in it; nullopt otherwise.
std::optional<DnsQuestion> ParseQuery(std::string_view packet);

// An answer to `q`: `addresses` as A records with `ttl` (only for type A questions), or none.
// `rcode` kRefused with `extra_text` adds an Extended DNS Error "Prohibited" (18) when the query
// had EDNS, so `dig` shows why.
std::string BuildAnswer(const DnsQuestion& q, Rcode rcode,
                        const std::vector<policy::IpAddress>& addresses, uint32_t ttl,
                        std::string_view extra_text = {});

// A recursive query for `name` type A, with id `id`.
std::string BuildQuery(uint16_t id, std::string_view name, uint16_t type = kTypeA);

struct UpstreamAnswer {
  uint16_t id = 0;
  Rcode rcode = Rcode::kServFail;
  std::vector<policy::IpAddress> addresses;  // the A records of the name, CNAMEs followed
  uint32_t ttl = 0;                          // the smallest TTL along the chain
};

// Parses an upstream response to our query for `name` (lower case). nullopt when malformed or
// when its question is not `name`.
std::optional<UpstreamAnswer> ParseUpstreamAnswer(std::string_view packet, std::string_view name);

}  // namespace agentfense::net
