#include "net/peek.h"

#include <algorithm>
#include <charconv>

#include "policy/egress.h"

namespace agentfense::net {
namespace {

using Kind = PeekResult::Kind;

PeekResult Of(Kind kind) {
  PeekResult r;
  r.kind = kind;
  return r;
}

size_t Get16(std::string_view p, size_t off) {
  return (static_cast<size_t>(static_cast<uint8_t>(p[off])) << 8) |
         static_cast<uint8_t>(p[off + 1]);
}

PeekResult WithName(Kind kind, std::string_view host) {
  PeekResult r;
  r.kind = kind;
  if (auto n = policy::NormalizeHostName(host)) {
    r.name = *n;
  } else {
    r.literal = std::string(host.substr(0, 255));
  }
  return r;
}

PeekResult PeekTls(std::string_view p) {
  PeekResult more;
  if (p.size() < 5) return more;
  size_t record_len = Get16(p, 3);
  if (p.size() < 5 + record_len) return p.size() >= kMaxPeekBytes ? Of(Kind::kTls) : more;
  std::string_view h = p.substr(5, record_len);
  PeekResult none = Of(Kind::kTls);
  // Handshake header: type 1 (ClientHello), 24-bit length. A hello longer than its first record
  // is read as far as that record goes.
  if (h.size() < 4 || static_cast<uint8_t>(h[0]) != 1) return none;
  size_t off = 4 + 2 + 32;  // header, legacy_version, random
  if (off + 1 > h.size()) return none;
  off += 1 + static_cast<uint8_t>(h[off]);  // session id
  if (off + 2 > h.size()) return none;
  off += 2 + Get16(h, off);  // cipher suites
  if (off + 1 > h.size()) return none;
  off += 1 + static_cast<uint8_t>(h[off]);  // compression methods
  if (off + 2 > h.size()) return none;
  size_t ext_end = std::min(h.size(), off + 2 + Get16(h, off));
  off += 2;
  while (off + 4 <= ext_end) {
    size_t type = Get16(h, off), len = Get16(h, off + 2);
    off += 4;
    if (off + len > ext_end) return none;
    if (type == 0) {  // server_name: list length, then (name_type 0, length, name)
      std::string_view e = h.substr(off, len);
      if (e.size() < 5 || static_cast<uint8_t>(e[2]) != 0) return none;
      size_t n = Get16(e, 3);
      if (5 + n > e.size()) return none;
      return WithName(Kind::kTls, e.substr(5, n));
    }
    off += len;
  }
  return none;
}

bool IsToken(char c) { return (c >= 'A' && c <= 'Z'); }

// "host", "host:port", "[v6]:port" → the host part; port into *port when present.
std::string_view SplitHostPort(std::string_view s, uint16_t* port) {
  std::string_view host = s, port_text;
  if (s.starts_with('[')) {
    size_t close = s.find(']');
    if (close == std::string_view::npos) return s;
    host = s.substr(1, close - 1);
    if (close + 1 < s.size() && s[close + 1] == ':') port_text = s.substr(close + 2);
  } else if (size_t colon = s.rfind(':'); colon != std::string_view::npos && s.find(':') == colon) {
    host = s.substr(0, colon);
    port_text = s.substr(colon + 1);
  }
  unsigned v = 0;
  auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), v);
  if (!port_text.empty() && ec == std::errc() && ptr == port_text.data() + port_text.size() &&
      v > 0 && v <= 65535) {
    *port = static_cast<uint16_t>(v);
  }
  return host;
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
    s.remove_suffix(1);
  return s;
}

PeekResult PeekHttp(std::string_view p) {
  size_t end = p.find("\r\n\r\n");
  if (end == std::string_view::npos) {
    return p.size() >= kMaxPeekBytes ? Of(Kind::kOther) : PeekResult{};
  }
  std::string_view head = p.substr(0, end + 2);
  size_t eol = head.find("\r\n");
  std::string_view request_line = head.substr(0, eol);
  size_t sp1 = request_line.find(' ');
  size_t sp2 = request_line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 == sp1 ||
      !request_line.substr(sp2 + 1).starts_with("HTTP/1.")) {
    return Of(Kind::kOther);
  }
  std::string_view method = request_line.substr(0, sp1);
  std::string_view target = request_line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (method == "CONNECT") {
    uint16_t port = 0;
    std::string_view host = SplitHostPort(target, &port);
    PeekResult r = WithName(Kind::kConnect, host);
    r.port = port;
    r.consumed = end + 4;
    if (port == 0) r.kind = Kind::kOther;
    return r;
  }
  size_t pos = eol + 2;
  while (pos < head.size()) {
    size_t next = head.find("\r\n", pos);
    if (next == std::string_view::npos) break;
    std::string_view line = head.substr(pos, next - pos);
    pos = next + 2;
    size_t colon = line.find(':');
    if (colon != 4) continue;
    std::string field(line.substr(0, 4));
    std::transform(field.begin(), field.end(), field.begin(), [](char c) {
      return static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    });
    if (field != "host") continue;
    uint16_t port = 0;
    return WithName(Kind::kHttp, SplitHostPort(Trim(line.substr(colon + 1)), &port));
  }
  return Of(Kind::kHttp);
}

}  // namespace

PeekResult PeekHostName(std::string_view data) {
  if (data.empty()) return {};
  if (static_cast<uint8_t>(data[0]) == 0x16) {
    // TLS handshake record: 0x16, version 3.x.
    if (data.size() >= 2 && data[1] != 3) return Of(Kind::kOther);
    return PeekTls(data.substr(0, std::min(data.size(), kMaxPeekBytes)));
  }
  // An HTTP method: upper-case letters then a space.
  size_t i = 0;
  while (i < data.size() && i < 8 && IsToken(data[i])) ++i;
  if (i == data.size()) return {};  // still only letters: need more
  if (i == 0 || data[i] != ' ') return Of(Kind::kOther);
  return PeekHttp(data.substr(0, std::min(data.size(), kMaxPeekBytes)));
}

}  // namespace agentfense::net
