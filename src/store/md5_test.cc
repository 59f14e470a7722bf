#include "store/md5.h"

#include <gtest/gtest.h>

#include <string>

namespace agentfense::store {
namespace {

// RFC 1321 appendix A.5 test suite.
TEST(Md5, RfcVectors) {
  EXPECT_EQ(Md5Hex(""), "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(Md5Hex("a"), "0cc175b9c0f1b6a831c399e269772661");
  EXPECT_EQ(Md5Hex("abc"), "900150983cd24fb0d6963f7d28e17f72");
  EXPECT_EQ(Md5Hex("message digest"), "f96b697d7cb7938d525a2f31aaf161d0");
  EXPECT_EQ(Md5Hex("abcdefghijklmnopqrstuvwxyz"), "c3fcd3d76192e4007dfb496cca67e13b");
  EXPECT_EQ(Md5Hex("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"),
            "d174ab98d277d9f5a5611c2c9f419d9f");
  EXPECT_EQ(Md5Hex("123456789012345678901234567890123456789012345678901234567890123456789012"
                   "34567890"),
            "57edf4a22be3c955ac49da2e2107b67a");
}

TEST(Md5, IncrementalEqualsOneShotAtEveryBoundary) {
  std::string data;
  for (int i = 0; i < 300; ++i) data += static_cast<char>(i * 7 + 3);
  const std::string whole = Md5Hex(data);
  for (size_t split = 0; split <= data.size(); split += 1) {
    Md5 md5;
    md5.Update(std::string_view(data).substr(0, split));
    md5.Update(std::string_view(data).substr(split));
    ASSERT_EQ(md5.FinalHex(), whole) << split;
  }
  // Lengths around the 56-byte padding boundary.
  EXPECT_EQ(Md5Hex(std::string(55, 'x')), "04364420e25c512fd958a70738aa8f72");
  EXPECT_EQ(Md5Hex(std::string(56, 'x')), "668a72d5ba17f08e62dabcafad6db14b");
}

}  // namespace
}  // namespace agentfense::store
