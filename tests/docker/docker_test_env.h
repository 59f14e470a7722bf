// Shared fixture of the real-dockerd tests. Each test process uses its own launcher instance
// ("t<pid>") and temporary directories, so tests running in parallel never see each other's
// containers, and TearDown proves nothing is left behind.
//
// dockerd or the test images missing: the test FAILS when CI is set (CI has every capability) and
// skips loudly otherwise (tests/support/capability.h). scripts/run-tests starts dockerd and builds
// the images (scripts/ensure-services) before ctest.
#pragma once

#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <memory>
#include <set>
#include <sstream>
#include <string>

#include "../test_identity.h"
#include "capability.h"
#include "base/ids.h"
#include "runtime/docker_launcher.h"

namespace agentfense::runtime::testing {

inline constexpr const char* kBusyboxImage = "agentfense-test/busybox:latest";
inline constexpr const char* kDebianImage = "agentfense-test/debian:latest";

// The agent binary built beside this test (CMake passes its path), or $AF_AGENT_PATH.
inline std::string AgentPath() {
  if (const char* p = std::getenv("AF_AGENT_PATH"); p != nullptr && *p != '\0') return p;
#ifdef AF_AGENT_PATH
  return AF_AGENT_PATH;
#else
  return "";
#endif
}

inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Unavailable capability: FAIL in CI, loud skip elsewhere. Use as `AF_DOCKER_REQUIRE(cond, why);`.
#define AF_DOCKER_REQUIRE(cond, why)                         \
  AF_REQUIRE_CAPABILITY(cond,                                \
                        std::string("no docker: ") + (why) + \
                            " -- run scripts/ensure-services to start dockerd and build images")

// The sandboxes' host uid (= gid): this test process's lease (tests/test_identity.h).
inline uid_t HostUid() { return agentfense::testing::TestIdentity().uid(); }

class DockerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/afdt-XXXXXX";
    const char* d = ::mkdtemp(tmpl);
    ASSERT_NE(d, nullptr);
    tmp_ = d;
    ASSERT_EQ(::chmod(tmp_.c_str(), 0755), 0);
    // Like the product's mount root: a shared mount, so the workspace can be bound rslave (on a
    // host without systemd "/" is private and Docker would refuse rslave).
    ASSERT_EQ(::mount(tmp_.c_str(), tmp_.c_str(), nullptr, MS_BIND, nullptr), 0);
    shared_mount_ = true;
    ASSERT_EQ(::mount(nullptr, tmp_.c_str(), nullptr, MS_SHARED, nullptr), 0);
    workspace_ = tmp_ + "/ws";
    ASSERT_EQ(::mkdir(workspace_.c_str(), 0755), 0);
    // The sandbox user must be able to write its workspace (the FUSE mount does this in the
    // product; here it is a plain directory).
    ASSERT_EQ(::chown(workspace_.c_str(), HostUid(), HostUid()), 0);

    const std::string agent = AgentPath();
    AF_DOCKER_REQUIRE(!agent.empty() && ::access(agent.c_str(), X_OK) == 0,
                      "agentfense-agent not built (" + agent + ")");

    DockerLauncherConfig cfg;
    cfg.agent_path = agent;
    cfg.run_root = tmp_ + "/run";
    cfg.instance = "t" + std::to_string(::getpid());
    cfg.default_image = kBusyboxImage;
    cfg.stop_grace = std::chrono::seconds(1);
    cfg.uid = HostUid();
    cfg.gid = HostUid();
    // Docker's own convention for pointing clients at another daemon.
    if (const char* host = std::getenv("DOCKER_HOST"); host != nullptr && *host != '\0') {
      cfg.client.host = host;
    }
    ConfigureLauncher(cfg);
    auto launcher = DockerLauncher::Create(cfg);
    if (!launcher.ok() && launcher.error().code() != ErrorCode::kUnavailable) {
      FAIL() << launcher.error().ToString();
    }
    AF_DOCKER_REQUIRE(launcher.ok(), launcher.ok() ? "" : launcher.error().ToString());
    launcher_ = std::move(*launcher);
    for (const char* image : {kBusyboxImage, kDebianImage}) {
      AF_DOCKER_REQUIRE(launcher_->client().InspectImage(image).ok(),
                        std::string("test image ") + image + " missing");
    }
  }

  void TearDown() override {
    if (launcher_) {
      for (const auto& id : created_) {
        Status st = launcher_->Destroy(id);
        EXPECT_TRUE(st.ok()) << st.error().ToString();
      }
      auto left = launcher_->CleanupOrphans({});
      EXPECT_TRUE(left.ok());
      if (left.ok()) {
        EXPECT_TRUE(left->empty()) << "containers left behind by the test";
      }
      auto list = launcher_->client().ListContainers(
          {std::string(kLabelInstance) + "=" + launcher_->config().instance}, true);
      ASSERT_TRUE(list.ok());
      EXPECT_TRUE(list->empty());
    }
    if (shared_mount_) {
      EXPECT_EQ(::umount2(tmp_.c_str(), MNT_DETACH), 0);
    }
    if (!tmp_.empty()) {
      auto root = OpenAt(AT_FDCWD, "/tmp", O_RDONLY | O_DIRECTORY);
      if (root.ok()) (void)RemoveTreeAt(root->get(), tmp_.substr(5));
    }
  }

  // Hook for fixtures that need another configuration.
  virtual void ConfigureLauncher(DockerLauncherConfig& /*cfg*/) {}

  // A fresh sandbox id (base/ids.h); `tag` only documents the call site.
  std::string NewId(const std::string& /*tag*/) {
    auto made = NewSandboxId();
    std::string id = made.ok() ? *made : std::string();
    created_.insert(id);
    return id;
  }

  // Creates and starts a sandbox; fails the test on error.
  std::unique_ptr<AgentClient> StartSandbox(const std::string& id, DockerSandboxSpec spec = {}) {
    spec.sandbox_id = id;
    if (spec.workspace_dir.empty()) spec.workspace_dir = workspace_;
    Status st = launcher_->CreateSandbox(spec);
    EXPECT_TRUE(st.ok()) << st.error().ToString();
    if (!st.ok()) return nullptr;
    auto agent = launcher_->Start(id);
    EXPECT_TRUE(agent.ok()) << agent.error().ToString();
    if (!agent.ok()) return nullptr;
    return std::move(*agent);
  }

  static proto::Exec Sh(const std::string& command, uint32_t timeout_ms = 20000) {
    proto::Exec e;
    e.shell_command = command;
    e.timeout_ms = timeout_ms;
    return e;
  }

  ExecResult Run(AgentClient& agent, const std::string& id, const proto::Exec& e) {
    auto r = launcher_->Exec(agent, id, e);
    EXPECT_TRUE(r.ok()) << r.error().ToString();
    return r.ok() ? std::move(*r) : ExecResult{-1, 0, 0, false, false, false, "", ""};
  }
  ExecResult Run(AgentClient& agent, const std::string& id, const std::string& command) {
    return Run(agent, id, Sh(command));
  }

  std::string tmp_;
  bool shared_mount_ = false;
  std::string workspace_;
  std::unique_ptr<DockerLauncher> launcher_;
  std::set<std::string> created_;
};

}  // namespace agentfense::runtime::testing
