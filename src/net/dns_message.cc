#include "net/dns_message.h"

#include <algorithm>

namespace agentfense::net {
namespace {

constexpr size_t kHeader = 12;
constexpr uint16_t kTypeOpt = 41;
constexpr uint16_t kEdeOption = 15;
constexpr uint16_t kEdeProhibited = 18;
constexpr size_t kMaxAnswers = 16;  // keeps every answer under 512 bytes: no truncation, no TCP

uint16_t Get16(std::string_view p, size_t off) {
  return static_cast<uint16_t>((static_cast<uint8_t>(p[off]) << 8) |
                               static_cast<uint8_t>(p[off + 1]));
}
uint32_t Get32(std::string_view p, size_t off) {
  return (static_cast<uint32_t>(Get16(p, off)) << 16) | Get16(p, off + 2);
}
void Put16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v >> 8));
  out.push_back(static_cast<char>(v & 0xff));
}
void Put32(std::string& out, uint32_t v) {
  Put16(out, static_cast<uint16_t>(v >> 16));
  Put16(out, static_cast<uint16_t>(v & 0xffff));
}

std::string LowerAscii(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

// Reads a possibly compressed name at `*off` (advanced past it). Dotted text, lower case.
std::optional<std::string> ReadName(std::string_view p, size_t* off, bool allow_pointers) {
  std::string name;
  size_t pos = *off;
  bool jumped = false;
  int jumps = 0;
  while (true) {
    if (pos >= p.size()) return std::nullopt;
    uint8_t len = static_cast<uint8_t>(p[pos]);
    if (len == 0) {
      if (!jumped) *off = pos + 1;
      break;
    }
    if ((len & 0xc0) == 0xc0) {
      if (!allow_pointers || pos + 1 >= p.size() || ++jumps > 16) return std::nullopt;
      size_t target = Get16(p, pos) & 0x3fff;
      if (!jumped) *off = pos + 2;
      jumped = true;
      if (target >= pos) return std::nullopt;  // only backwards: no loops
      pos = target;
      continue;
    }
    if ((len & 0xc0) != 0 || pos + 1 + len > p.size()) return std::nullopt;
    if (!name.empty()) name.push_back('.');
    name.append(p.substr(pos + 1, len));
    if (name.size() > 253) return std::nullopt;
    pos += 1 + len;
  }
  return LowerAscii(std::move(name));
}

void PutName(std::string& out, std::string_view name) {
  size_t start = 0;
  while (start < name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string_view::npos) dot = name.size();
    out.push_back(static_cast<char>(dot - start));
    out.append(name.substr(start, dot - start));
    start = dot + 1;
  }
  out.push_back('\0');
}

// Skips one resource record at `*off`; returns its owner, type, class, ttl and rdata bounds.
struct Rr {
  std::string owner;
  uint16_t type = 0, klass = 0;
  uint32_t ttl = 0;
  size_t rdata = 0, rdlength = 0;
};
std::optional<Rr> ReadRr(std::string_view p, size_t* off) {
  Rr rr;
  auto owner = ReadName(p, off, true);
  if (!owner || *off + 10 > p.size()) return std::nullopt;
  rr.owner = std::move(*owner);
  rr.type = Get16(p, *off);
  rr.klass = Get16(p, *off + 2);
  rr.ttl = Get32(p, *off + 4);
  rr.rdlength = Get16(p, *off + 8);
  rr.rdata = *off + 10;
  if (rr.rdata + rr.rdlength > p.size()) return std::nullopt;
  *off = rr.rdata + rr.rdlength;
  return rr;
}

}  // namespace

std::optional<DnsQuestion> ParseQuery(std::string_view p) {
  if (p.size() < kHeader || p.size() > 4096) return std::nullopt;
  DnsQuestion q;
  q.id = Get16(p, 0);
  uint16_t flags = Get16(p, 2);
  bool qr = flags & 0x8000;
  int opcode = (flags >> 11) & 0xf;
  q.recursion_desired = flags & 0x0100;
  if (qr || opcode != 0) return std::nullopt;
  if (Get16(p, 4) != 1 || Get16(p, 6) != 0 || Get16(p, 8) != 0 || Get16(p, 10) > 1) {
    return std::nullopt;
  }
  size_t off = kHeader;
  size_t name_start = off;
  auto name = ReadName(p, &off, /*allow_pointers=*/false);
  if (!name || off + 4 > p.size()) return std::nullopt;
  q.raw_name = std::string(p.substr(name_start, off - name_start));
  q.name = std::move(*name);
  q.type = Get16(p, off);
  q.klass = Get16(p, off + 2);
  off += 4;
  if (Get16(p, 10) == 1) {
    auto opt = ReadRr(p, &off);
    if (!opt || opt->type != kTypeOpt || !opt->owner.empty()) return std::nullopt;
    q.edns = true;
  }
  return q;
}

std::string BuildAnswer(const DnsQuestion& q, Rcode rcode,
                        const std::vector<policy::IpAddress>& addresses, uint32_t ttl,
                        std::string_view extra_text) {
  std::string out;
  out.reserve(512);
  Put16(out, q.id);
  // QR, opcode 0, RD copied, RA set.
  uint16_t flags = 0x8000 | 0x0080 | static_cast<uint16_t>(rcode);
  if (q.recursion_desired) flags |= 0x0100;
  Put16(out, flags);
  std::vector<policy::IpAddress> a;
  if (rcode == Rcode::kNoError && q.type == kTypeA && q.klass == kClassIn) {
    for (const auto& addr : addresses) {
      if (!addr.v6 && a.size() < kMaxAnswers) a.push_back(addr);
    }
  }
  Put16(out, 1);
  Put16(out, static_cast<uint16_t>(a.size()));
  Put16(out, 0);
  Put16(out, q.edns ? 1 : 0);
  out.append(q.raw_name);
  Put16(out, q.type);
  Put16(out, q.klass);
  for (const auto& addr : a) {
    Put16(out, 0xc000 | kHeader);  // the question's name
    Put16(out, kTypeA);
    Put16(out, kClassIn);
    Put32(out, ttl);
    Put16(out, 4);
    out.append(reinterpret_cast<const char*>(addr.bytes.data()), 4);
  }
  if (q.edns) {
    out.push_back('\0');  // root owner
    Put16(out, kTypeOpt);
    Put16(out, 1232);  // our UDP payload size
    Put32(out, 0);
    std::string options;
    if (rcode == Rcode::kRefused) {
      std::string_view text = extra_text.substr(0, 200);
      Put16(options, kEdeOption);
      Put16(options, static_cast<uint16_t>(2 + text.size()));
      Put16(options, kEdeProhibited);
      options.append(text);
    }
    Put16(out, static_cast<uint16_t>(options.size()));
    out.append(options);
  }
  return out;
}

std::string BuildQuery(uint16_t id, std::string_view name, uint16_t type) {
  std::string out;
  Put16(out, id);
  Put16(out, 0x0100);  // RD
  Put16(out, 1);
  Put16(out, 0);
  Put16(out, 0);
  Put16(out, 0);
  PutName(out, name);
  Put16(out, type);
  Put16(out, kClassIn);
  return out;
}

std::optional<UpstreamAnswer> ParseUpstreamAnswer(std::string_view p, std::string_view name) {
  if (p.size() < kHeader || p.size() > 65535) return std::nullopt;
  UpstreamAnswer ans;
  ans.id = Get16(p, 0);
  uint16_t flags = Get16(p, 2);
  if (!(flags & 0x8000)) return std::nullopt;
  ans.rcode = static_cast<Rcode>(flags & 0xf);
  if (Get16(p, 4) != 1) return std::nullopt;
  size_t off = kHeader;
  auto qname = ReadName(p, &off, true);
  if (!qname || *qname != name || off + 4 > p.size()) return std::nullopt;
  off += 4;
  std::vector<Rr> rrs;
  uint16_t ancount = Get16(p, 6);
  for (uint16_t i = 0; i < ancount && i < 64; ++i) {
    auto rr = ReadRr(p, &off);
    if (!rr) return std::nullopt;
    rrs.push_back(std::move(*rr));
  }
  // Follow the CNAME chain from the question's name; collect the A records of its end.
  std::string current(name);
  uint32_t ttl = UINT32_MAX;
  for (int hop = 0; hop < 10; ++hop) {
    bool moved = false;
    for (const Rr& rr : rrs) {
      if (rr.klass != kClassIn || rr.owner != current) continue;
      if (rr.type == kTypeCname) {
        size_t at = rr.rdata;
        auto target = ReadName(p, &at, true);
        if (!target) return std::nullopt;
        ttl = std::min(ttl, rr.ttl);
        current = std::move(*target);
        moved = true;
        break;
      }
    }
    if (!moved) break;
  }
  for (const Rr& rr : rrs) {
    if (rr.klass == kClassIn && rr.type == kTypeA && rr.owner == current && rr.rdlength == 4) {
      ans.addresses.push_back(policy::IpAddress::FromBytes(
          false, reinterpret_cast<const uint8_t*>(p.data() + rr.rdata)));
      ttl = std::min(ttl, rr.ttl);
    }
  }
  ans.ttl = ttl == UINT32_MAX ? 0 : ttl;
  return ans;
}

}  // namespace agentfense::net
