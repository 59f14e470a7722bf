// What repeat work costs in FUSE requests (PERFORMANCE-NOTES: one request is 30–60 µs here). These
// budgets are the performance levers of docs/FILESYSTEM.md written as assertions, so a change that
// puts a round trip back on a hot path fails a test instead of only a benchmark.
#include <dirent.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "fs_test_util.h"

namespace agentfense::fs::testing {
namespace {

std::map<std::string, uint64_t> Counts(PermFs& fs) {
  std::map<std::string, uint64_t> out;
  for (const auto& [kind, n] : fs.RequestCounts()) out[kind] = n;
  return out;
}

uint64_t Delta(const std::map<std::string, uint64_t>& before,
               const std::map<std::string, uint64_t>& after, const std::string& kind) {
  auto b = before.find(kind);
  auto a = after.find(kind);
  return (a == after.end() ? 0 : a->second) - (b == before.end() ? 0 : b->second);
}

size_t ListCount(const std::string& dir) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return 0;
  size_t n = 0;
  while (::readdir(d) != nullptr) ++n;
  ::closedir(d);
  return n;
}

TEST(RequestBudget, DirectoriesOpenAndCloseWithoutRoundTrips) {
  AF_REQUIRE_FUSE();
  auto m = MountedFs::Start(PresetPolicy("agent-safe"));
  ASSERT_NE(m, nullptr);
  for (int i = 0; i < 40; ++i) {
    const std::string d = m->src("d" + std::to_string(i));
    ASSERT_EQ(::mkdir(d.c_str(), 0755), 0);
    WriteFile(d + "/f.txt", "x");
  }
  for (int i = 0; i < 40; ++i) ASSERT_EQ(ListCount(m->mnt("d" + std::to_string(i))), 3u);
  auto before = Counts(m->fs());
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < 40; ++i) ASSERT_EQ(ListCount(m->mnt("d" + std::to_string(i))), 3u);
  }
  auto after = Counts(m->fs());
  // 120 opendir/readdir/closedir cycles of cached directories: answered by the kernel alone.
  EXPECT_EQ(Delta(before, after, "opendir"), 0u);
  EXPECT_EQ(Delta(before, after, "releasedir"), 0u);
  EXPECT_EQ(Delta(before, after, "readdir") + Delta(before, after, "readdirplus"), 0u);
  // At most one OPENDIR ever (the one answered ENOSYS), on kernels that support it.
  EXPECT_LE(after["opendir"], 1u);
}

// 96 directories of 8 files each, under the mount's source.
void MakeWideTree(MountedFs& m) {
  for (int i = 0; i < 96; ++i) {
    const std::string d = m.src("d" + std::to_string(i));
    ASSERT_EQ(::mkdir(d.c_str(), 0755), 0);
    for (int j = 0; j < 8; ++j) WriteFile(d + "/f" + std::to_string(j) + ".txt", "x");
  }
}

// Lists every directory beneath `dir` (what find -name does); with `stat`, lstat()s every entry
// right after its directory is read (find -printf '%s', ls -lR).
void Walk(const std::string& dir, bool stat) {
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return;
  std::vector<std::pair<std::string, bool>> entries;
  while (dirent* de = ::readdir(d)) {
    const std::string name = de->d_name;
    if (name == "." || name == "..") continue;
    std::string path = dir;
    path.append("/").append(name);
    entries.emplace_back(std::move(path), de->d_type == DT_DIR);
  }
  ::closedir(d);
  struct stat st;
  if (stat) {
    for (const auto& [path, is_dir] : entries) ASSERT_EQ(::lstat(path.c_str(), &st), 0) << path;
  }
  for (const auto& [path, is_dir] : entries) {
    if (is_dir) Walk(path, stat);
  }
}

// READDIRPLUS lists files with their attributes (a host lookup each) only while the walker uses
// them (FsOptions::ListingAttrs::kAdaptive): a find-style walk gets bare files after the first
// listings, so stat()ing them afterwards costs a LOOKUP each; a stat walk gets attributes, so its
// stats cost no LOOKUP but those of the sampled (bare) listings.
TEST(RequestBudget, ListingsCarryAttributesOnlyWhileTheWalkerUsesThem) {
  AF_REQUIRE_FUSE();
  constexpr uint64_t kFiles = 96 * 8;
  {
    auto m = MountedFs::Start(PresetPolicy("agent-safe"));
    ASSERT_NE(m, nullptr);
    MakeWideTree(*m);
    Walk(m->mnt(), /*stat=*/false);
    auto before = Counts(m->fs());
    Walk(m->mnt(), /*stat=*/true);
    const uint64_t lookups = Delta(before, Counts(m->fs()), "lookup");
    EXPECT_GE(lookups, kFiles * 3 / 4);  // all but the first 17 directories' files, here
    EXPECT_LE(lookups, kFiles);
  }
  {
    auto m = MountedFs::Start(PresetPolicy("agent-safe"));
    ASSERT_NE(m, nullptr);
    MakeWideTree(*m);
    auto before = Counts(m->fs());
    Walk(m->mnt(), /*stat=*/true);
    EXPECT_LE(Delta(before, Counts(m->fs()), "lookup"), kFiles / 8);
    // Warm: every entry is the kernel's now.
    before = Counts(m->fs());
    Walk(m->mnt(), /*stat=*/true);
    EXPECT_EQ(Delta(before, Counts(m->fs()), "lookup"), 0u);
  }
}

TEST(RequestBudget, UnsupportedXattrNamespacesAnswerNotSupported) {
  AF_REQUIRE_FUSE();
  auto m = MountedFs::Start(PresetPolicy("agent-safe"));
  ASSERT_NE(m, nullptr);
  WriteFile(m->src("a.txt"), "x");
  char buf[64];
  // ls -l probes these for every file; "not supported" lets it stop per device (coreutils caches
  // ENOTSUP by st_dev), where ENODATA made it ask again for each of thousands of files.
  for (const char* name : {"security.selinux", "system.posix_acl_access",
                           "system.posix_acl_default", "trusted.x", "security.capability"}) {
    EXPECT_EQ(Err(::lgetxattr(m->mnt("a.txt").c_str(), name, buf, sizeof(buf))), EOPNOTSUPP)
        << name;
  }
  // user.* still works as on a native filesystem.
  EXPECT_EQ(Err(::setxattr(m->mnt("a.txt").c_str(), "user.k", "v", 1, 0)), EACCES);  // read level
  ASSERT_EQ(::mkdir(m->src("output").c_str(), 0755), 0);
  WriteFile(m->src("output/w.txt"), "x");
  ASSERT_EQ(::setxattr(m->mnt("output/w.txt").c_str(), "user.k", "v", 1, 0), 0);
  EXPECT_EQ(::getxattr(m->mnt("output/w.txt").c_str(), "user.k", buf, sizeof(buf)), 1);
  EXPECT_EQ(Err(::getxattr(m->mnt("output/w.txt").c_str(), "user.none", buf, sizeof(buf))),
            ENODATA);
}

}  // namespace
}  // namespace agentfense::fs::testing
