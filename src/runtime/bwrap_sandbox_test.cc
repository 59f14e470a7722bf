// The unprivileged launcher's diagnosis of why bwrap could not have a user namespace.
#include "runtime/bwrap_sandbox.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>

namespace agentfense::runtime {
namespace {

class UserNamespaces : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/af-proc-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    proc_ = tmpl;
    std::filesystem::create_directories(proc_ + "/sys/kernel");
    std::filesystem::create_directories(proc_ + "/sys/user");
  }
  void TearDown() override { std::filesystem::remove_all(proc_); }
  void Set(const std::string& rel, const std::string& value) {
    std::ofstream(proc_ + "/sys/" + rel) << value << "\n";
  }
  std::string proc_;
};

TEST_F(UserNamespaces, NothingForbidsThem) {
  EXPECT_EQ(UserNamespaceBlocker(proc_), "");
  Set("kernel/unprivileged_userns_clone", "1");
  Set("user/max_user_namespaces", "96367");
  Set("kernel/apparmor_restrict_unprivileged_userns", "0");
  EXPECT_EQ(UserNamespaceBlocker(proc_), "");
}

TEST_F(UserNamespaces, EachBlockerIsNamedWithItsFix) {
  Set("kernel/unprivileged_userns_clone", "0");
  std::string why = UserNamespaceBlocker(proc_);
  EXPECT_NE(why.find("kernel.unprivileged_userns_clone = 0"), std::string::npos) << why;
  EXPECT_NE(why.find("sysctl -w kernel.unprivileged_userns_clone=1"), std::string::npos) << why;

  Set("kernel/unprivileged_userns_clone", "1");
  Set("user/max_user_namespaces", "0");
  why = UserNamespaceBlocker(proc_);
  EXPECT_NE(why.find("user.max_user_namespaces = 0"), std::string::npos) << why;

  Set("user/max_user_namespaces", "100");
  Set("kernel/apparmor_restrict_unprivileged_userns", "1");
  why = UserNamespaceBlocker(proc_);
  EXPECT_NE(why.find("AppArmor"), std::string::npos) << why;
}

TEST_F(UserNamespaces, ThisHostAllowsThem) {
  // The real system: the rootless suites (tests/rootless) depend on it.
  EXPECT_EQ(UserNamespaceBlocker(), "");
}

}  // namespace
}  // namespace agentfense::runtime
