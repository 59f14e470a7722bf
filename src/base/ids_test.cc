#include "base/ids.h"

#include <gtest/gtest.h>

#include <set>
#include <string>

namespace agentfense {
namespace {

TEST(Ids, NewIdsHaveTheWireShape) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    auto cb = NewCodebaseId();
    auto sb = NewSandboxId();
    auto sess = NewSessionId();
    auto ap = NewApprovalId();
    ASSERT_TRUE(cb.ok() && sb.ok() && sess.ok() && ap.ok());
    EXPECT_TRUE(IsValidApprovalId(*ap)) << *ap;
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
  EXPECT_TRUE(IsValidApprovalId("ap_00000000000000aa"));
  EXPECT_FALSE(IsValidApprovalId("ap_zz"));
}

// A missing id is the client's mistake (INVALID_ARGUMENT); a malformed one names nothing that
// exists (NOT_FOUND, as the reference answers `sb_doesnotexist`), and is never echoed.
TEST(Ids, ValidateSaysMissingOrNotFound) {
  EXPECT_TRUE(ValidateSandboxId("sb_0123456789abcdef").ok());
  auto empty = ValidateSandboxId("");
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(empty.error().message(), "sandbox_id is required");
  for (const char* bad : {"sb_doesnotexist", "cb_/etc", "../x", "sb_0123456789ABCDEF"}) {
    auto r = ValidateCodebaseId(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kNotFound) << bad;
    EXPECT_EQ(r.error().message().find(bad), std::string::npos);  // input not echoed
  }
  EXPECT_EQ(ValidateSandboxId("sb_doesnotexist").error().message(), "sandbox not found");
  EXPECT_EQ(ValidateSessionId("sb_0123456789abcdef").error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(ValidateApprovalId("ap_zz").error().message(), "approval not found");
}

}  // namespace
}  // namespace agentfense
