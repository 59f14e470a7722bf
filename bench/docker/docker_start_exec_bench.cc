// Docker runtime, measured side by side in one run (issue 5, "Performance"):
//   sandbox start (create + start + agent ready + first exec result) vs `docker run --rm … true`
//     goal ≤ 1.1×
//   exec through the agent in a running sandbox vs `docker exec <container> true`
//     goal ≤ 0.1×
// Prints a Markdown table of p50/p90/p99/mean in milliseconds. Needs root and a running dockerd
// with the local test images (scripts/ensure-services). The docker CLI is used only here, for the
// baselines; the product never runs it.
//
// Usage: docker_start_exec_bench [--starts N] [--execs N] [--image IMG] [--agent PATH]
#include <spawn.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "runtime/docker_launcher.h"
#include "runtime/identity.h"

extern char** environ;

namespace af = agentfense;
namespace rt = agentfense::runtime;
using Clock = std::chrono::steady_clock;

namespace {

double Ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

struct Stats {
  std::string name;
  std::vector<double> ms;
  double Pct(double p) const {
    std::vector<double> v = ms;
    std::sort(v.begin(), v.end());
    if (v.empty()) return 0;
    size_t i = static_cast<size_t>(p / 100.0 * static_cast<double>(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
  }
  double Mean() const {
    double s = 0;
    for (double x : ms) s += x;
    return ms.empty() ? 0 : s / static_cast<double>(ms.size());
  }
};

// Runs argv (the docker CLI), output discarded; returns its exit status.
int RunQuiet(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid;
  int rc = posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) return -1;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

void Die(const std::string& what) {
  std::fprintf(stderr, "docker_start_exec_bench: %s\n", what.c_str());
  std::exit(1);
}

template <typename T>
T Check(af::Result<T> r, const char* what) {
  if (!r.ok()) Die(std::string(what) + ": " + r.error().ToString());
  return std::move(r).value();
}
void Check(const af::Status& s, const char* what) {
  if (!s.ok()) Die(std::string(what) + ": " + s.error().ToString());
}

std::string SelfDir() {
  char buf[4096];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return ".";
  std::string p(buf, static_cast<size_t>(n));
  return p.substr(0, p.rfind('/'));
}

}  // namespace

int main(int argc, char** argv) {
  int starts = 20;
  int execs = 200;
  int docker_execs = 30;
  std::string image = "agentfense-test/busybox:latest";
  std::string agent = SelfDir() + "/agentfense-agent";
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) Die(a + " needs a value");
      return argv[++i];
    };
    if (a == "--starts") {
      starts = std::atoi(next().c_str());
    } else if (a == "--execs") {
      execs = std::atoi(next().c_str());
    } else if (a == "--docker-execs") {
      docker_execs = std::atoi(next().c_str());
    } else if (a == "--image") {
      image = next();
    } else if (a == "--agent") {
      agent = next();
    } else {
      Die("unknown argument " + a);
    }
  }

  // A shared mount as the product's mount root (rslave binds need one), holding the workspace.
  char tmpl[] = "/tmp/afdb-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) Die("mkdtemp");
  const std::string tmp = tmpl;
  ::chmod(tmp.c_str(), 0755);
  if (::mount(tmp.c_str(), tmp.c_str(), nullptr, MS_BIND, nullptr) != 0 ||
      ::mount(nullptr, tmp.c_str(), nullptr, MS_SHARED, nullptr) != 0) {
    Die("making " + tmp + " a shared mount (needs root)");
  }
  const std::string ws = tmp + "/ws";
  ::mkdir(ws.c_str(), 0755);
  auto lease = Check(rt::IdentityLease::Acquire(rt::IdentityRange{}, rt::kDefaultLeaseDir, 0,
                                                "docker-bench"),
                     "identity");
  if (::chown(ws.c_str(), lease.uid(), lease.gid()) != 0) Die("chown workspace");

  rt::DockerLauncherConfig cfg;
  cfg.agent_path = agent;
  cfg.run_root = tmp + "/run";
  cfg.instance = "bench" + std::to_string(::getpid());
  cfg.default_image = image;
  cfg.stop_grace = std::chrono::seconds(1);
  cfg.uid = lease.uid();
  cfg.gid = lease.gid();
  auto launcher = Check(rt::DockerLauncher::Create(cfg), "launcher");
  Check(launcher->client().InspectImage(image), "image");

  std::vector<Stats> rows;
  std::printf("docker %s (API %s), image %s, %d starts, %d agent execs, %d docker execs\n\n",
              launcher->client().version().server_version.c_str(),
              launcher->client().api_version().c_str(), image.c_str(), starts, execs, docker_execs);

  // Warm-up: the first container start after a daemon start pays one-time costs.
  RunQuiet({"docker", "run", "--rm", "--network", "none", image, "true"});

  Stats run_plain{"`docker run --rm --network none IMG true`", {}};
  Stats run_same{"`docker run --rm` + the sandbox's flags and binds", {}};
  Stats ours_first{"sandbox start: create + start + agent ready + first exec result", {}};
  Stats ours_total{"sandbox start + first exec + destroy", {}};
  const std::string sec_flags_user = fmt::format("{0}:{0}", lease.uid());
  for (int i = 0; i < starts; ++i) {
    // Interleave the variants so drift in the daemon's speed hits all of them alike.
    auto t0 = Clock::now();
    if (RunQuiet({"docker", "run", "--rm", "--network", "none", image, "true"}) != 0) {
      Die("docker run failed");
    }
    run_plain.ms.push_back(Ms(Clock::now() - t0));

    t0 = Clock::now();
    if (RunQuiet({"docker",
                  "run",
                  "--rm",
                  "--network",
                  "none",
                  "--cap-drop",
                  "ALL",
                  "--security-opt",
                  "no-new-privileges",
                  "--read-only",
                  "--tmpfs",
                  "/tmp:rw,nosuid,nodev,size=268435456",
                  "--user",
                  sec_flags_user,
                  "--mount",
                  "type=bind,src=" + ws + ",dst=/workspace,bind-propagation=rslave",
                  "--mount",
                  "type=bind,src=" + agent + ",dst=/.agentfense/agent,readonly",
                  "--ipc",
                  "private",
                  image,
                  "true"}) != 0) {
      Die("docker run (same flags) failed");
    }
    run_same.ms.push_back(Ms(Clock::now() - t0));

    const std::string id = fmt::format("sb_{:016x}", 0xbe1000 + i);  // base/ids.h shape
    t0 = Clock::now();
    rt::DockerSandboxSpec spec;
    spec.sandbox_id = id;
    spec.workspace_dir = ws;
    Check(launcher->CreateSandbox(spec), "create");
    auto client = Check(launcher->Start(id), "start");
    agentfense::runtime::proto::Exec e;
    e.argv = {"true"};
    auto r = Check(launcher->Exec(*client, id, e), "first exec");
    if (r.exit_code != 0) Die("first exec failed");
    ours_first.ms.push_back(Ms(Clock::now() - t0));
    client.reset();
    Check(launcher->Destroy(id), "destroy");
    ours_total.ms.push_back(Ms(Clock::now() - t0));
  }
  rows = {run_plain, run_same, ours_first, ours_total};

  // Exec in a running sandbox.
  const std::string id = "sb_00000000be1fffff";
  rt::DockerSandboxSpec spec;
  spec.sandbox_id = id;
  spec.workspace_dir = ws;
  Check(launcher->CreateSandbox(spec), "create");
  auto client = Check(launcher->Start(id), "start");
  agentfense::runtime::proto::Exec e;
  e.argv = {"true"};
  Stats exec_raw{"exec `true` via the agent (AgentClient::Exec)", {}};
  Stats exec_launcher{"exec `true` via DockerLauncher::Exec (+ state and OOM checks)", {}};
  Stats exec_docker{"`docker exec CONTAINER true`", {}};
  for (int i = 0; i < 10; ++i) (void)client->Exec(e);
  for (int i = 0; i < execs; ++i) {
    auto t0 = Clock::now();
    auto r = Check(client->Exec(e), "exec");
    exec_raw.ms.push_back(Ms(Clock::now() - t0));
    t0 = Clock::now();
    r = Check(launcher->Exec(*client, id, e), "exec");
    exec_launcher.ms.push_back(Ms(Clock::now() - t0));
  }
  const std::string name = launcher->ContainerName(id);
  for (int i = 0; i < docker_execs; ++i) {
    auto t0 = Clock::now();
    if (RunQuiet({"docker", "exec", name, "true"}) != 0) Die("docker exec failed");
    exec_docker.ms.push_back(Ms(Clock::now() - t0));
  }
  client.reset();
  Check(launcher->Destroy(id), "destroy");
  (void)launcher->CleanupOrphans({});
  rows.push_back(exec_docker);
  rows.push_back(exec_raw);
  rows.push_back(exec_launcher);

  ::umount2(tmp.c_str(), MNT_DETACH);
  if (auto root = agentfense::OpenAt(AT_FDCWD, "/tmp", O_RDONLY | O_DIRECTORY); root.ok()) {
    (void)rt::RemoveTreeAt(root->get(), tmp.substr(5));
  }

  std::printf(
      "| operation | n | p50 ms | p90 ms | p99 ms | mean ms |\n|---|---|---|---|---|---|\n");
  for (const Stats& s : rows) {
    std::printf("| %s | %zu | %.1f | %.1f | %.1f | %.1f |\n", s.name.c_str(), s.ms.size(),
                s.Pct(50), s.Pct(90), s.Pct(99), s.Mean());
  }
  std::printf("\nstart ratio (p50, sandbox first result / docker run --rm): %.2fx (goal <= 1.1x)\n",
              ours_first.Pct(50) / run_plain.Pct(50));
  std::printf("start ratio (p50, vs docker run --rm with the same flags): %.2fx\n",
              ours_first.Pct(50) / run_same.Pct(50));
  std::printf("exec ratio (p50, agent / docker exec): %.3fx (goal <= 0.1x)\n",
              exec_raw.Pct(50) / exec_docker.Pct(50));
  std::printf("exec ratio (p50, DockerLauncher::Exec / docker exec): %.3fx\n",
              exec_launcher.Pct(50) / exec_docker.Pct(50));
  return 0;
}
