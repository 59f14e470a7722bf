#include "store/ids.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "store/md5.h"

namespace agentfense::store {
namespace {

TEST(Ids, NewIdsHaveTheWireShape) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    auto cb = NewCodebaseId();
    auto sb = NewSandboxId();
    auto sess = NewSessionId();
    ASSERT_TRUE(cb.ok() && sb.ok() && sess.ok());
    EXPECT_TRUE(IsValidCodebaseId(*cb)) << *cb;
    EXPECT_TRUE(IsValidSandboxId(*sb)) << *sb;
    EXPECT_TRUE(IsValidSessionId(*sess)) << *sess;
    EXPECT_EQ(cb->size(), 19u);
    EXPECT_EQ(sess->size(), 21u);
    seen.insert(*cb);
  }
  EXPECT_EQ(seen.size(), 1000u);  // 64 random bits: a collision here means no randomness
}

TEST(Ids, ValidatorsAreStrict) {
  EXPECT_TRUE(IsValidCodebaseId("cb_0123456789abcdef"));
  EXPECT_FALSE(IsValidCodebaseId("cb_0123456789ABCDEF"));   // uppercase
  EXPECT_FALSE(IsValidCodebaseId("cb_0123456789abcde"));    // 15 digits
  EXPECT_FALSE(IsValidCodebaseId("cb_0123456789abcdef0"));  // 17 digits
  EXPECT_FALSE(IsValidCodebaseId("sb_0123456789abcdef"));   // wrong kind
  EXPECT_FALSE(IsValidCodebaseId("cb_0123456789abcdeg"));
  EXPECT_FALSE(IsValidCodebaseId("cb_../../../etc/pas"));
  EXPECT_FALSE(IsValidCodebaseId(std::string("cb_0123456789abcd\0f", 19)));
  EXPECT_FALSE(IsValidCodebaseId(""));
  EXPECT_FALSE(IsValidCodebaseId("cb_"));
  EXPECT_TRUE(IsValidSandboxId("sb_ffffffffffffffff"));
  EXPECT_FALSE(IsValidSandboxId("sb_ffffffffffffffff\n"));
  EXPECT_TRUE(IsValidSessionId("sess_0000000000000000"));
  EXPECT_FALSE(IsValidSessionId("ses_0000000000000000"));
  EXPECT_FALSE(IsValidSessionId("sess-0000000000000000"));
}

TEST(Ids, ValidateReturnsInvalidArgument) {
  EXPECT_TRUE(ValidateSandboxId("sb_0123456789abcdef").ok());
  auto empty = ValidateSandboxId("");
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(empty.error().message(), "sandbox_id is empty");
  auto bad = ValidateCodebaseId("cb_/etc");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(bad.error().message().find("/etc"), std::string::npos);  // input not echoed
  EXPECT_FALSE(ValidateSessionId("sb_0123456789abcdef").ok());
}

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
