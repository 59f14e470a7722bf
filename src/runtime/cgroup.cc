#include "runtime/cgroup.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "base/ids.h"
#include "base/log.h"
#include "base/unique_fd.h"
#include "runtime/systemd_scope.h"

namespace agentfense::runtime {
namespace {

using Clock = std::chrono::steady_clock;

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

std::vector<int> ReadPids(const std::string& dir) {
  std::vector<int> pids;
  auto c = ReadFile(dir + "/cgroup.procs");
  if (!c.ok()) return pids;
  std::istringstream in(*c);
  int pid;
  while (in >> pid) pids.push_back(pid);
  return pids;
}

// Sleeps between polls of a cgroup file: short at first (most kills finish in a millisecond or
// two), then 10 ms.
void Backoff(int round) {
  std::this_thread::sleep_for(std::chrono::milliseconds(round < 10 ? 1 : 10));
}

// Polls `done` until it holds or `deadline` passes; returns whether it held.
template <typename Pred>
bool WaitUntil(Clock::time_point deadline, Pred done) {
  for (int round = 0;; ++round) {
    if (done()) return true;
    if (Clock::now() >= deadline) return false;
    Backoff(round);
  }
}

// The parent group's name (CgroupOptions::parent): one path component of a cgroup name.
bool ValidGroupName(const std::string& id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
  }
  return true;
}

// Controller (or "" for the v2 hierarchy, "name=systemd" for named ones) → path, from the content
// of /proc/PID/cgroup ("4:memory:/a/b" lines; "cpu,cpuacct" lists several controllers).
std::map<std::string, std::string> ParseProcCgroup(const std::string& content) {
  std::map<std::string, std::string> out;
  std::istringstream in(content);
  std::string line;
  while (std::getline(in, line)) {
    size_t a = line.find(':');
    size_t b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    std::string ctrls = line.substr(a + 1, b - a - 1);
    std::string path = line.substr(b + 1);
    if (ctrls.empty()) out[""] = path;
    std::istringstream cs(ctrls);
    std::string c;
    while (std::getline(cs, c, ',')) out[c] = path;
  }
  return out;
}

// The path of this process's cgroup in the v1 hierarchy that has `controller`.
std::string OwnV1Path(const std::string& self_cgroup, const std::string& controller) {
  auto paths = ParseProcCgroup(self_cgroup);
  auto it = paths.find(controller);
  return it == paths.end() ? "/" : it->second;
}

std::string Join(const std::string& a, const std::string& b) {
  if (b.empty() || b == "/") return a;
  if (b[0] == '/') return a + b;
  return a + "/" + b;
}

bool IsV2(const CgroupOptions& options) { return Exists(options.root + "/cgroup.controllers"); }

// The v1 freezer directory of a sandbox: under this process's own freezer cgroup, like the other
// v1 directories (the systemd driver uses it too: systemd does not manage the v1 freezer).
Result<std::string> V1FreezerDir(const std::string& sandbox_id, const CgroupOptions& options,
                                 const std::string& self) {
  std::string mount = options.root + "/freezer";
  if (!Exists(mount + "/cgroup.procs")) {
    return Error(ErrorCode::kFailedPrecondition, "cgroup v1 hierarchy 'freezer' not mounted at " +
                                                     mount +
                                                     " (needed to kill a sandbox's processes)");
  }
  return Join(Join(mount, OwnV1Path(self, "freezer")), options.parent + "/" + sandbox_id);
}

std::string ReadSelf(const CgroupOptions& options) {
  auto s = ReadFile(options.self_cgroup_file);
  return s.ok() ? *s : "";
}

}  // namespace

CgroupDriver ResolveCgroupDriver(const CgroupOptions& options) {
  if (options.driver != CgroupDriver::kAuto) return options.driver;
  return Exists(options.systemd_marker) ? CgroupDriver::kSystemd : CgroupDriver::kCgroupfs;
}

Result<CgroupLayout> ResolveCgroupLayout(const std::string& sandbox_id,
                                         const CgroupOptions& options, const CgroupLimits& limits) {
  if (!IsValidSandboxId(sandbox_id) || !ValidGroupName(options.parent)) {
    return Error(ErrorCode::kInvalidArgument, "bad cgroup name: " + sandbox_id);
  }
  CgroupLayout layout;
  if (IsV2(options)) {
    layout.version = CgroupVersion::kV2;
    std::string parent = options.root + "/" + options.parent;
    std::string dir = parent + "/" + sandbox_id;
    layout.dirs = {dir};
    layout.memory_dir = dir;
    layout.kill_dir = dir;
    // Only the controllers the limits need: a hierarchy may have none to give (the controller-less
    // v2 hierarchy of a hybrid host still kills through cgroup.kill).
    std::string c;
    if (limits.memory_bytes) c += "+memory ";
    if (limits.pids_max) c += "+pids ";
    if (limits.cpu_millis || limits.cpu_shares) c += "+cpu ";
    if (!c.empty()) {
      c.pop_back();
      layout.controllers = c;
      layout.subtree_control = {options.root + "/cgroup.subtree_control",
                                parent + "/cgroup.subtree_control"};
    }
    return layout;
  }
  layout.version = CgroupVersion::kV1;
  std::string self = ReadSelf(options);
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
  AF_ASSIGN_OR_RETURN(std::string freezer, V1FreezerDir(sandbox_id, options, self));
  layout.dirs.push_back(freezer);
  layout.kill_dir = freezer;
  return layout;
}

uint64_t CpuWeightFromShares(uint64_t shares) {
  uint64_t s = std::clamp<uint64_t>(shares, 2, 262144);
  return 1 + ((s - 2) * 9999) / 262142;
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
      w.push_back({d + "/cpu.weight", std::to_string(CpuWeightFromShares(limits.cpu_shares))});
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

std::string ScopeUnitName(const std::string& sandbox_id) {
  return "agentfense-" + sandbox_id + ".scope";
}

Cgroup::Cgroup(std::string sandbox_id, CgroupDriver driver, CgroupOptions options,
               const CgroupLimits& limits)
    : sandbox_id_(std::move(sandbox_id)),
      driver_(driver),
      options_(std::move(options)),
      limits_(limits) {}

Result<std::unique_ptr<Cgroup>> Cgroup::Create(const std::string& sandbox_id,
                                               const CgroupLimits& limits,
                                               const CgroupOptions& options) {
  if (!IsValidSandboxId(sandbox_id) || !ValidGroupName(options.parent)) {
    return Error(ErrorCode::kInvalidArgument, "bad cgroup name: " + sandbox_id);
  }
  CgroupDriver driver = ResolveCgroupDriver(options);
  std::unique_ptr<Cgroup> cg(new Cgroup(sandbox_id, driver, options, limits));
  if (driver == CgroupDriver::kSystemd) {
    // The scope and its directories come with the first process (Adopt).
    cg->layout_.version = IsV2(options) ? CgroupVersion::kV2 : CgroupVersion::kV1;
    return cg;
  }
  AF_ASSIGN_OR_RETURN(cg->layout_, ResolveCgroupLayout(sandbox_id, options, limits));
  AF_RETURN_IF_ERROR(cg->MakeDirs(cg->layout_));
  if (cg->layout_.version == CgroupVersion::kV2) {
    if (!Exists(cg->layout_.kill_dir + "/cgroup.kill")) {
      return Error(
          ErrorCode::kFailedPrecondition,
          "cgroup v2 without cgroup.kill (Linux 5.14 or later needed): " + cg->layout_.kill_dir);
    }
    for (const auto& sc : cg->layout_.subtree_control) {
      AF_RETURN_IF_ERROR(WriteFile(sc, cg->layout_.controllers));
    }
  }
  for (const auto& w : PlanCgroupLimits(cg->layout_, limits)) {
    Status st = WriteFile(w.path, w.value);
    if (!st.ok() && !w.optional) {
      return Error(ErrorCode::kFailedPrecondition, "cgroup limit: " + st.error().ToString());
    }
  }
  return cg;
}

Cgroup::~Cgroup() { (void)Remove(); }

Status Cgroup::MakeDirs(const CgroupLayout& layout) {
  // A directory that exists was left by an earlier run of this sandbox that died before its own
  // cleanup (a crashed supervisor). Ids are unique, so what still runs in it is that run's: it is
  // killed (through that run's freezer or cgroup.kill) and the group made afresh. Otherwise the
  // sandbox could not restart with limits, and without limits it ran with no cgroup at all
  // (nothing to kill its escaped processes with).
  std::vector<std::string> stale_dirs;
  for (const auto& dir : layout.dirs) {
    if (Exists(dir)) stale_dirs.push_back(dir);
  }
  if (!stale_dirs.empty()) {
    AF_LOG_WARN("sandbox {}: removing the cgroup an earlier run left: {}", sandbox_id_,
                stale_dirs.front());
    Cgroup stale(sandbox_id_, CgroupDriver::kCgroupfs, options_, {});
    stale.layout_ = layout;
    stale.created_ = stale_dirs;
    Status st = stale.Remove();
    if (!st.ok()) {
      return Error(ErrorCode::kFailedPrecondition,
                   "cannot reclaim the cgroup an earlier run left: " + st.error().ToString());
    }
  }
  for (const auto& dir : layout.dirs) {
    std::string parent = dir.substr(0, dir.rfind('/'));
    if (::mkdir(parent.c_str(), 0755) != 0 && errno != EEXIST) {  // shared by sandboxes: stays
      return Error(ErrorCode::kFailedPrecondition, "cannot create cgroup " + parent, errno);
    }
    if (::mkdir(dir.c_str(), 0755) != 0) {
      return Error(ErrorCode::kFailedPrecondition, "cannot create cgroup " + dir, errno);
    }
    created_.push_back(dir);
  }
  return OkStatus();
}

Status Cgroup::Adopt(pid_t pid) {
  if (driver_ == CgroupDriver::kSystemd) return AdoptSystemd(pid);
  for (const auto& dir : layout_.dirs) {
    Status st = WriteFile(dir + "/cgroup.procs", std::to_string(pid));
    if (!st.ok()) {
      return Error(ErrorCode::kFailedPrecondition,
                   "cannot move the sandbox into its cgroup: " + st.error().ToString());
    }
  }
  return OkStatus();
}

Status Cgroup::AdoptSystemd(pid_t pid) {
  const std::string unit = ScopeUnitName(sandbox_id_);
  const auto properties = PlanScopeProperties(sandbox_id_, limits_, layout_.version);
  Status st = StartTransientScope(unit, pid, properties, options_.systemd_bus);
  // A scope of that name outlived an earlier run (its supervisor died with processes left in it):
  // stopped (KillSignal=SIGKILL), then made afresh. Stopping is asynchronous: retried briefly.
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  for (int round = 0; !st.ok() && st.error().code() == ErrorCode::kAlreadyExists; ++round) {
    if (round == 0) {
      AF_LOG_WARN("sandbox {}: stopping the scope an earlier run left: {}", sandbox_id_, unit);
      AF_RETURN_IF_ERROR(StopUnit(unit, options_.systemd_bus));
    }
    if (Clock::now() >= deadline) break;
    Backoff(round + 10);
    st = StartTransientScope(unit, pid, properties, options_.systemd_bus);
  }
  if (!st.ok()) return std::move(st).error().With("sandbox " + sandbox_id_ + ": scope " + unit);
  scope_started_ = true;

  // systemd moves the process when the job runs, just after the call returns, and on v1 one
  // hierarchy after the other: wait until every one we use names the scope.
  const std::string proc = "/proc/" + std::to_string(pid) + "/cgroup";
  const std::vector<std::string> keys =
      layout_.version == CgroupVersion::kV2
          ? std::vector<std::string>{""}
          : std::vector<std::string>{"name=systemd", "memory", "pids", "cpu"};
  std::map<std::string, std::string> paths;
  bool moved = WaitUntil(Clock::now() + std::chrono::seconds(5), [&] {
    auto c = ReadFile(proc);
    if (!c.ok()) return false;
    paths = ParseProcCgroup(*c);
    return std::all_of(keys.begin(), keys.end(), [&](const std::string& k) {
      const std::string& p = paths[k];
      return p.size() > unit.size() &&
             p.compare(p.size() - unit.size() - 1, std::string::npos, "/" + unit) == 0;
    });
  });
  if (!moved) {
    return Error(ErrorCode::kDeadlineExceeded,
                 "systemd did not move the sandbox into " + unit + " within 5 s");
  }
  if (layout_.version == CgroupVersion::kV2) {
    std::string dir = Join(options_.root, paths[""]);
    layout_.dirs = {dir};
    layout_.memory_dir = dir;
    layout_.kill_dir = dir;
    return OkStatus();
  }
  // v1: systemd placed the scope in the controllers it manages (delegated, so all of them);
  // the freezer it does not manage is ours, as with cgroupfs.
  for (const char* ctrl : {"memory", "pids", "cpu"}) {
    layout_.dirs.push_back(Join(options_.root + "/" + ctrl, paths[ctrl]));
  }
  layout_.memory_dir = layout_.dirs[0];
  AF_ASSIGN_OR_RETURN(std::string freezer, V1FreezerDir(sandbox_id_, options_, ReadSelf(options_)));
  CgroupLayout ours{CgroupVersion::kV1, {freezer}, "", freezer, {}, ""};
  AF_RETURN_IF_ERROR(MakeDirs(ours));
  AF_RETURN_IF_ERROR(WriteFile(freezer + "/cgroup.procs", std::to_string(pid)));
  layout_.dirs.push_back(freezer);
  layout_.kill_dir = freezer;
  // systemd has no swap limit on v1; it does not manage memsw, so it is ours to write.
  if (limits_.memory_bytes) {
    (void)WriteFile(layout_.memory_dir + "/memory.memsw.limit_in_bytes",
                    std::to_string(limits_.memory_bytes));
  }
  return OkStatus();
}

uint64_t Cgroup::OomKills() const {
  if (layout_.memory_dir.empty()) return 0;
  std::string file =
      layout_.memory_dir +
      (layout_.version == CgroupVersion::kV2 ? "/memory.events" : "/memory.oom_control");
  auto c = ReadFile(file);
  return c.ok() ? ParseOomKillCount(*c) : 0;
}

std::vector<int> Cgroup::Pids() const {
  if (layout_.kill_dir.empty()) return {};
  return ReadPids(layout_.kill_dir);
}

Status Cgroup::Kill(std::chrono::milliseconds timeout) const {
  if (layout_.kill_dir.empty() || !Exists(layout_.kill_dir)) return OkStatus();
  const auto deadline = Clock::now() + timeout;
  return layout_.version == CgroupVersion::kV2 ? KillV2(deadline) : KillV1(deadline);
}

Status Cgroup::KillV2(Clock::time_point deadline) const {
  // cgroup.kill (Linux 5.14): the kernel SIGKILLs every member and every process forked while it
  // does so, atomically: a fork bomb cannot outrun it.
  const std::string& dir = layout_.kill_dir;
  auto populated = [&] {
    auto events = ReadFile(dir + "/cgroup.events");
    return events.ok() && events->find("populated 0") == std::string::npos;
  };
  if (!populated()) return OkStatus();  // the usual stop: the agent ended everything already
  Status st = WriteFile(dir + "/cgroup.kill", "1");
  if (!st.ok()) return st;
  // Empty once "populated 0": the dying tasks have been released (reaped), not only signalled.
  bool empty = WaitUntil(deadline, [&] { return !populated(); });
  if (!empty) {
    return Error(ErrorCode::kDeadlineExceeded,
                 "cgroup " + dir + " still populated after cgroup.kill: " +
                     std::to_string(ReadPids(dir).size()) + " processes");
  }
  return OkStatus();
}

Status Cgroup::KillV1(Clock::time_point deadline) const {
  // The v1 freezer: once FROZEN nothing in the group runs, so nothing forks while we signal,
  // and the member list we read is complete and stable. SIGKILL to a frozen task takes effect
  // when it thaws.
  const std::string& dir = layout_.kill_dir;
  const std::string state = dir + "/freezer.state";
  if (ReadPids(dir).empty()) return OkStatus();  // the usual stop: nothing left to freeze
  for (;;) {
    Status st = WriteFile(state, "FROZEN");
    if (!st.ok()) return st;
    // FREEZING lasts while a task sits in an uninterruptible wait (a FUSE request, say): signal
    // what we have after a moment; the next round takes whatever a straggler forked.
    auto round_end = std::min(deadline, Clock::now() + std::chrono::milliseconds(200));
    WaitUntil(round_end, [&] {
      auto s = ReadFile(state);
      return !s.ok() || s->rfind("FROZEN", 0) == 0;
    });
    for (int pid : ReadPids(dir)) ::kill(pid, SIGKILL);
    st = WriteFile(state, "THAWED");
    if (!st.ok()) return st;
    round_end = std::min(deadline, Clock::now() + std::chrono::milliseconds(500));
    if (WaitUntil(round_end, [&] { return ReadPids(dir).empty(); })) return OkStatus();
    if (Clock::now() >= deadline) break;
  }
  return Error(ErrorCode::kDeadlineExceeded,
               "cgroup " + dir + " not empty after freeze and kill: " +
                   std::to_string(ReadPids(dir).size()) + " processes");
}

Status Cgroup::Remove() {
  if (removed_) return OkStatus();
  removed_ = true;
  Status result = Kill();
  if (scope_started_) {
    // Stopping the (now empty) scope makes systemd remove its directories and forget the unit.
    Status st = StopUnit(ScopeUnitName(sandbox_id_), options_.systemd_bus);
    if (!st.ok() && result.ok()) result = st;
    for (const auto& dir : layout_.dirs) {
      if (std::find(created_.begin(), created_.end(), dir) != created_.end()) continue;
      if (!WaitUntil(Clock::now() + std::chrono::seconds(5), [&] { return !Exists(dir); }) &&
          result.ok()) {
        result = Error(ErrorCode::kDeadlineExceeded, "systemd left the scope's cgroup " + dir);
      }
    }
  }
  for (auto it = created_.rbegin(); it != created_.rend(); ++it) {
    // rmdir fails with EBUSY until the last killed task has been released by its parent.
    const std::string& dir = *it;
    int err = 0;
    bool gone = WaitUntil(Clock::now() + std::chrono::seconds(2), [&] {
      if (::rmdir(dir.c_str()) == 0 || errno == ENOENT) return true;
      err = errno;
      return false;
    });
    if (!gone && result.ok()) result = Error::FromErrno(err, "rmdir cgroup " + dir);
  }
  return result;
}

}  // namespace agentfense::runtime
