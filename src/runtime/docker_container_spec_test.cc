// Unit tests of the Docker container plan: every isolation setting of SECURITY-NOTES §4 item 9 is
// checked on the create body, unprivileged and without a daemon.
#include "runtime/docker_container_spec.h"

#include <gtest/gtest.h>

namespace agentfense::runtime {
namespace {

using Json = nlohmann::json;

DockerContainerPlan BasePlan() {
  DockerContainerPlan p;
  p.sandbox_id = "sb_0123456789abcdef";
  p.instance = "test";
  p.image = "agentfense-test/busybox:latest";
  p.workspace_dir = "/var/lib/agentfense/mnt/sbx_0123456789";
  p.agent_path = "/usr/lib/agentfense/agentfense-agent";
  p.run_dir = "/run/agentfense/docker/agentfense-test-sbx_0123456789";
  p.agent_args = {"--listen", "/run/agentfense/agent.sock"};
  p.uid = p.gid = 524301;  // the sandbox's own identity
  return p;
}

const Json* FindMount(const Json& body, std::string_view target) {
  for (const Json& m : body["HostConfig"]["Mounts"]) {
    if (m["Target"] == target) return &m;
  }
  return nullptr;
}

TEST(DockerContainerSpec, DefaultsAreLeastPrivilege) {
  auto body = BuildContainerCreateBody(BasePlan());
  ASSERT_TRUE(body.ok()) << body.error().ToString();
  const Json& hc = (*body)["HostConfig"];
  EXPECT_EQ(hc["CapDrop"], Json::array({"ALL"}));
  EXPECT_TRUE(hc["CapAdd"].empty());
  EXPECT_EQ(hc["SecurityOpt"], Json::array({"no-new-privileges"}));
  EXPECT_EQ(hc["Privileged"], false);
  EXPECT_EQ(hc["NetworkMode"], "none");
  EXPECT_EQ((*body)["NetworkDisabled"], true);
  EXPECT_EQ(hc["ReadonlyRootfs"], true);
  EXPECT_EQ(hc["IpcMode"], "private");
  EXPECT_EQ(hc["AutoRemove"], false);
  ASSERT_TRUE(hc["Tmpfs"].contains("/tmp"));
  const std::string tmp = hc["Tmpfs"]["/tmp"];
  EXPECT_NE(tmp.find("nosuid"), std::string::npos);
  EXPECT_NE(tmp.find("nodev"), std::string::npos);
  EXPECT_NE(tmp.find("size=268435456"), std::string::npos);
  EXPECT_EQ((*body)["User"], "524301:524301");
  EXPECT_EQ((*body)["WorkingDir"], "/workspace");
  EXPECT_EQ((*body)["Tty"], false);
  // No limits asked: none set (Docker's "unlimited").
  EXPECT_FALSE(hc.contains("Memory"));
  EXPECT_FALSE(hc.contains("PidsLimit"));
  // Never the host's docker socket, never a Binds string.
  EXPECT_FALSE(hc.contains("Binds"));
  EXPECT_EQ(body->dump().find("docker.sock"), std::string::npos);
}

TEST(DockerContainerSpec, RefusesRootAndNobodyAsTheSandboxIdentity) {
  for (uint32_t id : {0u, 65534u}) {
    DockerContainerPlan p = BasePlan();
    p.uid = id;
    EXPECT_FALSE(BuildContainerCreateBody(p).ok()) << id;
    p = BasePlan();
    p.gid = id;
    EXPECT_FALSE(BuildContainerCreateBody(p).ok()) << id;
  }
}

TEST(DockerContainerSpec, MountsAndEntrypoint) {
  auto body = BuildContainerCreateBody(BasePlan());
  ASSERT_TRUE(body.ok());
  const Json* ws = FindMount(*body, "/workspace");
  ASSERT_NE(ws, nullptr);
  EXPECT_EQ((*ws)["Type"], "bind");
  EXPECT_EQ((*ws)["Source"], "/var/lib/agentfense/mnt/sbx_0123456789");
  EXPECT_EQ((*ws)["ReadOnly"], false);
  EXPECT_EQ((*ws)["BindOptions"]["Propagation"], "rslave");
  const Json* agent = FindMount(*body, kContainerAgentPath);
  ASSERT_NE(agent, nullptr);
  EXPECT_EQ((*agent)["ReadOnly"], true);
  const Json* run = FindMount(*body, kContainerRunDir);
  ASSERT_NE(run, nullptr);
  EXPECT_EQ((*run)["Source"], "/run/agentfense/docker/agentfense-test-sbx_0123456789");
  EXPECT_EQ((*body)["Entrypoint"], Json::array({std::string(kContainerAgentPath), "--listen",
                                                "/run/agentfense/agent.sock"}));
  EXPECT_TRUE((*body)["Cmd"].empty());
}

TEST(DockerContainerSpec, Labels) {
  auto plan = BasePlan();
  plan.extra_labels = {{"owner", "alice"}};
  auto body = BuildContainerCreateBody(plan);
  ASSERT_TRUE(body.ok());
  const Json& labels = (*body)["Labels"];
  EXPECT_EQ(labels["agentfense.managed"], "true");
  EXPECT_EQ(labels["agentfense.sandbox"], "sb_0123456789abcdef");
  EXPECT_EQ(labels["agentfense.instance"], "test");
  EXPECT_EQ(labels["owner"], "alice");

  plan.extra_labels = {{"agentfense.managed", "false"}};
  auto bad = BuildContainerCreateBody(plan);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code(), ErrorCode::kInvalidArgument);
}

TEST(DockerContainerSpec, Limits) {
  auto plan = BasePlan();
  plan.limits.memory_bytes = 128LL << 20;
  plan.limits.nano_cpus = 500000000;
  plan.limits.cpu_shares = 512;
  plan.limits.pids_limit = 64;
  plan.limits.tmp_size_bytes = 16LL << 20;
  auto body = BuildContainerCreateBody(plan);
  ASSERT_TRUE(body.ok()) << body.error().ToString();
  const Json& hc = (*body)["HostConfig"];
  EXPECT_EQ(hc["Memory"], 128LL << 20);
  EXPECT_EQ(hc["MemorySwap"], 128LL << 20);  // no swap beyond the limit
  EXPECT_EQ(hc["NanoCpus"], 500000000);
  EXPECT_EQ(hc["CpuShares"], 512);
  EXPECT_EQ(hc["PidsLimit"], 64);
  EXPECT_NE(hc["Tmpfs"]["/tmp"].get<std::string>().find("size=16777216"), std::string::npos);

  plan = BasePlan();
  plan.limits.cpu_quota_us = 50000;
  body = BuildContainerCreateBody(plan);
  ASSERT_TRUE(body.ok());
  EXPECT_EQ((*body)["HostConfig"]["CpuQuota"], 50000);
  EXPECT_EQ((*body)["HostConfig"]["CpuPeriod"], 100000);
  EXPECT_FALSE((*body)["HostConfig"].contains("NanoCpus"));
}

TEST(DockerContainerSpec, BadLimitsRefused) {
  auto check = [](auto mutate) {
    auto plan = BasePlan();
    mutate(plan.limits);
    auto body = BuildContainerCreateBody(plan);
    return !body.ok() && body.error().code() == ErrorCode::kInvalidArgument;
  };
  EXPECT_TRUE(check([](DockerLimits& l) { l.memory_bytes = -1; }));
  EXPECT_TRUE(check([](DockerLimits& l) { l.memory_bytes = 1024; }));
  EXPECT_TRUE(check([](DockerLimits& l) { l.pids_limit = -5; }));
  EXPECT_TRUE(check([](DockerLimits& l) { l.tmp_size_bytes = 0; }));
  EXPECT_TRUE(check([](DockerLimits& l) {
    l.nano_cpus = 1000000000;
    l.cpu_quota_us = 50000;
  }));
  EXPECT_TRUE(check([](DockerLimits& l) { l.cpu_period_us = 10; }));
  EXPECT_TRUE(check([](DockerLimits& l) { l.cpu_shares = 1; }));
}

TEST(DockerContainerSpec, NetworkNeverADockerNetwork) {
  // With or without network the container gets NetworkMode none (only lo): with network the
  // supervisor configures that namespace so the egress filter is its only way out.
  auto plan = BasePlan();
  auto off = BuildContainerCreateBody(plan);
  ASSERT_TRUE(off.ok());
  EXPECT_EQ((*off)["HostConfig"]["NetworkMode"], "none");
  EXPECT_EQ((*off)["NetworkDisabled"], true);
  plan.network = true;
  auto on = BuildContainerCreateBody(plan);
  ASSERT_TRUE(on.ok());
  EXPECT_EQ((*on)["HostConfig"]["NetworkMode"], "none");
  EXPECT_EQ((*on)["NetworkDisabled"], false);
}

TEST(DockerContainerSpec, RootUserRefused) {
  auto plan = BasePlan();
  plan.uid = 0;
  EXPECT_FALSE(BuildContainerCreateBody(plan).ok());
  plan = BasePlan();
  plan.gid = 0;
  EXPECT_FALSE(BuildContainerCreateBody(plan).ok());
  plan = BasePlan();
  plan.uid = 1000;
  plan.gid = 1001;
  auto body = BuildContainerCreateBody(plan);
  ASSERT_TRUE(body.ok());
  EXPECT_EQ((*body)["User"], "1000:1001");
}

TEST(DockerContainerSpec, BadPathsRefused) {
  for (const char* p : {"", "relative", "/", "/a/../b", "/a/./b", "/a//b", "/a/", "/a,b", "/a:b"}) {
    auto plan = BasePlan();
    plan.workspace_dir = p;
    auto body = BuildContainerCreateBody(plan);
    ASSERT_FALSE(body.ok()) << p;
    EXPECT_EQ(body.error().code(), ErrorCode::kInvalidArgument) << p;
    plan = BasePlan();
    plan.agent_path = p;
    EXPECT_FALSE(BuildContainerCreateBody(plan).ok()) << p;
  }
}

TEST(DockerContainerSpec, IdsAndNames) {
  EXPECT_TRUE(ValidateInstanceName("default").ok());
  EXPECT_TRUE(ValidateInstanceName("t_1.x").ok());
  EXPECT_FALSE(ValidateInstanceName("").ok());
  EXPECT_FALSE(ValidateInstanceName("a-b").ok());  // '-' would make name prefixes ambiguous
  EXPECT_EQ(DockerContainerName("default", "sb_0123456789abcdef"),
            "agentfense-default-sb_0123456789abcdef");

  auto plan = BasePlan();
  plan.image = "bad image";
  EXPECT_FALSE(BuildContainerCreateBody(plan).ok());
  plan = BasePlan();
  // Only a sandbox id (base/ids.h) names a container.
  for (const char* bad : {"x", "sbx_0123456789", "../../etc", "sb_0123456789abcdeF"}) {
    plan.sandbox_id = bad;
    EXPECT_FALSE(BuildContainerCreateBody(plan).ok()) << bad;
  }
}

}  // namespace
}  // namespace agentfense::runtime
