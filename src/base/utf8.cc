#include "base/utf8.h"

#include <cstdint>

namespace agentfense {
namespace {

// Length of the well-formed sequence starting at s[i], or 0 when it is ill-formed; on 0, `bad` is
// the length of the maximal invalid subpart to replace (at least 1).
size_t SequenceAt(std::string_view s, size_t i, size_t* bad) {
  const auto b = [&](size_t k) { return static_cast<uint8_t>(s[k]); };
  const uint8_t c = b(i);
  *bad = 1;
  if (c < 0x80) return 1;
  size_t need;
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the second byte
  if (c >= 0xC2 && c <= 0xDF) {
    need = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    need = 3;
    if (c == 0xE0) lo = 0xA0;  // overlong
    if (c == 0xED) hi = 0x9F;  // surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    need = 4;
    if (c == 0xF0) lo = 0x90;  // overlong
    if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  for (size_t k = 1; k < need; ++k) {
    if (i + k >= s.size()) return 0;
    const uint8_t x = b(i + k);
    const bool ok = k == 1 ? (x >= lo && x <= hi) : (x >= 0x80 && x <= 0xBF);
    if (!ok) return 0;
    *bad = k + 1;  // the prefix so far was a valid start: it is replaced as one unit
  }
  return need;
}

}  // namespace

bool IsValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    size_t bad;
    size_t n = SequenceAt(s, i, &bad);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string ToValidUtf8(std::string_view s) {
  if (IsValidUtf8(s)) return std::string(s);
  std::string out;
  out.reserve(s.size() + 16);
  for (size_t i = 0; i < s.size();) {
    size_t bad;
    size_t n = SequenceAt(s, i, &bad);
    if (n > 0) {
      out.append(s.substr(i, n));
      i += n;
    } else {
      out.append("\xEF\xBF\xBD");
      i += bad;  // the lead byte plus the valid continuation bytes seen before the failure
    }
  }
  return out;
}

std::string ForTerminal(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 8);
  auto hex = [&out](uint8_t c) {
    static constexpr char kDigits[] = "0123456789abcdef";
    out += "\\x";
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  };
  for (size_t i = 0; i < s.size();) {
    size_t bad;
    const size_t n = SequenceAt(s, i, &bad);
    if (n == 0) {
      for (size_t k = 0; k < bad; ++k) hex(static_cast<uint8_t>(s[i + k]));
      i += bad;
      continue;
    }
    const auto c = static_cast<uint8_t>(s[i]);
    if (n == 1) {
      if (c < 0x20 || c == 0x7f) {
        hex(c);
      } else if (c == '\\') {
        out += "\\\\";
      } else {
        out += static_cast<char>(c);
      }
    } else if (n == 2 && c == 0xC2 && static_cast<uint8_t>(s[i + 1]) < 0xA0) {
      hex(c);  // C1 controls U+0080-U+009F (CSI among them)
      hex(static_cast<uint8_t>(s[i + 1]));
    } else if (n == 3 && c == 0xE2 &&
               ((static_cast<uint8_t>(s[i + 1]) == 0x80 && static_cast<uint8_t>(s[i + 2]) >= 0xAA &&
                 static_cast<uint8_t>(s[i + 2]) <= 0xAE) ||
                (static_cast<uint8_t>(s[i + 1]) == 0x81 && static_cast<uint8_t>(s[i + 2]) >= 0xA6 &&
                 static_cast<uint8_t>(s[i + 2]) <= 0xA9))) {
      const unsigned cp = ((c & 0x0Fu) << 12) | ((static_cast<uint8_t>(s[i + 1]) & 0x3Fu) << 6) |
                          (static_cast<uint8_t>(s[i + 2]) & 0x3Fu);
      static constexpr char kDigits[] = "0123456789abcdef";
      out += "\\u{";
      for (int shift = 12; shift >= 0; shift -= 4) out += kDigits[(cp >> shift) & 15];
      out += "}";
    } else {
      out.append(s.substr(i, n));
    }
    i += n;
  }
  return out;
}

}  // namespace agentfense
