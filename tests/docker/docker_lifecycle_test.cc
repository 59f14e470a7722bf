// Container lifecycle against a real dockerd: create / start / stop / start / destroy, labels,
// errors for unknown images and an unreachable daemon, orphan cleanup, the agent-socket checks.
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <fmt/format.h>

#include "docker_test_env.h"

namespace agentfense::runtime::testing {
namespace {

using namespace std::chrono_literals;

TEST_F(DockerTest, LifecycleCreateStartStopStartDestroy) {
  const std::string id = NewId("life");
  auto agent = StartSandbox(id);
  ASSERT_NE(agent, nullptr);

  auto info = launcher_->Inspect(id);
  ASSERT_TRUE(info.ok());
  EXPECT_TRUE(info->running);
  EXPECT_EQ(info->name, launcher_->ContainerName(id));

  ExecResult r = Run(*agent, id, "echo hello; echo state > /workspace/kept.txt");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.stdout_data, "hello\n");

  ASSERT_TRUE(launcher_->Stop(id).ok());
  info = launcher_->Inspect(id);
  ASSERT_TRUE(info.ok());
  EXPECT_FALSE(info->running);
  // Stopping twice is fine.
  EXPECT_TRUE(launcher_->Stop(id).ok());
  // Exec on a stopped sandbox is refused, not hung.
  auto refused = launcher_->Exec(*agent, id, Sh("true"));
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.error().code(), ErrorCode::kFailedPrecondition);
  agent.reset();

  // Restart: same container, the agent listens again, state persists.
  auto again = launcher_->Start(id);
  ASSERT_TRUE(again.ok()) << again.error().ToString();
  r = Run(**again, id, "cat /workspace/kept.txt");
  EXPECT_EQ(r.stdout_data, "state\n");
  again->reset();

  ASSERT_TRUE(launcher_->Destroy(id).ok());
  auto gone = launcher_->Inspect(id);
  ASSERT_FALSE(gone.ok());
  EXPECT_EQ(gone.error().code(), ErrorCode::kNotFound);
  struct stat st;
  EXPECT_NE(::stat(launcher_->RunDir(id).c_str(), &st), 0) << "run directory left behind";
  auto list =
      launcher_->client().ListContainers({std::string(kLabelSandbox) + "=" + id}, /*all=*/true);
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->empty());
  // Destroy is idempotent.
  EXPECT_TRUE(launcher_->Destroy(id).ok());
  // The workspace (the user's data) is untouched by destroy.
  EXPECT_EQ(ReadFile(workspace_ + "/kept.txt"), "state\n");
}

TEST_F(DockerTest, LabelsAndIsolationSettingsApplied) {
  const std::string id = NewId("labels");
  DockerSandboxSpec spec;
  spec.sandbox_id = id;
  spec.workspace_dir = workspace_;
  ASSERT_TRUE(launcher_->CreateSandbox(spec).ok());
  auto raw =
      launcher_->client().Call("GET", "/containers/" + launcher_->ContainerName(id) + "/json");
  ASSERT_TRUE(raw.ok());
  auto j = nlohmann::json::parse(raw->body);
  const auto& labels = j["Config"]["Labels"];
  EXPECT_EQ(labels["agentfense.managed"], "true");
  EXPECT_EQ(labels["agentfense.sandbox"], id);
  EXPECT_EQ(labels["agentfense.instance"], launcher_->config().instance);
  const auto& hc = j["HostConfig"];
  EXPECT_EQ(hc["CapDrop"], nlohmann::json::array({"ALL"}));
  EXPECT_EQ(hc["SecurityOpt"], nlohmann::json::array({"no-new-privileges"}));
  EXPECT_EQ(hc["NetworkMode"], "none");
  EXPECT_EQ(hc["ReadonlyRootfs"], true);
  EXPECT_EQ(j["Config"]["User"], fmt::format("{0}:{0}", HostUid()));
  bool rslave = false;
  for (const auto& m : j["Mounts"]) {
    if (m["Destination"] == "/workspace") rslave = m["Propagation"] == "rslave";
  }
  EXPECT_TRUE(rslave) << j["Mounts"].dump();
  // The daemon-side filter by label finds it.
  auto list = launcher_->client().ListContainers(
      {"agentfense.managed=true", std::string(kLabelSandbox) + "=" + id}, true);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ(list->front().status, "created");
}

TEST_F(DockerTest, UnknownImageIsNotFoundAndNamesTheImage) {
  const std::string id = NewId("noimage");
  DockerSandboxSpec spec;
  spec.sandbox_id = id;
  spec.workspace_dir = workspace_;
  spec.image = "agentfense-test/does-not-exist:1.0";
  Status st = launcher_->CreateSandbox(spec);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.error().code(), ErrorCode::kNotFound);
  EXPECT_NE(st.error().ToString().find("agentfense-test/does-not-exist:1.0"), std::string::npos)
      << st.error().ToString();
  auto list = launcher_->client().ListContainers({std::string(kLabelSandbox) + "=" + id}, true);
  ASSERT_TRUE(list.ok());
  EXPECT_TRUE(list->empty());
}

TEST_F(DockerTest, BadSpecsRefused) {
  DockerSandboxSpec spec;
  spec.sandbox_id = "x";  // not an id's shape: no sandbox can have it (base/ids.h)
  spec.workspace_dir = workspace_;
  EXPECT_EQ(launcher_->CreateSandbox(spec).error().code(), ErrorCode::kNotFound);
  spec.sandbox_id = NewId("nows");
  spec.workspace_dir = tmp_ + "/missing";
  EXPECT_EQ(launcher_->CreateSandbox(spec).error().code(), ErrorCode::kFailedPrecondition);
  spec.workspace_dir = workspace_;
  auto agent = StartSandbox(spec.sandbox_id, spec);
  ASSERT_NE(agent, nullptr);
  Status dup = launcher_->CreateSandbox(spec);
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code(), ErrorCode::kAlreadyExists) << dup.error().ToString();
  // The refused duplicate left the running sandbox alone (its agent socket included).
  EXPECT_EQ(Run(*agent, spec.sandbox_id, "echo still").stdout_data, "still\n");
  auto reattach = launcher_->Attach(spec.sandbox_id, 2s);
  EXPECT_TRUE(reattach.ok()) << reattach.error().ToString();
  EXPECT_EQ(launcher_->Start("../../etc").error().code(), ErrorCode::kNotFound);
  auto missing = launcher_->Start(NewId("never_created"));
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().code(), ErrorCode::kNotFound) << missing.error().ToString();
}

TEST_F(DockerTest, DaemonDownIsUnavailable) {
  DockerLauncherConfig cfg = launcher_->config();
  cfg.client.host = "unix://" + tmp_ + "/no-such-docker.sock";
  auto l = DockerLauncher::Create(cfg);
  ASSERT_FALSE(l.ok());
  EXPECT_EQ(l.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(l.error().ToString().find("docker daemon not reachable at unix://" + tmp_ +
                                      "/no-such-docker.sock"),
            std::string::npos)
      << l.error().ToString();
}

TEST_F(DockerTest, OrphanCleanupRemovesOnlyDeadSandboxesOfThisInstance) {
  const std::string live = NewId("live");
  const std::string dead1 = NewId("dead");
  const std::string dead2 = NewId("dead");
  auto a = StartSandbox(live);
  ASSERT_NE(a, nullptr);
  auto b = StartSandbox(dead1);
  ASSERT_NE(b, nullptr);
  DockerSandboxSpec spec;
  spec.sandbox_id = dead2;
  spec.workspace_dir = workspace_;
  ASSERT_TRUE(launcher_->CreateSandbox(spec).ok());  // created, never started

  // Another instance sharing the daemon: must survive our cleanup.
  DockerLauncherConfig other_cfg = launcher_->config();
  other_cfg.instance += "other";
  auto other = DockerLauncher::Create(other_cfg);
  ASSERT_TRUE(other.ok());
  DockerSandboxSpec other_spec;
  other_spec.sandbox_id = NewId("other_instance");
  other_spec.workspace_dir = workspace_;
  ASSERT_TRUE((*other)->CreateSandbox(other_spec).ok());

  auto removed = launcher_->CleanupOrphans({live});
  ASSERT_TRUE(removed.ok()) << removed.error().ToString();
  std::set<std::string> got(removed->begin(), removed->end());
  EXPECT_EQ(got, (std::set<std::string>{dead1, dead2}));

  EXPECT_TRUE(launcher_->Inspect(live).ok());
  EXPECT_EQ(launcher_->Inspect(dead1).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(launcher_->Inspect(dead2).error().code(), ErrorCode::kNotFound);
  struct stat st;
  EXPECT_EQ(::stat(launcher_->RunDir(live).c_str(), &st), 0);
  EXPECT_NE(::stat(launcher_->RunDir(dead1).c_str(), &st), 0);
  EXPECT_TRUE((*other)->Inspect(other_spec.sandbox_id).ok()) << "another instance was touched";
  // The live sandbox still works.
  EXPECT_EQ(Run(*a, live, "echo alive").stdout_data, "alive\n");

  ASSERT_TRUE((*other)->Destroy(other_spec.sandbox_id).ok());
}

TEST_F(DockerTest, ReattachAfterClientLoss) {
  const std::string id = NewId("attach");
  auto agent = StartSandbox(id);
  ASSERT_NE(agent, nullptr);
  agent.reset();  // e.g. the server restarted
  auto again = launcher_->Attach(id);
  ASSERT_TRUE(again.ok()) << again.error().ToString();
  EXPECT_EQ(Run(**again, id, "echo back").stdout_data, "back\n");
}

TEST_F(DockerTest, AgentSocketSymlinkIsRefused) {
  const std::string id = NewId("symlink");
  auto agent = StartSandbox(id);
  ASSERT_NE(agent, nullptr);
  // The run directory is writable by the sandbox. Plant what a hostile sandbox could: a symlink
  // named agent.sock pointing at a host socket it wants the host to talk to.
  const std::string bait = tmp_ + "/bait.sock";
  UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", bait.c_str());
  ASSERT_EQ(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(listener.get(), 1), 0);
  const std::string sock = launcher_->RunDir(id) + "/agent.sock";
  ASSERT_EQ(::unlink(sock.c_str()), 0);
  ASSERT_EQ(::symlink(bait.c_str(), sock.c_str()), 0);
  auto attach = launcher_->Attach(id, 2s);
  ASSERT_FALSE(attach.ok());
  EXPECT_NE(attach.error().code(), ErrorCode::kOk);
  // Nothing connected to the bait.
  UniqueFd accepted(::accept4(listener.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
  EXPECT_FALSE(accepted.valid());
}

TEST_F(DockerTest, HostMountUnderWorkspaceIsSeenInside) {
  // rslave propagation: a mount made on the host under the workspace after the container started
  // (how the FUSE mount appears when it is (re)mounted) is visible inside.
  const std::string id = NewId("prop");
  const std::string sub = workspace_ + "/late";
  ASSERT_EQ(::mkdir(sub.c_str(), 0755), 0);
  auto agent = StartSandbox(id);
  ASSERT_NE(agent, nullptr);
  ASSERT_EQ(::mount("tmpfs", sub.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, "size=1m,mode=0777"), 0)
      << std::strerror(errno);
  { std::ofstream(sub + "/marker") << "from-host-mount"; }
  ExecResult r =
      Run(*agent, id, "cat /workspace/late/marker; grep ' /workspace/late ' /proc/mounts");
  EXPECT_EQ(r.exit_code, 0) << r.stderr_data;
  EXPECT_NE(r.stdout_data.find("from-host-mount"), std::string::npos);
  // The mount flags of the source hold inside.
  EXPECT_NE(r.stdout_data.find("nosuid"), std::string::npos) << r.stdout_data;
  EXPECT_NE(r.stdout_data.find("nodev"), std::string::npos) << r.stdout_data;
  agent.reset();
  ASSERT_TRUE(launcher_->Destroy(id).ok());
  EXPECT_EQ(::umount2(sub.c_str(), MNT_DETACH), 0);
}

TEST_F(DockerTest, WorkspaceOnPrivateMountStillWorks) {
  // Docker refuses rslave on a private mount; the launcher falls back to rprivate.
  const std::string priv = tmp_ + "/priv";
  ASSERT_EQ(::mkdir(priv.c_str(), 0755), 0);
  ASSERT_EQ(::mount("tmpfs", priv.c_str(), "tmpfs", 0, "size=4m,mode=0777"), 0);
  ASSERT_EQ(::mount(nullptr, priv.c_str(), nullptr, MS_PRIVATE, nullptr), 0);
  const std::string id = NewId("priv");
  DockerSandboxSpec spec;
  spec.workspace_dir = priv;
  auto agent = StartSandbox(id, spec);
  EXPECT_NE(agent, nullptr);
  if (agent) {
    EXPECT_EQ(Run(*agent, id, "echo x > /workspace/f && cat /workspace/f").stdout_data, "x\n");
  }
  agent.reset();
  EXPECT_TRUE(launcher_->Destroy(id).ok());
  EXPECT_EQ(::umount2(priv.c_str(), MNT_DETACH), 0);
}

}  // namespace
}  // namespace agentfense::runtime::testing
