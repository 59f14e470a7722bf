// A minimal tar writer for tests (ustar headers, pax records for long names), so that tests can
// build hostile archives no real tar would write. Test code only.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>

namespace agentfense::store::testing {

// `v` in octal, zero-padded to len - 1 digits and NUL-terminated (values that do not fit are the
// caller's mistake; the field is filled from the right as far as it goes).
inline void Octal(char* field, size_t len, uint64_t v) {
  field[len - 1] = '\0';
  for (size_t i = len - 1; i-- > 0; v >>= 3) field[i] = static_cast<char>('0' + (v & 7));
}

inline std::string Header(const std::string& name, char type, uint64_t size, uint32_t mode = 0644,
                          const std::string& link = "") {
  char b[512] = {};
  // Tar fields are fixed-width, not NUL-terminated strings: copy at most the field's width.
  name.copy(b, 100);
  Octal(b + 100, 8, mode);
  Octal(b + 108, 8, 0);
  Octal(b + 116, 8, 0);
  Octal(b + 124, 12, size);
  Octal(b + 136, 12, 0);
  b[156] = type;
  link.copy(b + 157, 100);
  constexpr char kMagic[8] = {'u', 's', 't', 'a', 'r', '\0', '0', '0'};  // POSIX ustar, version 00
  std::copy(kMagic, kMagic + 8, b + 257);
  std::memset(b + 148, ' ', 8);
  unsigned sum = 0;
  for (unsigned char c : b) sum += c;
  Octal(b + 148, 7, sum);
  b[155] = ' ';
  return std::string(b, 512);
}

inline std::string Pad(const std::string& data) {
  return data + std::string((512 - data.size() % 512) % 512, '\0');
}

struct Tar {
  std::string bytes;
  Tar& File(const std::string& name, const std::string& data, uint32_t mode = 0644) {
    bytes += Header(name, '0', data.size(), mode) + Pad(data);
    return *this;
  }
  Tar& Dir(const std::string& name) {
    bytes += Header(name, '5', 0, 0755);
    return *this;
  }
  Tar& Symlink(const std::string& name, const std::string& target) {
    bytes += Header(name, '2', 0, 0777, target);
    return *this;
  }
  Tar& HardLink(const std::string& name, const std::string& target) {
    bytes += Header(name, '1', 0, 0644, target);
    return *this;
  }
  Tar& Special(const std::string& name, char type) {
    bytes += Header(name, type, 0, 0600);
    return *this;
  }
  Tar& PaxPath(const std::string& path) {
    std::string rec = " path=" + path + "\n";
    size_t len = rec.size() + 1;
    while (std::to_string(len).size() + rec.size() != len) ++len;
    std::string body = std::to_string(len) + rec;
    bytes += Header("PaxHeader", 'x', body.size()) + Pad(body);
    return *this;
  }
  std::string End() const { return bytes + std::string(1024, '\0'); }
};

}  // namespace agentfense::store::testing
