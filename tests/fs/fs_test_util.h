// Shared helpers of the real-mount filesystem tests.
#pragma once

#include <gtest/gtest.h>
#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "capability.h"
#include "fs/mount.h"
#include "fs/perm_fs.h"
#include "policy/policy.h"

namespace agentfense::fs::testing {

// Empty when mounts can be made here; otherwise why not (tests then skip loudly, or fail in CI).
std::string FuseUnavailable();

#define AF_REQUIRE_FUSE()                                   \
  AF_REQUIRE_CAPABILITY(                                    \
      ::agentfense::fs::testing::FuseUnavailable().empty(), \
      "needs a real FUSE mount: " + ::agentfense::fs::testing::FuseUnavailable())

// A fresh directory under /tmp, removed (without crossing mounts) on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string operator/(std::string_view rel) const { return path_ + "/" + std::string(rel); }

 private:
  std::string path_;
};

// Recursive removal that never crosses into another filesystem (a leftover mount).
void RemoveTree(const std::string& path);

void WriteFile(const std::string& path, std::string_view content, mode_t mode = 0644);
std::optional<std::string> ReadFile(const std::string& path);

policy::Policy MakePolicy(const std::vector<std::string>& specs);
policy::Policy PresetPolicy(std::string_view name);

// Records audit events delivered by the filesystem.
struct AuditLog {
  std::mutex mu;
  std::vector<AuditEvent> events;
  size_t Count(std::string_view op);
};

// A source tree and a live mount of it, in-process (the session loop runs on a thread). The
// destructor unmounts (lazily) and removes everything.
class MountedFs {
 public:
  // `access`: whom the mount serves (default: this process's own identity).
  static std::unique_ptr<MountedFs> Start(policy::Policy policy, FsOptions options = {},
                                          const MountAccess& access = MountAccess::Self());
  // Mounts an existing source directory (not removed afterwards).
  static std::unique_ptr<MountedFs> StartOn(const std::string& source, policy::Policy policy,
                                            FsOptions options = {},
                                            const MountAccess& access = MountAccess::Self());
  ~MountedFs();

  // Creates files in the *source* before or after mounting (host side).
  std::string src(std::string_view rel = "") const;
  std::string mnt(std::string_view rel = "") const;
  PermFs& fs() { return mount_->fs(); }
  Mount& mount() { return *mount_; }
  AuditLog& audit() { return *audit_; }
  // Unmounts now (the destructor is then a no-op for the mount).
  void Unmount() { mount_.reset(); }

 private:
  MountedFs() = default;
  std::unique_ptr<TempDir> dir_;
  std::string source_;
  std::string mountpoint_;
  std::string delta_dir_;  // AF_FS_TEST_DELTA only
  std::shared_ptr<AuditLog> audit_ = std::make_shared<AuditLog>();
  std::unique_ptr<Mount> mount_;
};

// True when `needle` occurs in any file content, symlink target, xattr value or name reachable
// under `root` through the mount (without following symlinks).
bool TreeContains(const std::string& root, std::string_view needle);

// path (below `root`) -> "type mode content|target" of everything under `root`, no symlink
// followed ("dir 755", "file 644 <content>", "link <target>", "special 644"): two trees compare
// equal when they hold the same names, types, modes, contents and targets.
std::map<std::string, std::string> Snapshot(const std::string& root);

// True when a listing of `dir` (opendir/readdir through whatever serves it) shows `name`.
bool Listed(const std::string& dir, const std::string& name);

// Runs `op` as uid/gid `id` in a forked child; returns what it returns (an errno; 0 = success),
// 250 when the identity could not be taken.
int RunAs(uid_t id, const std::function<int()>& op);
// The same on a thread of this process that alone takes the identity (raw setresuid/setresgid/
// setgroups act per thread; glibc's wrappers would switch every thread, the FUSE daemon's too):
// descriptors it opens stay usable by the next call, which is what descriptor tests need.
int RunAsThread(uid_t id, const std::function<int()>& op);

// errno of a call that returned -1, or 0 on success.
inline int Err(long r) { return r < 0 ? errno : 0; }

}  // namespace agentfense::fs::testing
