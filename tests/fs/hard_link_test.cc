// Hard links (docs/FILESYSTEM.md, "Hard links"): a regular file with several names is decided by
// the most restrictive of all its names in the tree, hidden names included, and its link count
// shows only the names the sandbox can see. Every case also runs delta-backed
// (fs_system_test_on_delta).
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <initializer_list>
#include <string>
#include <thread>

#include "fs_test_util.h"

namespace agentfense::fs::testing {
namespace {

constexpr char kSecret[] = "CANARY-hardlink-5d1e0";

// dir/src with the given subdirectories: a source prepared before the mount.
std::string Source(const TempDir& dir, std::initializer_list<const char*> subdirs) {
  std::string src = dir / "src";
  ::mkdir(src.c_str(), 0755);
  for (const char* d : subdirs) ::mkdir((src + "/" + d).c_str(), 0755);
  return src;
}

nlink_t Links(const std::string& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0 ? st.st_nlink : 0;
}

// A source tree made before the mount: /secrets/key (the canary) and /public/key, a second name of
// it, among 200 other files of /public.
std::unique_ptr<MountedFs> MountPlanted(TempDir& dir, const std::vector<std::string>& rules) {
  std::string src = Source(dir, {"secrets", "public"});
  WriteFile(src + "/secrets/key", kSecret);
  if (::link((src + "/secrets/key").c_str(), (src + "/public/key").c_str()) != 0) return nullptr;
  for (int i = 0; i < 200; ++i) WriteFile(src + "/public/f" + std::to_string(i), "public");
  return MountedFs::StartOn(src, MakePolicy(rules));
}

TEST(HardLink, ExistingLinkOfAHiddenFileIsAsHiddenAsIt) {
  AF_REQUIRE_FUSE();
  TempDir dir;
  auto m = MountPlanted(dir, {"**/*=read", "/public/**=write@5", "/secrets/**=none@10"});
  ASSERT_NE(m, nullptr);
  struct stat st;
  // Through the visible name everything fails exactly as through the hidden one: absent.
  EXPECT_EQ(Err(::stat(m->mnt("public/key").c_str(), &st)), ENOENT);
  EXPECT_EQ(Err(::stat(m->mnt("secrets/key").c_str(), &st)), ENOENT);
  EXPECT_EQ(Err(::open(m->mnt("public/key").c_str(), O_RDONLY)), ENOENT);
  EXPECT_EQ(Err(::open(m->mnt("public/key").c_str(), O_WRONLY | O_TRUNC)), ENOENT);
  EXPECT_EQ(Err(::unlink(m->mnt("public/key").c_str())), ENOENT);
  EXPECT_FALSE(Listed(m->mnt("public"), "key"));
  EXPECT_TRUE(Listed(m->mnt("public"), "f199"));
  EXPECT_FALSE(TreeContains(m->mnt(), kSecret));
  EXPECT_EQ(ReadFile(m->src("secrets/key")).value_or(""), kSecret);
  EXPECT_GE(m->audit().Count("lookup"), 1u);
  LinkIndex::Stats s = m->fs().link_index_stats();
  EXPECT_TRUE(s.built);
  EXPECT_EQ(s.files, 1u);
  EXPECT_EQ(s.names, 2u);
}

// Position of `name` in the host's listing order of `dir` (the mount lists in that order).
int HostListingIndex(const std::string& dir, const std::string& name) {
  DIR* d = ::opendir(dir.c_str());
  int i = 0, found = -1;
  while (dirent* de = d ? ::readdir(d) : nullptr) {
    if (name == de->d_name) found = i;
    ++i;
  }
  if (d) ::closedir(d);
  return found;
}

// Only the first READDIR of a directory (offset 0) is a READDIRPLUS, whose entries are looked up;
// the later ones are plain: a hard link of a hidden file listed late must be left out there too.
TEST(HardLink, LinkOfAHiddenFileIsLeftOutOfPlainListings) {
  AF_REQUIRE_FUSE();
  TempDir dir;
  std::string src = Source(dir, {"secrets", "many"});
  WriteFile(src + "/secrets/key", kSecret);
  // A READDIR asks for as much as getdents does (32 KiB from glibc: about 190 entries with
  // attributes), so the name must come after that.
  for (int i = 0; i < 600; ++i) WriteFile(src + "/many/f" + std::to_string(i), "public");
  std::string name;
  for (int i = 0;; ++i) {  // a name the listing shows well after its first (READDIRPLUS) page
    name = "key" + std::to_string(i);
    ASSERT_EQ(::link((src + "/secrets/key").c_str(), (src + "/many/" + name).c_str()), 0);
    if (HostListingIndex(src + "/many", name) >= 450) break;
    ASSERT_EQ(::unlink((src + "/many/" + name).c_str()), 0);
  }
  auto m = MountedFs::StartOn(src, MakePolicy({"**/*=read", "/secrets/**=none@10"}));
  ASSERT_NE(m, nullptr);
  EXPECT_FALSE(Listed(m->mnt("many"), name));  // nothing in /many looked up before
  EXPECT_TRUE(Listed(m->mnt("many"), "f599"));
  struct stat st;
  EXPECT_EQ(Err(::stat(m->mnt("many/" + name).c_str(), &st)), ENOENT);
}

// Files listed bare (READDIRPLUS entries without attributes, FsOptions::ListingAttrs) show exactly
// what listings with attributes show: no hard link of a hidden file, no hidden name. A stat or
// open of a bare entry is a LOOKUP decided as usual, and a policy change reaches the listing the
// kernel cached.
TEST(HardLink, BareListingsShowWhatListingsShowAndFollowPolicyChanges) {
  AF_REQUIRE_FUSE();
  TempDir dir;
  std::string src = Source(dir, {"secrets", "public"});
  WriteFile(src + "/secrets/key", kSecret);
  ASSERT_EQ(::link((src + "/secrets/key").c_str(), (src + "/public/key").c_str()), 0);
  WriteFile(src + "/public/x.pem", kSecret);
  WriteFile(src + "/public/v.txt", "view");
  WriteFile(src + "/public/r.txt", "read");
  FsOptions options;
  options.listing_attrs = FsOptions::ListingAttrs::kNever;
  std::vector<std::string> rules = {"**/*=read", "/secrets/**=none@10", "/public/x.pem=none@10",
                                    "/public/v.txt=view@10"};
  auto m = MountedFs::StartOn(src, MakePolicy(rules), options);
  ASSERT_NE(m, nullptr);
  EXPECT_FALSE(Listed(m->mnt("public"), "key"));
  EXPECT_FALSE(Listed(m->mnt("public"), "x.pem"));
  EXPECT_TRUE(Listed(m->mnt("public"), "v.txt"));
  EXPECT_TRUE(Listed(m->mnt("public"), "r.txt"));
  EXPECT_FALSE(Listed(m->mnt(), "secrets"));
  struct stat st;
  EXPECT_EQ(Err(::stat(m->mnt("public/key").c_str(), &st)), ENOENT);
  EXPECT_EQ(Err(::open(m->mnt("public/v.txt").c_str(), O_RDONLY)), EACCES);
  EXPECT_EQ(ReadFile(m->mnt("public/r.txt")).value_or(""), "read");
  // The kernel holds the listing of /public now; a downgrade takes r.txt out of it at once.
  rules.emplace_back("/public/r.txt=none@10");
  m->fs().SetPolicy(MakePolicy(rules));
  EXPECT_FALSE(Listed(m->mnt("public"), "r.txt"));
  EXPECT_EQ(Err(::stat(m->mnt("public/r.txt").c_str(), &st)), ENOENT);
  EXPECT_TRUE(Listed(m->mnt("public"), "v.txt"));
  EXPECT_FALSE(TreeContains(m->mnt(), kSecret));
}

TEST(HardLink, LinkOfAViewFileIsViewOnlyAndCountsBothNames) {
  AF_REQUIRE_FUSE();
  TempDir dir;
  auto m = MountPlanted(dir, {"**/*=read", "/secrets/**=view@10"});
  ASSERT_NE(m, nullptr);
  // Opened first, before the kernel ever looked up the view name.
  EXPECT_EQ(Err(::open(m->mnt("public/key").c_str(), O_RDONLY)), EACCES);
  EXPECT_EQ(Links(m->mnt("public/key")), 2u);
  EXPECT_EQ(Links(m->mnt("secrets/key")), 2u);
  EXPECT_TRUE(Listed(m->mnt("public"), "key"));
  EXPECT_FALSE(TreeContains(m->mnt(), kSecret));
}

TEST(HardLink, LinksWithinOneAreaKeepTheirLevelAndTrueCount) {
  AF_REQUIRE_FUSE();
  TempDir dir;
  std::string src = Source(dir, {"a", "b"});
  WriteFile(src + "/a/f", "shared");
  ASSERT_EQ(::link((src + "/a/f").c_str(), (src + "/a/g").c_str()), 0);
  ASSERT_EQ(::link((src + "/a/f").c_str(), (src + "/b/h").c_str()), 0);
  // And a name outside the tree: the sandbox cannot see it, so it is not counted.
  ASSERT_EQ(::link((src + "/a/f").c_str(), (dir / "outside").c_str()), 0);
  auto m = MountedFs::StartOn(src, PresetPolicy("full-access"));
  ASSERT_NE(m, nullptr);
  for (const char* name : {"a/f", "a/g", "b/h"}) {
    EXPECT_EQ(ReadFile(m->mnt(name)).value_or(""), "shared") << name;
    EXPECT_EQ(Links(m->mnt(name)), 3u) << name;
  }
  struct stat f, h;
  ASSERT_EQ(::stat(m->mnt("a/f").c_str(), &f), 0);
  ASSERT_EQ(::stat(m->mnt("b/h").c_str(), &h), 0);
  EXPECT_EQ(f.st_ino, h.st_ino);
  // Links made and removed through the mount keep the count exact at once.
  ASSERT_EQ(::link(m->mnt("a/g").c_str(), m->mnt("b/i").c_str()), 0);
  EXPECT_EQ(Links(m->mnt("b/i")), m->fs().has_delta() ? 2u : 4u);  // delta: a copy-up's links
  ASSERT_EQ(::unlink(m->mnt("b/i").c_str()), 0);
  EXPECT_EQ(Err(::access(m->mnt("b/i").c_str(), F_OK)), ENOENT);
  ASSERT_EQ(::unlink(m->mnt("b/h").c_str()), 0);
  EXPECT_EQ(ReadFile(m->mnt("a/f")).value_or(""), "shared");
}

TEST(HardLink, RemovingANameThroughTheMountDropsItFromTheCount) {
  AF_REQUIRE_FUSE();
  TempDir dir;
  std::string src = Source(dir, {});
  WriteFile(src + "/a", "x");
  ASSERT_EQ(::link((src + "/a").c_str(), (src + "/b").c_str()), 0);
  auto m = MountedFs::StartOn(src, PresetPolicy("full-access"));
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(Links(m->mnt("a")), 2u);
  ASSERT_EQ(::unlink(m->mnt("b").c_str()), 0);
  EXPECT_EQ(Links(m->mnt("a")), 1u);  // delta: the source still has both; the sandbox sees one
}

// A link made on the host while mounted: noticed by its link count at the next open (and lookup,
// getattr), which walks the tree again.
TEST(HardLink, LinkMadeOutsideWhileMountedIsJudgedAtTheNextOpen) {
  AF_REQUIRE_FUSE();
  FsOptions opts;
  opts.link_rescan_interval = std::chrono::milliseconds(500);
  auto m = MountedFs::Start(MakePolicy({"**/*=read", "/secrets/**=none@10"}), opts);
  ASSERT_NE(m, nullptr);
  ::mkdir(m->src("secrets").c_str(), 0755);
  ::mkdir(m->src("public").c_str(), 0755);
  WriteFile(m->src("public/key"), kSecret);
  WriteFile(m->src("public/pair"), "pair");
  ASSERT_EQ(ReadFile(m->mnt("public/key")).value_or(""), kSecret);  // looked up, pages cached
  ASSERT_EQ(ReadFile(m->mnt("public/pair")).value_or(""), "pair");
  // Now the file becomes a second name of a secret: it is the secret from the next open on.
  ASSERT_EQ(::link(m->src("public/key").c_str(), m->src("secrets/key").c_str()), 0);
  EXPECT_EQ(Err(::open(m->mnt("public/key").c_str(), O_RDONLY)), ENOENT);
  const auto walked = std::chrono::steady_clock::now();
  // Another link right after that walk, between two visible names: the index cannot vouch for it
  // until the rescan interval has passed, so the file is treated as the policy's most restrictive
  // level (here `none`) meanwhile, then exactly.
  ASSERT_EQ(::link(m->src("public/pair").c_str(), m->src("public/pair2").c_str()), 0);
  const int conservative = Err(::open(m->mnt("public/pair").c_str(), O_RDONLY));
  if (std::chrono::steady_clock::now() - walked < opts.link_rescan_interval) {
    EXPECT_EQ(conservative, ENOENT);  // (a machine this slow would have rescanned already)
  }
  std::this_thread::sleep_for(opts.link_rescan_interval);
  EXPECT_EQ(ReadFile(m->mnt("public/pair")).value_or(""), "pair");
  EXPECT_EQ(Links(m->mnt("public/pair2")), 2u);
  // The secret link removed on the host: readable again at the next open.
  ASSERT_EQ(::unlink(m->src("secrets/key").c_str()), 0);
  EXPECT_EQ(ReadFile(m->mnt("public/key")).value_or(""), kSecret);
}

// Names made through the mount, then a policy change that hides one of them: every other name of
// the file is hidden at once (SetPolicy decides each inode over all its names).
TEST(HardLink, PolicyChangeOnOneNameReachesTheOthers) {
  AF_REQUIRE_FUSE();
  auto m = MountedFs::Start(PresetPolicy("full-access"));
  ASSERT_NE(m, nullptr);
  ASSERT_EQ(::mkdir(m->mnt("a").c_str(), 0755), 0);
  WriteFile(m->mnt("a/f"), kSecret);
  ASSERT_EQ(::link(m->mnt("a/f").c_str(), m->mnt("a/g").c_str()), 0);
  ASSERT_EQ(ReadFile(m->mnt("a/f")).value_or(""), kSecret);
  m->fs().SetPolicy(MakePolicy({"**/*=read", "/a/g=none@10"}));
  struct stat st;
  EXPECT_EQ(Err(::stat(m->mnt("a/f").c_str(), &st)), ENOENT);
  EXPECT_EQ(Err(::open(m->mnt("a/f").c_str(), O_RDONLY)), ENOENT);
  EXPECT_FALSE(TreeContains(m->mnt(), kSecret));
}

// A directory renamed through the mount carries its names in the index along.
TEST(HardLink, RenamedDirectoryKeepsItsLinksNames) {
  AF_REQUIRE_FUSE();
  TempDir dir;
  std::string src = Source(dir, {"d"});
  WriteFile(src + "/d/x", kSecret);
  ASSERT_EQ(::link((src + "/d/x").c_str(), (src + "/a").c_str()), 0);
  auto m = MountedFs::StartOn(src, PresetPolicy("full-access"));
  ASSERT_NE(m, nullptr);
  ASSERT_EQ(Links(m->mnt("a")), 2u);
  ASSERT_EQ(::rename(m->mnt("d").c_str(), m->mnt("e").c_str()), 0);
  m->fs().SetPolicy(MakePolicy({"**/*=write", "/e/**=none@10"}));
  struct stat st;
  if (m->fs().has_delta()) {
    // The delta moved a copy of /d (docs/DELTA.md): /e/x is another object, /a keeps the source
    // file, whose names (/a, and /d/x in the source) are both writable.
    EXPECT_EQ(Err(::stat(m->mnt("a").c_str(), &st)), 0);
  } else {
    EXPECT_EQ(Err(::stat(m->mnt("a").c_str(), &st)), ENOENT);
  }
  EXPECT_EQ(Err(::stat(m->mnt("e/x").c_str(), &st)), ENOENT);
}

}  // namespace
}  // namespace agentfense::fs::testing
