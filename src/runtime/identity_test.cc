#include "runtime/identity.h"

#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <optional>
#include <set>

namespace agentfense::runtime {
namespace {

class IdentityTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/af-identity-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    std::filesystem::create_directories(root_ + "/etc");
    Write("etc/passwd", "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534::/:/bin/false\n");
    Write("etc/group", "root:x:0:\n");
    Write("etc/subuid", "");
    Write("etc/subgid", "");
  }
  void TearDown() override { std::filesystem::remove_all(root_); }
  void Write(const std::string& rel, const std::string& content) {
    std::ofstream(root_ + "/" + rel) << content;
  }
  std::string etc() const { return root_ + "/etc"; }
  std::string leases() const { return root_ + "/leases"; }
  std::string root_;
};

TEST_F(IdentityTest, ParsesInclusiveRanges) {
  auto r = IdentityRange::Parse("524288-589823");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->first, 524288u);
  EXPECT_EQ(r->count, 65536u);
  EXPECT_EQ(r->ToString(), "524288-589823");
  for (const char* bad : {"", "524288", "5-4", "a-b", "1-", "-5", "1-2-3", "1 -2"}) {
    EXPECT_FALSE(IdentityRange::Parse(bad).ok()) << bad;
  }
}

TEST_F(IdentityTest, DefaultRangeIsValidOnAPlainHost) {
  EXPECT_TRUE(ValidateIdentityRange(IdentityRange{}, etc()).ok());
}

TEST_F(IdentityTest, RefusesRootNobodyAndHostIdentities) {
  EXPECT_FALSE(ValidateIdentityRange(IdentityRange{0, 10}, etc()).ok());
  EXPECT_FALSE(ValidateIdentityRange(IdentityRange{65530, 10}, etc()).ok());
  EXPECT_FALSE(ValidateIdentityRange(IdentityRange{100, 0}, etc()).ok());
  EXPECT_FALSE(ValidateIdentityRange(IdentityRange{0x7ffffff0u, 100}, etc()).ok());

  Write("etc/passwd", "alice:x:524300:1000::/home/alice:/bin/sh\n");
  auto st = ValidateIdentityRange(IdentityRange{}, etc());
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.error().ToString().find("alice"), std::string::npos) << st.error().ToString();
  Write("etc/passwd", "");

  Write("etc/group", "builders:x:589823:\n");
  EXPECT_FALSE(ValidateIdentityRange(IdentityRange{}, etc()).ok());
  Write("etc/group", "");

  // A /etc/subuid delegation that ends inside the range, and one that starts right after it.
  Write("etc/subuid", "bob:500000:24289\n");
  EXPECT_FALSE(ValidateIdentityRange(IdentityRange{}, etc()).ok());
  Write("etc/subuid", "bob:500000:24288\ncarol:589824:65536\n");
  EXPECT_TRUE(ValidateIdentityRange(IdentityRange{}, etc()).ok());
  Write("etc/subgid", "bob:589823:1\n");
  EXPECT_FALSE(ValidateIdentityRange(IdentityRange{}, etc()).ok());
}

TEST_F(IdentityTest, LeasesAreExclusiveAndReturnOnRelease) {
  IdentityRange range{600000, 3};
  std::set<uid_t> taken;
  std::optional<IdentityLease> first;
  {
    auto a = IdentityLease::Acquire(range, leases(), 600001, "sb_a");
    ASSERT_TRUE(a.ok()) << a.error().ToString();
    EXPECT_EQ(a->uid(), 600001u);  // the preferred id when free
    EXPECT_EQ(a->gid(), 600001u);
    first.emplace(std::move(*a));
  }
  // Everyone else gets another id, even when they prefer the taken one.
  auto b = IdentityLease::Acquire(range, leases(), 600001, "sb_b");
  ASSERT_TRUE(b.ok());
  auto c = IdentityLease::Acquire(range, leases(), 0, "sb_c");
  ASSERT_TRUE(c.ok());
  taken = {first->uid(), b->uid(), c->uid()};
  EXPECT_EQ(taken.size(), 3u);
  for (uid_t u : taken) EXPECT_TRUE(range.Contains(u));

  auto d = IdentityLease::Acquire(range, leases(), 0, "sb_d");
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code(), ErrorCode::kResourceExhausted);

  first.reset();  // released: the next start may have it
  auto e = IdentityLease::Acquire(range, leases(), 600001, "sb_e");
  ASSERT_TRUE(e.ok()) << e.error().ToString();
  EXPECT_EQ(e->uid(), 600001u);
}

TEST_F(IdentityTest, RefusesALeaseDirectoryOthersCouldWrite) {
  ASSERT_EQ(::mkdir(leases().c_str(), 0755), 0);
  ASSERT_EQ(::chmod(leases().c_str(), 0755), 0);
  auto a = IdentityLease::Acquire(IdentityRange{600000, 3}, leases(), 0, "sb_a");
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.error().code(), ErrorCode::kFailedPrecondition);
}

}  // namespace
}  // namespace agentfense::runtime
