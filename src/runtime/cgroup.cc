#include "runtime/cgroup.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <thread>

#include "base/log.h"
#include "base/path.h"

namespace agentfense::runtime {
namespace {

bool Exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

Result<std::string> ReadFile(const std::string& p) {
  std::ifstream in(p);
  if (!in) return Error::FromErrno(errno ? errno : ENOENT, "read " + p);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

Status WriteFile(const std::string& p, const std::string& v) {
  UniqueFd fd(::open(p.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return Error::FromErrno(errno, "open " + p);
  if (::write(fd.get(), v.data(), v.size()) != static_cast<ssize_t>(v.size())) {
    return Error::FromErrno(errno, "write " + v + " to " + p);
  }
  return OkStatus();
}

bool ValidId(const std::string& id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
  }
  return true;
}

// The path of this process's cgroup in the v1 hierarchy that has `controller`, from the content
// of /proc/self/cgroup ("4:memory:/a/b" lines; "cpu,cpuacct" lists several controllers).
std::string OwnV1Path(const std::string& self_cgroup, const std::string& controller) {
  std::istringstream in(self_cgroup);
  std::string line;
  while (std::getline(in, line)) {
    size_t a = line.find(':');
    size_t b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    std::string ctrls = line.substr(a + 1, b - a - 1);
    std::istringstream cs(ctrls);
    std::string c;
    while (std::getline(cs, c, ',')) {
      if (c == controller) return line.substr(b + 1);
    }
  }
  return "/";
}

std::string Join(const std::string& a, const std::string& b) {
  if (b.empty() || b == "/") return a;
  if (b[0] == '/') return a + b;
  return a + "/" + b;
}

}  // namespace

Result<CgroupLayout> ResolveCgroupLayout(const std::string& sandbox_id,
                                         const CgroupOptions& options) {
  if (!ValidId(sandbox_id) || !ValidId(options.parent)) {
    return Error(ErrorCode::kInvalidArgument, "bad cgroup name: " + sandbox_id);
  }
  CgroupLayout layout;
  if (Exists(options.root + "/cgroup.controllers")) {
    layout.version = CgroupVersion::kV2;
    std::string parent = options.root + "/" + options.parent;
    std::string dir = parent + "/" + sandbox_id;
    layout.dirs = {dir};
    layout.memory_dir = dir;
    layout.subtree_control = {options.root + "/cgroup.subtree_control",
                              parent + "/cgroup.subtree_control"};
    return layout;
  }
  layout.version = CgroupVersion::kV1;
  std::string self;
  if (auto s = ReadFile(options.self_cgroup_file); s.ok()) self = *s;
  for (const char* ctrl : {"memory", "pids", "cpu"}) {
    std::string mount = options.root + "/" + ctrl;
    if (!Exists(mount + "/cgroup.procs")) {
      return Error(ErrorCode::kFailedPrecondition,
                   std::string("cgroup v1 hierarchy '") + ctrl + "' not mounted at " + mount);
    }
    std::string dir = Join(Join(mount, OwnV1Path(self, ctrl)), options.parent + "/" + sandbox_id);
    layout.dirs.push_back(dir);
    if (std::string(ctrl) == "memory") layout.memory_dir = dir;
  }
  return layout;
}

std::vector<CgroupWrite> PlanCgroupLimits(const CgroupLayout& layout, const CgroupLimits& limits) {
  std::vector<CgroupWrite> w;
  constexpr uint64_t kPeriodUs = 100000;
  if (layout.version == CgroupVersion::kV2) {
    const std::string& d = layout.dirs[0];
    if (limits.memory_bytes) {
      w.push_back({d + "/memory.max", std::to_string(limits.memory_bytes)});
      w.push_back({d + "/memory.swap.max", "0", true});
    }
    if (limits.pids_max) w.push_back({d + "/pids.max", std::to_string(limits.pids_max)});
    if (limits.cpu_millis) {
      w.push_back({d + "/cpu.max", std::to_string(limits.cpu_millis * kPeriodUs / 1000) + " " +
                                       std::to_string(kPeriodUs)});
    }
    if (limits.cpu_shares) {
      // The documented v1 → v2 mapping (shares 2..262144 onto weight 1..10000).
      uint64_t s = std::clamp<uint64_t>(limits.cpu_shares, 2, 262144);
      w.push_back({d + "/cpu.weight", std::to_string(1 + ((s - 2) * 9999) / 262142)});
    }
    return w;
  }
  const std::string& mem = layout.dirs[0];
  const std::string& pids = layout.dirs[1];
  const std::string& cpu = layout.dirs[2];
  if (limits.memory_bytes) {
    w.push_back({mem + "/memory.limit_in_bytes", std::to_string(limits.memory_bytes)});
    // memsw (memory + swap) must be >= limit_in_bytes, so it is written after it. Missing when
    // the kernel runs without swap accounting.
    w.push_back({mem + "/memory.memsw.limit_in_bytes", std::to_string(limits.memory_bytes), true});
  }
  if (limits.pids_max) w.push_back({pids + "/pids.max", std::to_string(limits.pids_max)});
  if (limits.cpu_millis) {
    w.push_back({cpu + "/cpu.cfs_period_us", std::to_string(kPeriodUs)});
    w.push_back({cpu + "/cpu.cfs_quota_us", std::to_string(limits.cpu_millis * kPeriodUs / 1000)});
  }
  if (limits.cpu_shares) w.push_back({cpu + "/cpu.shares", std::to_string(limits.cpu_shares)});
  return w;
}

uint64_t ParseOomKillCount(const std::string& content) {
  std::istringstream in(content);
  std::string key;
  uint64_t value;
  while (in >> key >> value) {
    if (key == "oom_kill") return value;
  }
  return 0;
}

Result<std::unique_ptr<Cgroup>> Cgroup::Create(const std::string& sandbox_id,
                                               const CgroupLimits& limits,
                                               const CgroupOptions& options) {
  AF_ASSIGN_OR_RETURN(CgroupLayout layout, ResolveCgroupLayout(sandbox_id, options));
  std::unique_ptr<Cgroup> cg(new Cgroup(layout));
  auto mkdir_one = [&](const std::string& dir, bool record) -> Status {
    if (::mkdir(dir.c_str(), 0755) == 0) {
      if (record) cg->created_.push_back(dir);
      return OkStatus();
    }
    if (errno == EEXIST && !record) return OkStatus();
    if (errno == EEXIST) {
      // Left by an earlier run of this sandbox that died before its own cleanup (a crashed
      // supervisor). Ids are unique, so what still runs in it is that run's: removed as ours
      // (processes killed). Otherwise the sandbox could not restart with limits, and without
      // limits it ran with no cgroup at all (nothing to kill its escaped processes with).
      AF_LOG_WARN("sandbox {}: removing the cgroup an earlier run left: {}", sandbox_id, dir);
      Cgroup stale(CgroupLayout{layout.version, {dir}, dir, {}});
      stale.created_.push_back(dir);
      if (stale.Remove().ok() && ::mkdir(dir.c_str(), 0755) == 0) {
        cg->created_.push_back(dir);
        return OkStatus();
      }
    }
    return Error(ErrorCode::kFailedPrecondition, "cannot create cgroup " + dir, errno);
  };
  for (const auto& dir : layout.dirs) {
    std::string parent = dir.substr(0, dir.rfind('/'));
    AF_RETURN_IF_ERROR(mkdir_one(parent, false));  // the shared "agentfense" group stays
    AF_RETURN_IF_ERROR(mkdir_one(dir, true));
  }
  if (layout.version == CgroupVersion::kV2) {
    for (const auto& sc : layout.subtree_control) {
      AF_RETURN_IF_ERROR(WriteFile(sc, "+memory +pids +cpu"));
    }
  }
  for (const auto& w : PlanCgroupLimits(layout, limits)) {
    Status st = WriteFile(w.path, w.value);
    if (!st.ok() && !w.optional) {
      return Error(ErrorCode::kFailedPrecondition, "cgroup limit: " + st.error().ToString());
    }
  }
  for (const auto& dir : layout.dirs) {
    UniqueFd fd(::open((dir + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd)
      return Error(ErrorCode::kFailedPrecondition, "cannot open " + dir + "/cgroup.procs", errno);
    cg->procs_fds_.push_back(std::move(fd));
  }
  return cg;
}

Cgroup::~Cgroup() { (void)Remove(); }

uint64_t Cgroup::OomKills() const {
  std::string file =
      layout_.memory_dir +
      (layout_.version == CgroupVersion::kV2 ? "/memory.events" : "/memory.oom_control");
  auto c = ReadFile(file);
  return c.ok() ? ParseOomKillCount(*c) : 0;
}

std::vector<int> Cgroup::Pids() const {
  std::vector<int> pids;
  for (const auto& dir : layout_.dirs) {
    auto c = ReadFile(dir + "/cgroup.procs");
    if (!c.ok()) continue;
    std::istringstream in(*c);
    int pid;
    while (in >> pid) pids.push_back(pid);
  }
  return pids;
}

void Cgroup::KillAll(int rounds) const {
  if (layout_.version == CgroupVersion::kV2 && !layout_.dirs.empty()) {
    // cgroup.kill (Linux 5.14) kills atomically, fork bombs included.
    if (WriteFile(layout_.dirs[0] + "/cgroup.kill", "1").ok()) rounds = std::min(rounds, 20);
  }
  for (int i = 0; i < rounds; ++i) {
    auto pids = Pids();
    if (pids.empty()) return;
    for (int pid : pids) ::kill(pid, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(i < 5 ? 1 : 10));
  }
}

Status Cgroup::Remove() {
  if (removed_) return OkStatus();
  KillAll();
  procs_fds_.clear();
  Status result = OkStatus();
  for (auto it = created_.rbegin(); it != created_.rend(); ++it) {
    // rmdir fails with EBUSY until the last killed task has been reaped by its parent.
    bool gone = false;
    for (int i = 0; i < 200 && !gone; ++i) {
      if (::rmdir(it->c_str()) == 0 || errno == ENOENT) {
        gone = true;
      } else {
        if (i % 20 == 0) KillAll(2);
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    }
    if (!gone && result.ok()) result = Error::FromErrno(errno, "rmdir cgroup " + *it);
  }
  removed_ = true;
  return result;
}

}  // namespace agentfense::runtime
