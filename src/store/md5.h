// MD5 (RFC 1321), incremental. Used only for the `checksum` field of UploadResult (WIRE.md: "hex
// MD5 of the bytes received"), an integrity echo for clients, never for security decisions. Our
// own ~100 lines rather than a libcrypto dependency for one legacy digest.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace agentfense::store {

class Md5 {
 public:
  Md5();
  void Update(const void* data, size_t len);
  void Update(std::string_view data) { Update(data.data(), data.size()); }
  // Finishes and returns the 16-byte digest. The object must not be updated afterwards.
  std::array<uint8_t, 16> Final();
  // Final() as 32 lowercase hex digits.
  std::string FinalHex();

 private:
  void Block(const uint8_t* p);

  uint32_t state_[4];
  uint64_t total_bytes_ = 0;
  uint8_t buffer_[64];
  size_t buffered_ = 0;
};

// One-shot convenience.
std::string Md5Hex(std::string_view data);

}  // namespace agentfense::store
