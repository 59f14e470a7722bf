// Reads the host name a TCP client names in its first bytes: the server_name of a TLS ClientHello
// (RFC 8446 §4.1.2, RFC 6066 §3), the Host header of an HTTP/1.x request, or the target of an
// HTTP CONNECT (a client that believes it talks to a proxy). Pure; bounded by kMaxPeekBytes.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace agentfense::net {

inline constexpr size_t kMaxPeekBytes = 16384 + 5;

struct PeekResult {
  enum class Kind {
    kNeedMore,  // a prefix of TLS or HTTP: wait for more bytes (up to kMaxPeekBytes)
    kTls,       // a ClientHello; `name` is its server_name ("" when it has none)
    kHttp,      // an HTTP request; `name` is its Host ("" when absent or an address)
    kConnect,   // "CONNECT name:port": `name`, `port`, and `consumed` bytes of request to drop
    kOther,     // neither: the protocol is not one whose name we can read
  };
  Kind kind = Kind::kNeedMore;
  std::string name;     // lower case, a valid host name, or ""
  std::string literal;  // the raw host text when it is not a name (an address literal)
  uint16_t port = 0;
  size_t consumed = 0;
};

PeekResult PeekHostName(std::string_view data);

}  // namespace agentfense::net
