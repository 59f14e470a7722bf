#include "fs/mount.h"

#include <sys/mount.h>
#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <fstream>
#include <sstream>
#include <vector>

#include "base/log.h"

namespace agentfense::fs {
namespace {

// mountinfo escapes ' ', '\t', '\n' and '\\' as \ooo.
std::string UnescapeMountinfo(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 3 < s.size()) {
      out += static_cast<char>(((s[i + 1] - '0') << 6) | ((s[i + 2] - '0') << 3) | (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace

bool IsFuseMountPoint(const std::string& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string id, parent, devno, root, mnt;
    ls >> id >> parent >> devno >> root >> mnt;
    if (UnescapeMountinfo(mnt) != path) continue;
    size_t sep = line.find(" - ");
    if (sep == std::string::npos) continue;
    std::istringstream rest(line.substr(sep + 3));
    std::string fstype;
    rest >> fstype;
    if (fstype.rfind("fuse", 0) == 0) return true;
  }
  return false;
}

Status CleanupStaleMount(const std::string& mountpoint, bool force) {
  if (!IsFuseMountPoint(mountpoint)) return OkStatus();
  struct stat st;
  bool dead = ::stat(mountpoint.c_str(), &st) != 0 && errno == ENOTCONN;
  if (!dead && !force) return OkStatus();
  if (::umount2(mountpoint.c_str(), MNT_DETACH) != 0) {
    return Error::FromErrno(errno, "umount2 " + mountpoint);
  }
  AF_LOG_INFO("removed stale FUSE mount at {}", mountpoint);
  return OkStatus();
}

Result<std::unique_ptr<Mount>> Mount::Start(const std::string& source, const std::string& mountpoint,
                                            policy::Policy policy, FsOptions options,
                                            bool allow_other) {
  std::unique_ptr<Mount> m(new Mount());
  m->mountpoint_ = mountpoint;
  AF_ASSIGN_OR_RETURN(m->fs_, PermFs::Create(source, std::move(policy), std::move(options)));
  // Never default_permissions: the kernel would then check mode bits against cached attributes,
  // which root in a container bypasses; every decision is the daemon's.
  std::string opts = "fsname=agentfense,subtype=agentfense,nosuid,nodev";
  if (allow_other) opts += ",allow_other";
  std::vector<std::string> store = {"agentfense", "-o", opts};
  std::vector<char*> argv;
  for (auto& s : store) argv.push_back(s.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  const fuse_lowlevel_ops& ops = PermFs::Ops();
  m->session_ = fuse_session_new(&args, &ops, sizeof(ops), m->fs_.get());
  fuse_opt_free_args(&args);
  if (m->session_ == nullptr) return Error(ErrorCode::kInternal, "fuse_session_new failed");
  if (fuse_session_mount(m->session_, mountpoint.c_str()) != 0) {
    fuse_session_destroy(m->session_);
    m->session_ = nullptr;
    return Error(ErrorCode::kInternal, "fuse_session_mount failed at " + mountpoint);
  }
  m->mounted_ = true;
  m->fs_->AttachSession(m->session_);
  m->loop_ = std::thread([mp = m.get()] { mp->Serve(); });
  return m;
}

void Mount::Serve() {
  int threads = fs_->options().threads;
  if (threads <= 1) {
    fuse_session_loop(session_);
  } else {
    fuse_loop_config cfg{};
    cfg.clone_fd = 0;
    cfg.max_idle_threads = static_cast<unsigned>(threads);
    fuse_session_loop_mt(session_, &cfg);
  }
  std::lock_guard lock(mu_);
  loop_done_ = true;
  cv_.notify_all();
}

void Mount::Wait() {
  std::unique_lock lock(mu_);
  cv_.wait(lock, [this] { return loop_done_; });
}

void Mount::Unmount() {
  if (session_ == nullptr) return;
  if (mounted_) {
    mounted_ = false;
    fs_->AttachSession(nullptr);
    fuse_session_exit(session_);
    // As root libfuse detaches (umount2 MNT_DETACH): files still open keep working until closed;
    // the loop ends once the kernel tears the connection down.
    fuse_session_unmount(session_);
  }
  bool done;
  {
    std::unique_lock lock(mu_);
    done = cv_.wait_for(lock, std::chrono::seconds(10), [this] { return loop_done_; });
  }
  if (!done) {
    // Someone still holds the detached mount open. Destroying the session under a running loop
    // would be a use-after-free: leak it instead, loudly.
    AF_LOG_ERROR("FUSE loop for {} still busy after unmount; leaking the session", mountpoint_);
    loop_.detach();
    (void)fs_.release();
    session_ = nullptr;
    return;
  }
  loop_.join();
  fuse_session_destroy(session_);
  session_ = nullptr;
}

Mount::~Mount() { Unmount(); }

}  // namespace agentfense::fs
