// Level matrix: every operation × level (none/view/read/write) × object type (file, directory,
// symlink) → the result SPEC §3.5 prescribes, generated from one table. Each cell gets a fresh
// object named "<n>.<level>"; the rules give the suffix its level.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "fs_test_util.h"

namespace agentfense::fs::testing {
namespace {

enum Type { kFile = 0, kDir = 1, kLink = 2 };
const char* const kTypeName[] = {"file", "dir", "symlink"};
const char* const kLevelName[] = {"none", "view", "read", "write"};
constexpr int kOk = 0;

struct Cell {
  std::string obj;      // mount path of the object (or of the fresh name)
  std::string name;     // its base name
  std::string dir;      // mount path of its directory
  std::string target;   // a writable regular file next to it
  std::string fresh;    // a fresh writable name next to it
};

struct Row {
  const char* op;
  std::vector<Type> types;
  bool fresh_name;   // the object must NOT exist (creation ops): the level is the new name's
  int expect[4];     // none, view, read, write
  std::function<int(const Cell&)> run;
};

int E(long r) { return r < 0 ? errno : 0; }

int OpenClose(const std::string& p, int flags) {
  int fd = ::open(p.c_str(), flags | O_CLOEXEC, 0644);
  if (fd < 0) return errno;
  ::close(fd);
  return 0;
}

std::vector<Row> Table() {
  const int N = ENOENT, A = EACCES, P = EPERM;
  return {
      {"lstat", {kFile, kDir, kLink}, false, {N, kOk, kOk, kOk},
       [](const Cell& c) { struct stat st; return E(::lstat(c.obj.c_str(), &st)); }},
      {"listed in readdir", {kFile, kDir, kLink}, false, {N, kOk, kOk, kOk},
       [](const Cell& c) {
         DIR* d = ::opendir(c.dir.c_str());
         int r = N;
         while (dirent* de = ::readdir(d)) if (c.name == de->d_name) r = 0;
         ::closedir(d);
         return r;
       }},
      {"open O_RDONLY", {kFile}, false, {N, A, kOk, kOk},
       [](const Cell& c) { return OpenClose(c.obj, O_RDONLY); }},
      {"opendir", {kDir}, false, {N, kOk, kOk, kOk},
       [](const Cell& c) { return OpenClose(c.obj, O_RDONLY | O_DIRECTORY); }},
      {"open O_WRONLY", {kFile}, false, {N, A, A, kOk},
       [](const Cell& c) { return OpenClose(c.obj, O_WRONLY); }},
      {"open O_RDWR", {kFile}, false, {N, A, A, kOk},
       [](const Cell& c) { return OpenClose(c.obj, O_RDWR); }},
      {"open O_RDONLY|O_TRUNC", {kFile}, false, {N, A, A, kOk},
       [](const Cell& c) { return OpenClose(c.obj, O_RDONLY | O_TRUNC); }},
      {"open O_RDONLY|O_APPEND", {kFile}, false, {N, A, A, kOk},
       [](const Cell& c) { return OpenClose(c.obj, O_RDONLY | O_APPEND); }},
      // O_CREAT on an existing visible file is a plain open (the kernel strips it); on a hidden
      // name the kernel asks to create, which is refused like any create at a `none` name.
      {"open O_RDONLY|O_CREAT (exists)", {kFile}, false, {A, A, kOk, kOk},
       [](const Cell& c) { return OpenClose(c.obj, O_RDONLY | O_CREAT); }},
      {"truncate", {kFile}, false, {N, A, A, kOk},
       [](const Cell& c) { return E(::truncate(c.obj.c_str(), 0)); }},
      {"chmod", {kFile, kDir}, false, {N, A, A, kOk},
       [](const Cell& c) { return E(::chmod(c.obj.c_str(), 0700)); }},
      {"lchown", {kFile, kDir, kLink}, false, {N, P, P, P},
       [](const Cell& c) { return E(::lchown(c.obj.c_str(), 0, 0)); }},
      {"utimensat nofollow", {kFile, kDir, kLink}, false, {N, A, A, kOk},
       [](const Cell& c) { return E(::utimensat(AT_FDCWD, c.obj.c_str(), nullptr, AT_SYMLINK_NOFOLLOW)); }},
      {"setxattr user.*", {kFile, kDir}, false, {N, A, A, kOk},
       [](const Cell& c) { return E(::lsetxattr(c.obj.c_str(), "user.t", "1", 1, 0)); }},
      {"setxattr trusted.*", {kFile, kDir}, false, {N, P, P, P},
       [](const Cell& c) { return E(::lsetxattr(c.obj.c_str(), "trusted.t", "1", 1, 0)); }},
      {"getxattr user.* (absent)", {kFile, kDir}, false, {N, A, ENODATA, ENODATA},
       [](const Cell& c) { char b[8]; return E(::lgetxattr(c.obj.c_str(), "user.t", b, sizeof(b))); }},
      // Only user.* exists: other namespaces are "not supported" at every visible level, so
      // ls -l stops probing ACLs and SELinux labels per file (docs/FILESYSTEM.md).
      {"getxattr system.posix_acl_access", {kFile, kDir, kLink}, false,
       {N, EOPNOTSUPP, EOPNOTSUPP, EOPNOTSUPP},
       [](const Cell& c) { char b[8]; return E(::lgetxattr(c.obj.c_str(), "system.posix_acl_access", b, sizeof(b))); }},
      {"getxattr security.selinux", {kFile, kDir, kLink}, false,
       {N, EOPNOTSUPP, EOPNOTSUPP, EOPNOTSUPP},
       [](const Cell& c) { char b[8]; return E(::lgetxattr(c.obj.c_str(), "security.selinux", b, sizeof(b))); }},
      {"readlink", {kLink}, false, {N, A, kOk, kOk},
       [](const Cell& c) { char b[64]; return E(::readlink(c.obj.c_str(), b, sizeof(b))); }},
      {"access R_OK", {kFile}, false, {N, A, kOk, kOk},
       [](const Cell& c) { return E(::access(c.obj.c_str(), R_OK)); }},
      {"access R_OK|X_OK dir", {kDir}, false, {N, kOk, kOk, kOk},
       [](const Cell& c) { return E(::access(c.obj.c_str(), R_OK | X_OK)); }},
      {"access W_OK", {kFile, kDir}, false, {N, A, A, kOk},
       [](const Cell& c) { return E(::access(c.obj.c_str(), W_OK)); }},
      {"unlink", {kFile, kLink}, false, {N, A, A, kOk},
       [](const Cell& c) { return E(::unlink(c.obj.c_str())); }},
      {"rmdir (empty)", {kDir}, false, {N, A, A, kOk},
       [](const Cell& c) { return E(::rmdir(c.obj.c_str())); }},
      {"rename to a write name", {kFile, kLink}, false, {N, A, A, kOk},
       [](const Cell& c) { return E(::rename(c.obj.c_str(), c.fresh.c_str())); }},
      // A directory's subtree could hold names the `**/*.none` rule hides: EXDEV even at write.
      {"rename dir", {kDir}, false, {N, A, A, EXDEV},
       [](const Cell& c) { return E(::rename(c.obj.c_str(), c.fresh.c_str())); }},
      {"link from it", {kFile}, false, {N, A, A, kOk},
       [](const Cell& c) { return E(::link(c.obj.c_str(), c.fresh.c_str())); }},
      // Creation at a name of each level (the name does not exist).
      {"create", {kFile}, true, {A, A, A, kOk},
       [](const Cell& c) { return OpenClose(c.obj, O_WRONLY | O_CREAT | O_EXCL); }},
      {"mkdir", {kDir}, true, {A, A, A, kOk},
       [](const Cell& c) { return E(::mkdir(c.obj.c_str(), 0755)); }},
      {"mkfifo", {kFile}, true, {A, A, A, kOk},
       [](const Cell& c) { return E(::mkfifo(c.obj.c_str(), 0600)); }},
      {"symlink", {kLink}, true, {A, A, A, kOk},
       [](const Cell& c) { return E(::symlink("x", c.obj.c_str())); }},
      {"link to it", {kFile}, true, {A, A, A, kOk},
       [](const Cell& c) { return E(::link(c.target.c_str(), c.obj.c_str())); }},
      {"rename onto it", {kFile}, true, {A, A, A, kOk},
       [](const Cell& c) {
         WriteFile(c.fresh, "x");  // fresh is a write name; move it to the level-L name
         return E(::rename(c.fresh.c_str(), c.obj.c_str()));
       }},
  };
}

TEST(LevelMatrix, EveryOperationEveryLevelEveryType) {
  AF_REQUIRE_FUSE();
  auto m = MountedFs::Start(MakePolicy({"/m/**=write", "**/*.none=none@20", "**/*.view=view@10",
                                        "**/*.read=read@10", "**/*.write=write@10"}));
  ASSERT_NE(m, nullptr);
  ASSERT_EQ(::mkdir(m->src("m").c_str(), 0755), 0);
  WriteFile(m->src("m/target.write"), "T");
  int n = 0, cells = 0;
  for (const Row& row : Table()) {
    for (Type type : row.types) {
      for (int lv = 0; lv < 4; ++lv) {
        std::string name = "o" + std::to_string(n) + "." + kLevelName[lv];
        std::string fresh = "w" + std::to_string(n) + ".write";
        ++n;
        if (!row.fresh_name) {
          std::string s = m->src("m/" + name);
          if (type == kFile) WriteFile(s, "content");
          if (type == kDir) {
            ASSERT_EQ(::mkdir(s.c_str(), 0755), 0);
          }
          if (type == kLink) {
            ASSERT_EQ(::symlink("target.write", s.c_str()), 0);
          }
        }
        Cell c{m->mnt("m/" + name), name, m->mnt("m"), m->mnt("m/target.write"),
               m->mnt("m/" + fresh)};
        errno = 0;
        int got = row.run(c);
        ++cells;
        EXPECT_EQ(got, row.expect[lv])
            << row.op << " on " << kTypeName[type] << " at level " << kLevelName[lv] << ": got "
            << (got ? strerrorname_np(got) : "0") << ", want "
            << (row.expect[lv] ? strerrorname_np(row.expect[lv]) : "0");
      }
    }
  }
  RecordProperty("cells", cells);
  // Denials were audited (at least the open/lookup ones).
  EXPECT_GT(m->audit().Count("open"), 0u);
  EXPECT_GT(m->audit().Count("create"), 0u);
}

}  // namespace
}  // namespace agentfense::fs::testing
