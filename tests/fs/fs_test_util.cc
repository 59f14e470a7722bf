#include "fs_test_util.h"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace agentfense::fs::testing {

std::string FuseUnavailable() {
  if (::geteuid() != 0) return "not root";
  if (::access("/dev/fuse", R_OK | W_OK) != 0) return "/dev/fuse not accessible";
  return "";
}

TempDir::TempDir() {
  char tmpl[] = "/tmp/affs.XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) std::abort();
  path_ = tmpl;
}

TempDir::~TempDir() { RemoveTree(path_); }

namespace {

// Empties the directory `fd` (taken) fd-relative, so any depth works (nftw builds whole path
// strings and stops at PATH_MAX); never descends into another filesystem.
void RemoveContents(int fd, dev_t dev) {
  DIR* dp = ::fdopendir(fd);
  if (dp == nullptr) {
    ::close(fd);
    return;
  }
  std::vector<std::string> names;
  while (dirent* de = ::readdir(dp)) {
    if (std::strcmp(de->d_name, ".") != 0 && std::strcmp(de->d_name, "..") != 0) {
      names.emplace_back(de->d_name);
    }
  }
  for (const auto& n : names) {
    struct stat st;
    if (::fstatat(::dirfd(dp), n.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      if (st.st_dev != dev) continue;  // a mount left behind: never crossed
      int sub = ::openat(::dirfd(dp), n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (sub >= 0) RemoveContents(sub, dev);
      (void)::unlinkat(::dirfd(dp), n.c_str(), AT_REMOVEDIR);
    } else {
      (void)::unlinkat(::dirfd(dp), n.c_str(), 0);
    }
  }
  ::closedir(dp);
}

}  // namespace

void RemoveTree(const std::string& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) return;
  if (!S_ISDIR(st.st_mode)) {
    (void)::unlink(path.c_str());
    return;
  }
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd >= 0) RemoveContents(fd, st.st_dev);
  (void)::rmdir(path.c_str());
}

void WriteFile(const std::string& path, std::string_view content, mode_t mode) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  ASSERT_GE(fd, 0) << path << ": " << std::strerror(errno);
  ASSERT_EQ(::write(fd, content.data(), content.size()), static_cast<ssize_t>(content.size()));
  ::close(fd);
}

std::optional<std::string> ReadFile(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0) {
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

policy::Policy MakePolicy(const std::vector<std::string>& specs) {
  std::vector<policy::Rule> rules;
  for (const auto& s : specs) {
    auto r = policy::ParseRuleSpec(s);
    if (!r.ok()) {
      ADD_FAILURE() << "bad rule " << s << ": " << r.error().ToString();
      continue;
    }
    rules.push_back(*r);
  }
  auto p = policy::Policy::Compile(std::move(rules));
  if (!p.ok()) {
    ADD_FAILURE() << p.error().ToString();
    return std::move(*policy::Policy::Compile({}));
  }
  return std::move(*p);
}

policy::Policy PresetPolicy(std::string_view name) {
  auto rules = policy::PresetRules(name);
  EXPECT_TRUE(rules.ok());
  return std::move(*policy::Policy::Compile(std::move(*rules)));
}

int RunAs(uid_t id, const std::function<int()>& op) {
  pid_t pid = ::fork();
  if (pid == 0) {
    if (::setgroups(0, nullptr) != 0 || ::setresgid(id, id, id) != 0 ||
        ::setresuid(id, id, id) != 0) {
      ::_exit(250);
    }
    ::_exit(op());
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 251;
}

int RunAsThread(uid_t id, const std::function<int()>& op) {
  int result = 250;
  std::thread t([&] {
    if (::syscall(SYS_setgroups, 0, nullptr) != 0 || ::syscall(SYS_setresgid, id, id, id) != 0 ||
        ::syscall(SYS_setresuid, id, id, id) != 0) {
      return;
    }
    result = op();
  });
  t.join();
  return result;
}

size_t AuditLog::Count(std::string_view op) {
  std::lock_guard lock(mu);
  size_t n = 0;
  for (const auto& e : events) n += e.op == op;
  return n;
}

std::unique_ptr<MountedFs> MountedFs::Start(policy::Policy policy, FsOptions options,
                                            const MountAccess& access) {
  auto dir = std::make_unique<TempDir>();
  std::string src = *dir / "src";
  if (::mkdir(src.c_str(), 0755) != 0) return nullptr;
  auto m = StartOn(src, std::move(policy), std::move(options), access);
  if (m) m->dir_ = std::move(dir);
  return m;
}

std::unique_ptr<MountedFs> MountedFs::StartOn(const std::string& source, policy::Policy policy,
                                              FsOptions options, const MountAccess& access) {
  std::unique_ptr<MountedFs> m(new MountedFs());
  m->source_ = source;
  char tmpl[] = "/tmp/affs-mnt.XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) return nullptr;
  m->mountpoint_ = tmpl;
  if (const char* t = std::getenv("AF_FS_TEST_THREADS")) options.threads = std::atoi(t);
  // AF_FS_TEST_DELTA=1 runs every suite on a delta-backed mount (docs/DELTA.md), committing
  // nothing: tests that look at the source directly are filtered out in CMakeLists.txt.
  if (const char* d = std::getenv("AF_FS_TEST_DELTA"); d != nullptr && options.delta_dir.empty() &&
                                                       std::string(d) == "1") {
    options.delta_dir = m->mountpoint_ + ".delta";
    m->delta_dir_ = options.delta_dir;
  }
  auto log = m->audit_;
  auto user_sink = options.audit;
  options.audit = [log, user_sink](const AuditEvent& e) {
    std::lock_guard lock(log->mu);
    log->events.push_back(e);
    if (user_sink) user_sink(e);
  };
  auto mount =
      Mount::Start(source, m->mountpoint_, std::move(policy), std::move(options), access);
  if (!mount.ok()) {
    ADD_FAILURE() << "mount failed: " << mount.error().ToString();
    ::rmdir(m->mountpoint_.c_str());
    return nullptr;
  }
  m->mount_ = std::move(*mount);
  return m;
}

MountedFs::~MountedFs() {
  mount_.reset();
  (void)CleanupStaleMount(mountpoint_, /*force=*/true);  // belt and braces: never leave a mount
  ::rmdir(mountpoint_.c_str());
  if (!delta_dir_.empty()) RemoveTree(delta_dir_);
}

std::string MountedFs::src(std::string_view rel) const {
  return rel.empty() ? source_ : source_ + "/" + std::string(rel);
}
std::string MountedFs::mnt(std::string_view rel) const {
  return rel.empty() ? mountpoint_ : mountpoint_ + "/" + std::string(rel);
}

namespace {

bool Contains(std::string_view hay, std::string_view needle) {
  return hay.find(needle) != std::string_view::npos;
}

bool ScanXattrs(const std::string& p, std::string_view needle) {
  char names[65536];
  ssize_t len = ::llistxattr(p.c_str(), names, sizeof(names));
  for (ssize_t i = 0; i < len;) {
    std::string nm(names + i);
    if (Contains(nm, needle)) return true;
    char val[65536];
    ssize_t vl = ::lgetxattr(p.c_str(), nm.c_str(), val, sizeof(val));
    if (vl > 0 && Contains(std::string_view(val, static_cast<size_t>(vl)), needle)) return true;
    i += static_cast<ssize_t>(nm.size()) + 1;
  }
  return false;
}

}  // namespace

std::map<std::string, std::string> Snapshot(const std::string& root) {
  std::map<std::string, std::string> out;
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(root, ec);
       it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;
    const std::string p = it->path().string();
    struct stat st;
    if (::lstat(p.c_str(), &st) != 0) continue;
    char mode[16];
    std::snprintf(mode, sizeof(mode), "%o", st.st_mode & 07777);
    std::string v;
    if (S_ISDIR(st.st_mode)) {
      v = std::string("dir ") + mode;
    } else if (S_ISLNK(st.st_mode)) {
      char buf[4096];
      ssize_t n = ::readlink(p.c_str(), buf, sizeof(buf));
      v = "link " + std::string(buf, static_cast<size_t>(std::max<ssize_t>(n, 0)));
    } else if (S_ISREG(st.st_mode)) {
      v = std::string("file ") + mode + " " + ReadFile(p).value_or("<unreadable>");
    } else {
      v = std::string("special ") + mode;
    }
    out[p.substr(root.size())] = v;
  }
  return out;
}

bool Listed(const std::string& dir, const std::string& name) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return false;
  bool found = false;
  while (dirent* de = ::readdir(d)) found = found || name == de->d_name;
  ::closedir(d);
  return found;
}

bool TreeContains(const std::string& root, std::string_view needle) {
  DIR* d = ::opendir(root.c_str());
  if (d == nullptr) return false;
  bool found = false;
  while (dirent* de = ::readdir(d)) {
    std::string name = de->d_name;
    if (name == "." || name == "..") continue;
    if (Contains(name, needle)) found = true;
    std::string p = root + "/" + name;
    struct stat st;
    if (::lstat(p.c_str(), &st) != 0) continue;
    if (ScanXattrs(p, needle)) found = true;
    if (S_ISDIR(st.st_mode)) {
      found = TreeContains(p, needle) || found;
    } else if (S_ISLNK(st.st_mode)) {
      char buf[4096];
      ssize_t n = ::readlink(p.c_str(), buf, sizeof(buf));
      if (n > 0 && Contains(std::string_view(buf, static_cast<size_t>(n)), needle)) found = true;
    } else if (S_ISREG(st.st_mode)) {
      auto c = ReadFile(p);
      if (c && Contains(*c, needle)) found = true;
    }
  }
  ::closedir(d);
  return found;
}

}  // namespace agentfense::fs::testing
