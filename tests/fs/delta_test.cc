// Real-mount tests of the copy-on-write delta (docs/DELTA.md): a seeded source compared with a
// native copy running the same script, the source untouched until commit and equal to the native
// result after it; the attacks of issue 4 (forged whiteout names, hidden entries, symlink swaps
// and planted symlink directories, setuid, FIFOs, read-only deletes); concurrent commits; kill -9
// during a commit; quota exactness; discard; persistence across a remount.
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "fs/delta.h"
#include "fs_test_util.h"

namespace agentfense::fs::testing {
namespace {

namespace stdfs = std::filesystem;

void Seed(const std::string& root) {
  ::mkdir((root + "/src").c_str(), 0755);
  ::mkdir((root + "/src/pkg").c_str(), 0755);
  ::mkdir((root + "/docs").c_str(), 0755);
  ::mkdir((root + "/old").c_str(), 0755);
  ::mkdir((root + "/old/deep").c_str(), 0755);
  WriteFile(root + "/src/main.c", "int main() { return 0; }\n");
  WriteFile(root + "/src/pkg/a.py", "A = 1\n");
  WriteFile(root + "/src/pkg/b.py", "B = 2\n");
  WriteFile(root + "/docs/readme", "read me\n");
  WriteFile(root + "/old/x", "x\n");
  WriteFile(root + "/old/deep/y", "y\n");
  WriteFile(root + "/.wh.forged", "a source file named like a whiteout\n");
  WriteFile(root + "/keep", "keep\n", 0600);
  ::symlink("src/main.c", (root + "/link").c_str());
}

std::unique_ptr<MountedFs> DeltaMount(const std::string& source, const std::string& delta,
                                      policy::Policy p = PresetPolicy("full-access"),
                                      uint64_t qbytes = 0, uint64_t qinodes = 0) {
  FsOptions o;
  o.delta_dir = delta;
  o.delta_quota_bytes = qbytes;
  o.delta_quota_inodes = qinodes;
  return MountedFs::StartOn(source, std::move(p), o);
}

// One script of agent-like changes, run on a native copy and on the delta mount.
std::vector<std::string> Script(const std::string& r) {
  std::vector<std::string> t;
  auto note = [&](const std::string& what, long rc) {
    t.push_back(what + " -> " + (rc < 0 ? std::string(strerrorname_np(errno)) : std::to_string(rc)));
  };
  int fd = ::open((r + "/src/main.c").c_str(), O_WRONLY | O_APPEND);
  note("open append", fd < 0 ? -1 : 0);
  note("append", ::write(fd, "// edited\n", 10));
  ::close(fd);
  note("truncate", ::truncate((r + "/src/pkg/a.py").c_str(), 2));
  note("chmod", ::chmod((r + "/docs/readme").c_str(), 0600));
  note("rename file", ::rename((r + "/src/pkg/b.py").c_str(), (r + "/src/pkg/c.py").c_str()));
  note("rename dir", ::rename((r + "/src/pkg").c_str(), (r + "/src/lib").c_str()));
  note("stat old dir", ::access((r + "/src/pkg").c_str(), F_OK));
  note("rmdir nonempty", ::rmdir((r + "/old").c_str()));
  note("unlink y", ::unlink((r + "/old/deep/y").c_str()));
  note("rmdir deep", ::rmdir((r + "/old/deep").c_str()));
  note("unlink x", ::unlink((r + "/old/x").c_str()));
  note("rmdir old", ::rmdir((r + "/old").c_str()));
  note("mkdir old again", ::mkdir((r + "/old").c_str(), 0755));
  DIR* dp = ::opendir((r + "/old").c_str());
  int n = 0;
  while (dirent* de = dp ? ::readdir(dp) : nullptr) n += de->d_name[0] != '.';
  if (dp) ::closedir(dp);
  t.push_back("recreated dir entries " + std::to_string(n));
  WriteFile(r + "/new.txt", "brand new\n");
  note("link", ::link((r + "/new.txt").c_str(), (r + "/new-link.txt").c_str()));
  fd = ::open((r + "/new-link.txt").c_str(), O_WRONLY | O_APPEND);
  note("write via link", ::write(fd, "+", 1));
  ::close(fd);
  t.push_back("through first name: " + ReadFile(r + "/new.txt").value_or("?"));
  struct stat a, b;
  ::stat((r + "/new.txt").c_str(), &a);
  ::stat((r + "/new-link.txt").c_str(), &b);
  t.push_back(std::string("same inode: ") + (a.st_ino == b.st_ino ? "yes" : "no") +
              " nlink=" + std::to_string(a.st_nlink));
  note("symlink", ::symlink("/etc/shadow", (r + "/evil").c_str()));
  note("unlink keep", ::unlink((r + "/keep").c_str()));
  WriteFile(r + "/.wh.new", "an agent file named like a whiteout\n");
  t.push_back("forged source file: " + ReadFile(r + "/.wh.forged").value_or("?"));
  note("unlink link", ::unlink((r + "/link").c_str()));
  return t;
}

class DeltaTest : public ::testing::Test {
 protected:
  void SetUp() override { AF_REQUIRE_FUSE(); }
  TempDir dir_;
};

TEST_F(DeltaTest, SeededScriptMatchesNativeSourceUntouchedUntilCommit) {
  std::string src = dir_ / "src", native = dir_ / "native", delta = dir_ / "delta";
  ::mkdir(src.c_str(), 0755);
  ::mkdir(native.c_str(), 0755);
  Seed(src);
  Seed(native);
  auto before = Snapshot(src);
  std::map<std::string, std::string> after_native;
  {
    auto m = DeltaMount(src, delta);
    ASSERT_NE(m, nullptr);
    struct stat s1, s2;
    ASSERT_EQ(::stat(m->mnt("src/main.c").c_str(), &s1), 0);
    auto tn = Script(native);
    auto tm = Script(m->mnt());
    ASSERT_EQ(tn.size(), tm.size());
    for (size_t i = 0; i < tn.size(); ++i) EXPECT_EQ(tn[i], tm[i]) << "step " << i;
    ASSERT_EQ(::stat(m->mnt("src/main.c").c_str(), &s2), 0);
    EXPECT_EQ(s1.st_ino, s2.st_ino) << "st_ino changed across copy-up";
    after_native = Snapshot(native);
    EXPECT_EQ(Snapshot(m->mnt()), after_native);
    EXPECT_EQ(Snapshot(src), before) << "the source changed before a commit";

    auto changes = m->fs().DeltaChanges();
    ASSERT_TRUE(changes.ok());
    std::map<std::string, ChangeKind> kinds;
    for (const auto& c : changes->changes) kinds[c.path] = c.kind;
    EXPECT_EQ(kinds["/src/main.c"], ChangeKind::kModified);
    EXPECT_EQ(kinds["/new.txt"], ChangeKind::kAdded);
    EXPECT_EQ(kinds["/keep"], ChangeKind::kDeleted);
    EXPECT_EQ(kinds["/old/deep/y"], ChangeKind::kDeleted);
    EXPECT_TRUE(std::is_sorted(changes->changes.begin(), changes->changes.end(),
                               [](const Change& x, const Change& y) { return x.path < y.path; }));

    auto report = m->fs().CommitDelta();
    ASSERT_TRUE(report.ok()) << report.error().ToString();
    for (const auto& e : report->errors) ADD_FAILURE() << e.path << ": " << e.message;
    EXPECT_FALSE(report->applied.empty());
    auto left = m->fs().DeltaChanges();
    ASSERT_TRUE(left.ok());
    EXPECT_TRUE(left->changes.empty()) << left->changes.size() << " still pending, first "
                                       << left->changes[0].path;
    // The mount shows the committed source.
    EXPECT_EQ(Snapshot(m->mnt()), after_native);
  }
  // Hard links become separate files in the source (documented); compare everything else.
  auto committed = Snapshot(src);
  EXPECT_EQ(committed, after_native);
}

TEST_F(DeltaTest, ForgedWhiteoutNamesAreJustNames) {
  std::string src = dir_ / "src";
  ::mkdir(src.c_str(), 0755);
  WriteFile(src + "/x", "x");
  WriteFile(src + "/.wh.x", "source whiteout-looking file");
  WriteFile(src + "/.wh..wh..opq", "opaque-looking file");
  WriteFile(src + "/deleted.journal", "journal-looking file");
  auto m = DeltaMount(src, dir_ / "delta");
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(ReadFile(m->mnt("x")), "x");
  EXPECT_EQ(ReadFile(m->mnt(".wh.x")), "source whiteout-looking file");
  EXPECT_EQ(ReadFile(m->mnt(".wh..wh..opq")), "opaque-looking file");
  // The agent forges markers of every known layout: nothing disappears.
  WriteFile(m->mnt(".wh.keepme"), "forged");
  ::mkdir(m->mnt("dir").c_str(), 0755);
  WriteFile(m->mnt("dir/.wh..wh..opq"), "forged");
  ASSERT_EQ(::mknod(m->mnt(".wh.y").c_str(), S_IFCHR | 0600, 0), -1);
  EXPECT_EQ(ReadFile(m->mnt("x")), "x");
  EXPECT_EQ(ReadFile(m->mnt("deleted.journal")), "journal-looking file");
  auto report = m->fs().CommitDelta();
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->errors.empty());
  EXPECT_EQ(ReadFile(src + "/x"), "x");
  EXPECT_EQ(ReadFile(src + "/.wh.keepme"), "forged");
  EXPECT_EQ(ReadFile(src + "/dir/.wh..wh..opq"), "forged");
}

TEST_F(DeltaTest, HiddenEntriesBlockRmdirAndSurviveCommit) {
  std::string src = dir_ / "src";
  ::mkdir(src.c_str(), 0755);
  ::mkdir((src + "/d").c_str(), 0755);
  WriteFile(src + "/d/visible", "v");
  WriteFile(src + "/d/secret.key", "CANARY");
  ::mkdir((src + "/v").c_str(), 0755);
  WriteFile(src + "/v/x", "x");
  auto m = DeltaMount(src, dir_ / "delta", MakePolicy({"**/*=write", "**/*.key=none@10"}));
  ASSERT_NE(m, nullptr);
  EXPECT_NE(::access(m->mnt("d/secret.key").c_str(), F_OK), 0);
  ASSERT_EQ(::unlink(m->mnt("d/visible").c_str()), 0);
  EXPECT_EQ(Err(::rmdir(m->mnt("d").c_str())), ENOTEMPTY);
  EXPECT_EQ(Err(::rename(m->mnt("d").c_str(), m->mnt("e").c_str())), EXDEV);
  // An exchange moves both trees: a hidden name at either end refuses it, whichever side the
  // directory holding it is named on, and so does replacing that seemingly empty directory.
  auto exchange = [&](const char* a, const char* b) {
    return Err(::renameat2(AT_FDCWD, m->mnt(a).c_str(), AT_FDCWD, m->mnt(b).c_str(), RENAME_EXCHANGE));
  };
  EXPECT_EQ(exchange("v", "d"), EXDEV);
  EXPECT_EQ(exchange("d", "v"), EXDEV);
  EXPECT_EQ(exchange("v/x", "d"), EXDEV) << "a file exchanged with the directory";
  ASSERT_EQ(::mkdir(m->mnt("e").c_str(), 0755), 0);
  EXPECT_EQ(exchange("e", "d"), EXDEV);
  EXPECT_EQ(Err(::rename(m->mnt("e").c_str(), m->mnt("d").c_str())), EXDEV);
  for (const char* name : {"v/secret.key", "e/secret.key", "v/visible", "v/x/secret.key"}) {
    EXPECT_NE(::access(m->mnt(name).c_str(), F_OK), 0) << name;
  }
  EXPECT_EQ(ReadFile(m->mnt("v/x")), "x");
  auto report = m->fs().CommitDelta();
  ASSERT_TRUE(report.ok());
  for (const auto& e : report->errors) ADD_FAILURE() << e.path << ": " << e.message;
  EXPECT_EQ(ReadFile(src + "/d/secret.key"), "CANARY");
  EXPECT_FALSE(ReadFile(src + "/d/visible").has_value());
  EXPECT_EQ(ReadFile(src + "/v/x"), "x");
  EXPECT_FALSE(stdfs::exists(src + "/v/secret.key"));
}

TEST_F(DeltaTest, ReadOnlyDeleteRefusedAndPolicyRecheckedAtCommit) {
  std::string src = dir_ / "src";
  ::mkdir(src.c_str(), 0755);
  WriteFile(src + "/ro", "ro");
  WriteFile(src + "/rw", "rw");
  auto m = DeltaMount(src, dir_ / "delta", MakePolicy({"**/*=write", "/ro=read@10"}));
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(Err(::unlink(m->mnt("ro").c_str())), EACCES);
  ASSERT_EQ(::unlink(m->mnt("rw").c_str()), 0);
  WriteFile(m->mnt("new"), "n");
  // The policy tightens before the commit: the pending deletion and write are refused.
  m->fs().SetPolicy(MakePolicy({"**/*=write", "/ro=read@10", "/rw=read@10", "/new=read@10"}));
  auto report = m->fs().CommitDelta();
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->errors.size(), 2u);
  EXPECT_EQ(ReadFile(src + "/rw"), "rw");
  EXPECT_FALSE(ReadFile(src + "/new").has_value());
  EXPECT_EQ(ReadFile(src + "/ro"), "ro");
  auto pending = m->fs().DeltaChanges();
  ASSERT_TRUE(pending.ok());
  EXPECT_EQ(pending->changes.size(), 2u) << "failed entries stay pending";
}

TEST_F(DeltaTest, SymlinksAreDataAndPlantedSymlinkDirsAreNeverFollowed) {
  std::string src = dir_ / "src", outside = dir_ / "outside";
  ::mkdir(src.c_str(), 0755);
  ::mkdir(outside.c_str(), 0755);
  ::mkdir((src + "/sub").c_str(), 0755);
  WriteFile(outside + "/target", "OUTSIDE");
  WriteFile(src + "/f", "f");
  auto m = DeltaMount(src, dir_ / "delta");
  ASSERT_NE(m, nullptr);
  // Swap between write and commit: the file becomes a symlink to an outside file.
  WriteFile(m->mnt("f"), "written");
  ASSERT_EQ(::unlink(m->mnt("f").c_str()), 0);
  ASSERT_EQ(::symlink((outside + "/target").c_str(), m->mnt("f").c_str()), 0);
  WriteFile(m->mnt("sub/g"), "must not leave the source");
  // A symlink directory planted in the source path (host side) before the commit.
  ASSERT_EQ(::rename((src + "/sub").c_str(), (dir_ / "sub-moved").c_str()), 0);
  ASSERT_EQ(::symlink(outside.c_str(), (src + "/sub").c_str()), 0);
  auto report = m->fs().CommitDelta();
  ASSERT_TRUE(report.ok());
  // /sub (now a symlink in the source) and /sub/g beneath it fail; nothing else does.
  std::set<std::string> failed;
  for (const auto& e : report->errors) failed.insert(e.path);
  EXPECT_EQ(failed, (std::set<std::string>{"/sub", "/sub/g"}));
  char buf[256];
  ssize_t n = ::readlink((src + "/f").c_str(), buf, sizeof(buf));
  ASSERT_GT(n, 0) << "f must be a symlink (data)";
  EXPECT_EQ(ReadFile(outside + "/target"), "OUTSIDE");
  EXPECT_FALSE(stdfs::exists(outside + "/g"));
  std::set<std::string> names;
  for (auto& e : stdfs::directory_iterator(outside)) names.insert(e.path().filename());
  EXPECT_EQ(names, std::set<std::string>{"target"});
}

TEST_F(DeltaTest, SetuidStrippedAndFifoNeverSynced) {
  std::string src = dir_ / "src";
  ::mkdir(src.c_str(), 0755);
  WriteFile(src + "/tool", "#!/bin/sh\n", 0755);
  ::chmod((src + "/tool").c_str(), 04755);
  auto m = DeltaMount(src, dir_ / "delta");
  ASSERT_NE(m, nullptr);
  int fd = ::open(m->mnt("tool").c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "echo\n", 5), 5);
  ::close(fd);
  ASSERT_EQ(::mkfifo(m->mnt("pipe").c_str(), 0644), 0);
  auto report = m->fs().CommitDelta();
  ASSERT_TRUE(report.ok());
  struct stat st;
  ASSERT_EQ(::stat((src + "/tool").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  EXPECT_EQ(ReadFile(src + "/tool"), "#!/bin/sh\necho\n");
  EXPECT_NE(::lstat((src + "/pipe").c_str(), &st), 0);
  ASSERT_EQ(report->errors.size(), 1u);
  EXPECT_EQ(report->errors[0].path, "/pipe");
}

TEST_F(DeltaTest, TwoDeltasCommitSameFileOneWholeVersionWins) {
  std::string src = dir_ / "src";
  ::mkdir(src.c_str(), 0755);
  WriteFile(src + "/shared", "original");
  auto a = DeltaMount(src, dir_ / "da");
  auto b = DeltaMount(src, dir_ / "db");
  ASSERT_TRUE(a && b);
  const std::string va(4 << 20, 'A'), vb(3 << 20, 'B');
  std::thread ta([&] { WriteFile(a->mnt("shared"), va); });
  std::thread tb([&] { WriteFile(b->mnt("shared"), vb); });
  ta.join();
  tb.join();
  EXPECT_EQ(ReadFile(src + "/shared"), "original");
  std::thread ca([&] { EXPECT_TRUE(a->fs().CommitDelta().ok()); });
  std::thread cb([&] { EXPECT_TRUE(b->fs().CommitDelta().ok()); });
  ca.join();
  cb.join();
  auto got = ReadFile(src + "/shared");
  ASSERT_TRUE(got.has_value());
  EXPECT_TRUE(*got == va || *got == vb) << "mixed content of size " << got->size();
}

TEST_F(DeltaTest, KillDuringCommitLeavesOldOrNewAndRecommitCompletes) {
  std::string src = dir_ / "src", delta = dir_ / "delta";
  ::mkdir(src.c_str(), 0755);
  ::mkdir(delta.c_str(), 0700);
  ::mkdir((delta + "/upper").c_str(), 0755);
  constexpr int kFiles = 1000;
  const std::string fresh(64 << 10, 'N');
  for (int i = 0; i < kFiles; ++i) {
    WriteFile(src + "/f" + std::to_string(i), "old");
    WriteFile(delta + "/upper/f" + std::to_string(i), fresh);
  }
  auto allow = [](const std::string&, bool) { return policy::Level::kWrite; };
  // Kill -9 the committing process after growing delays until one kill lands mid-way (some files
  // new, some old); each attempt resumes where the last one stopped.
  bool mid_way = false;
  for (int delay_ms : {20, 50, 100, 200, 300, 500, 800, 1200, 2000}) {
    pid_t pid = ::fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto store = DeltaStore::Open(delta, 0, 0);
      if (!store.ok()) ::_exit(2);
      UniqueFd root(::open(src.c_str(), O_RDONLY | O_DIRECTORY));
      (void)(*store)->Commit(root.get(), allow);
      ::_exit(0);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    int fresh_count = 0;
    for (int i = 0; i < kFiles; ++i) {
      auto c = ReadFile(src + "/f" + std::to_string(i));
      ASSERT_TRUE(c.has_value());
      ASSERT_TRUE(*c == "old" || *c == fresh) << "file " << i << " is torn (" << c->size() << ")";
      fresh_count += *c == fresh;
    }
    if (!WIFSIGNALED(status)) break;  // the commit finished first
    if (fresh_count > 0 && fresh_count < kFiles) {
      std::cerr << "killed after " << delay_ms << " ms with " << fresh_count << " of " << kFiles
                << " files synced\n";
      mid_way = true;
      break;
    }
  }
  EXPECT_TRUE(mid_way) << "no kill landed in the middle of the commit";
  auto store = DeltaStore::Open(delta, 0, 0);
  ASSERT_TRUE(store.ok());
  UniqueFd root(::open(src.c_str(), O_RDONLY | O_DIRECTORY));
  auto report = (*store)->Commit(root.get(), allow);
  EXPECT_TRUE(report.errors.empty());
  for (int i = 0; i < kFiles; ++i) {
    ASSERT_EQ(ReadFile(src + "/f" + std::to_string(i)), fresh) << i;
  }
  for (auto& e : stdfs::directory_iterator(src)) {
    EXPECT_EQ(e.path().filename().string().rfind(".agentfense-sync", 0), std::string::npos)
        << "temp file left: " << e.path();
  }
}

TEST_F(DeltaTest, QuotaIsExactAndLosesNothing) {
  std::string src = dir_ / "src";
  ::mkdir(src.c_str(), 0755);
  WriteFile(src + "/base", std::string(1000, 'b'));
  auto m = DeltaMount(src, dir_ / "delta", PresetPolicy("full-access"), 10000, 5);
  ASSERT_NE(m, nullptr);
  WriteFile(m->mnt("a"), std::string(6000, 'a'));
  int fd = ::open(m->mnt("b").c_str(), O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  const std::string chunk(5000, 'x');
  EXPECT_EQ(::write(fd, chunk.data(), chunk.size()), 4000);  // cut at the limit
  EXPECT_EQ(::write(fd, chunk.data(), 1), -1);
  EXPECT_EQ(errno, ENOSPC);
  ::close(fd);
  EXPECT_EQ(ReadFile(m->mnt("a")), std::string(6000, 'a'));
  EXPECT_EQ(ReadFile(m->mnt("b")), std::string(4000, 'x'));
  // A copy-up that would pass the limit fails before touching anything.
  fd = ::open(m->mnt("base").c_str(), O_WRONLY | O_APPEND);
  EXPECT_EQ(fd, -1);
  EXPECT_EQ(errno, ENOSPC);
  EXPECT_EQ(ReadFile(m->mnt("base")), std::string(1000, 'b'));
  auto c = m->fs().DeltaChanges();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->delta_bytes, 10000);
  EXPECT_EQ(c->delta_inodes, 2);
  // Freeing space makes room again; the accounting follows exactly.
  ASSERT_EQ(::truncate(m->mnt("a").c_str(), 1000), 0);
  WriteFile(m->mnt("c"), std::string(5000, 'c'));
  ::mkdir(m->mnt("d1").c_str(), 0755);
  ::mkdir(m->mnt("d2").c_str(), 0755);
  EXPECT_EQ(Err(::mkdir(m->mnt("d3").c_str(), 0755)), ENOSPC);  // inode limit 5
  c = m->fs().DeltaChanges();
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->delta_bytes, 10000);
  EXPECT_EQ(c->delta_inodes, 5);
}

TEST_F(DeltaTest, DiscardRestoresTheSourceView) {
  std::string src = dir_ / "src";
  ::mkdir(src.c_str(), 0755);
  WriteFile(src + "/a", "a");
  WriteFile(src + "/b", "b");
  auto m = DeltaMount(src, dir_ / "delta");
  ASSERT_NE(m, nullptr);
  WriteFile(m->mnt("a"), "changed");
  ASSERT_EQ(::unlink(m->mnt("b").c_str()), 0);
  WriteFile(m->mnt("c"), "new");
  EXPECT_EQ(ReadFile(m->mnt("a")), "changed");
  auto n = m->fs().DiscardDelta();
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(*n, 3);
  EXPECT_EQ(ReadFile(m->mnt("a")), "a");
  EXPECT_EQ(ReadFile(m->mnt("b")), "b");
  EXPECT_FALSE(ReadFile(m->mnt("c")).has_value());
  auto left = m->fs().DeltaChanges();
  ASSERT_TRUE(left.ok());
  EXPECT_TRUE(left->changes.empty());
  EXPECT_EQ(left->delta_bytes, 0);
}

TEST_F(DeltaTest, SurvivesARemount) {
  std::string src = dir_ / "src", delta = dir_ / "delta";
  ::mkdir(src.c_str(), 0755);
  ::mkdir((src + "/d").c_str(), 0755);
  WriteFile(src + "/d/gone", "g");
  WriteFile(src + "/a", "a");
  {
    auto m = DeltaMount(src, delta);
    ASSERT_NE(m, nullptr);
    WriteFile(m->mnt("a"), "changed");
    ASSERT_EQ(::unlink(m->mnt("d/gone").c_str()), 0);
    ASSERT_EQ(::rmdir(m->mnt("d").c_str()), 0);
    ASSERT_EQ(::mkdir(m->mnt("d").c_str(), 0755), 0);
  }
  auto m = DeltaMount(src, delta);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(ReadFile(m->mnt("a")), "changed");
  EXPECT_FALSE(ReadFile(m->mnt("d/gone")).has_value());
  EXPECT_EQ(ReadFile(src + "/d/gone"), "g");
  auto report = m->fs().CommitDelta();
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->errors.empty());
  EXPECT_FALSE(stdfs::exists(src + "/d/gone"));
  EXPECT_TRUE(stdfs::is_directory(src + "/d"));
}

// A copy-up keeps the inode number the agent already saw, in stat and in listings alike: a
// listing's d_ino that differs from stat's st_ino confuses `ls -i`, `find -inum`, fts.
TEST_F(DeltaTest, ACopiedUpObjectListsTheInodeNumberItStats) {
  std::string src = dir_ / "src", delta = dir_ / "delta";
  ::mkdir(src.c_str(), 0755);
  ::mkdir((src + "/d").c_str(), 0755);
  ::mkdir((src + "/d/sub").c_str(), 0755);
  WriteFile(src + "/d/f", "f");
  auto m = DeltaMount(src, delta);
  ASSERT_NE(m, nullptr);
  struct stat f0, sub0;
  ASSERT_EQ(::stat(m->mnt("d/f").c_str(), &f0), 0);
  ASSERT_EQ(::stat(m->mnt("d/sub").c_str(), &sub0), 0);
  WriteFile(m->mnt("d/f"), "changed");            // the file is copied up
  WriteFile(m->mnt("d/sub/new"), "n");            // the directory gets its upper copy
  WriteFile(m->mnt("d/other"), "o");              // d changed: its next listing is fresh
  auto listed = [&](const char* name) -> ino_t {
    DIR* dp = ::opendir(m->mnt("d").c_str());
    ino_t ino = 0;
    while (dirent* de = dp ? ::readdir(dp) : nullptr) {
      if (std::string(de->d_name) == name) ino = de->d_ino;
    }
    if (dp) ::closedir(dp);
    return ino;
  };
  struct stat f1, sub1;
  ASSERT_EQ(::stat(m->mnt("d/f").c_str(), &f1), 0);
  ASSERT_EQ(::stat(m->mnt("d/sub").c_str(), &sub1), 0);
  EXPECT_EQ(f1.st_ino, f0.st_ino);
  EXPECT_EQ(sub1.st_ino, sub0.st_ino);
  EXPECT_EQ(listed("f"), f1.st_ino);
  EXPECT_EQ(listed("sub"), sub1.st_ino);
  // The listing's lookups found the same inodes: nothing changed identity under the agent.
  struct stat f2, sub2;
  ASSERT_EQ(::stat(m->mnt("d/f").c_str(), &f2), 0);
  ASSERT_EQ(::stat(m->mnt("d/sub").c_str(), &sub2), 0);
  EXPECT_EQ(f2.st_ino, f0.st_ino);
  EXPECT_EQ(sub2.st_ino, sub0.st_ino);
  EXPECT_EQ(ReadFile(m->mnt("d/sub/new")), "n");
}

// RENAME_EXCHANGE of directories holding source content (and of a directory with a file): each
// name shows exactly the other object's tree, nothing of its own source tree leaks through, a
// remount keeps it, and the commit leaves the source equal to the native result.
TEST_F(DeltaTest, DirectoryExchangeMatchesNativeAndCommits) {
  std::string src = dir_ / "src", native = dir_ / "native", delta = dir_ / "delta";
  auto seed = [](const std::string& r) {
    ::mkdir(r.c_str(), 0755);
    for (const char* d : {"/a", "/a/sub", "/b", "/c"}) ::mkdir((r + d).c_str(), 0755);
    WriteFile(r + "/a/only-a", "A\n");
    WriteFile(r + "/a/same", "same of a\n");
    WriteFile(r + "/a/sub/deep", "deep of a\n");
    WriteFile(r + "/b/only-b", "B\n");
    WriteFile(r + "/b/same", "same of b\n");
    WriteFile(r + "/c/inside", "C\n");
    WriteFile(r + "/f", "a file\n");
  };
  seed(src);
  seed(native);
  auto before = Snapshot(src);
  auto script = [](const std::string& r) {
    std::vector<std::string> t;
    auto note = [&](const std::string& what, long rc) {
      t.push_back(what + " -> " + (rc < 0 ? std::string(strerrorname_np(errno)) : std::to_string(rc)));
    };
    note("exchange dirs", ::renameat2(AT_FDCWD, (r + "/a").c_str(), AT_FDCWD, (r + "/b").c_str(),
                                      RENAME_EXCHANGE));
    note("exchange dir and file", ::renameat2(AT_FDCWD, (r + "/c").c_str(), AT_FDCWD,
                                              (r + "/f").c_str(), RENAME_EXCHANGE));
    WriteFile(r + "/a/added", "after\n");
    note("exchange back", ::renameat2(AT_FDCWD, (r + "/a").c_str(), AT_FDCWD, (r + "/b").c_str(),
                                      RENAME_EXCHANGE));
    note("exchange again", ::renameat2(AT_FDCWD, (r + "/b").c_str(), AT_FDCWD, (r + "/a").c_str(),
                                       RENAME_EXCHANGE));
    return t;
  };
  auto expected = script(native);
  auto after_native = Snapshot(native);
  {
    auto m = DeltaMount(src, delta);
    ASSERT_NE(m, nullptr);
    // Look everything up first, so the kernel and the inode table know the pre-exchange objects.
    EXPECT_EQ(Snapshot(m->mnt()), before);
    EXPECT_EQ(script(m->mnt()), expected);
    EXPECT_EQ(Snapshot(m->mnt()), after_native);
    EXPECT_EQ(Snapshot(src), before) << "the source changed before a commit";
  }
  auto m = DeltaMount(src, delta);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(Snapshot(m->mnt()), after_native) << "after a remount";
  auto report = m->fs().CommitDelta();
  ASSERT_TRUE(report.ok()) << report.error().ToString();
  for (const auto& e : report->errors) ADD_FAILURE() << e.path << ": " << e.message;
  EXPECT_EQ(Snapshot(src), after_native);
  EXPECT_EQ(Snapshot(m->mnt()), after_native);
}

TEST_F(DeltaTest, OddNamesAndDeepTreesSync) {
  std::string src = dir_ / "src";
  ::mkdir(src.c_str(), 0755);
  auto m = DeltaMount(src, dir_ / "delta");
  ASSERT_NE(m, nullptr);
  const std::vector<std::string> names = {"new\nline", "bad-\xff\xfe-utf8", " space ", "-dash",
                                          "..dots", "back\\slash"};
  for (const auto& n : names) WriteFile(m->mnt(n), n);
  std::string deep = m->mnt();
  std::string rel;
  for (int i = 0; i < 100; ++i) {
    rel += "/d";
    ASSERT_EQ(::mkdir((deep + rel).c_str(), 0755), 0) << i;
  }
  WriteFile(deep + rel + "/leaf", "leaf");
  auto changes = m->fs().DeltaChanges();
  ASSERT_TRUE(changes.ok());
  EXPECT_EQ(changes->changes.size(), names.size() + 101);
  auto report = m->fs().CommitDelta();
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->errors.empty());
  for (const auto& n : names) EXPECT_EQ(ReadFile(src + "/" + n), n);
  EXPECT_EQ(ReadFile(src + rel + "/leaf"), "leaf");
  EXPECT_EQ(ReadFile(m->mnt(rel.substr(1) + "/leaf")), "leaf");
}

// Upper objects belong to the source tree's owner, never to the daemon (root); a copied-up
// object keeps its source owner. (Their fate at commit: HostSide.CreatedObjectsBelongToTheTreesOwner.)
TEST_F(DeltaTest, UpperObjectsBelongToTheTreesOwner) {
  std::string src = dir_ / "src", delta = dir_ / "delta";
  ::mkdir(src.c_str(), 0755);
  ASSERT_EQ(::chown(src.c_str(), 12345, 23456), 0);
  ::mkdir((src + "/lower").c_str(), 0755);  // root's, as is what it holds
  WriteFile(src + "/lower/rootfile", "root's");
  auto m = DeltaMount(src, delta);
  ASSERT_NE(m, nullptr);
  WriteFile(m->mnt("file"), "data");
  ASSERT_EQ(::mkdir(m->mnt("dir").c_str(), 0700), 0);
  ASSERT_EQ(::mkdir(m->mnt("dir/sub").c_str(), 0700), 0);
  WriteFile(m->mnt("dir/sub/inner"), "inner");
  ASSERT_EQ(::symlink("file", m->mnt("link").c_str()), 0);
  ASSERT_EQ(::mkfifo(m->mnt("fifo").c_str(), 0600), 0);
  WriteFile(m->mnt("lower/new"), "new");            // in a copied-up root directory
  WriteFile(m->mnt("lower/rootfile"), "changed");   // copy-up
  struct stat st;
  for (const char* name : {"file", "dir", "dir/sub", "dir/sub/inner", "link", "fifo",
                           "lower/new"}) {
    ASSERT_EQ(::lstat((delta + "/upper/" + name).c_str(), &st), 0) << name;
    EXPECT_EQ(st.st_uid, 12345u) << name;
    EXPECT_EQ(st.st_gid, 23456u) << name;
  }
  for (const char* name : {"lower", "lower/rootfile"}) {
    ASSERT_EQ(::lstat((delta + "/upper/" + name).c_str(), &st), 0) << name;
    EXPECT_EQ(st.st_uid, 0u) << name;
  }
  ASSERT_EQ(::lstat((delta + "/upper/dir").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
}

TEST_F(DeltaTest, AFileOpenForWritingIsCopiedSoItsWriterStaysInTheDelta) {
  std::string src = dir_ / "src";
  ::mkdir(src.c_str(), 0755);
  auto m = DeltaMount(src, dir_ / "delta");
  ASSERT_NE(m, nullptr);
  WriteFile(m->mnt("idle"), "idle");
  int fd = ::open(m->mnt("log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, "one\n", 4), 4);
  struct stat idle_before;
  ASSERT_EQ(::stat((dir_ / "delta/upper/idle").c_str(), &idle_before), 0);
  auto report = m->fs().CommitDelta();
  ASSERT_TRUE(report.ok());
  EXPECT_TRUE(report->errors.empty());
  struct stat idle_after, log_src, log_up;
  ASSERT_EQ(::stat((src + "/idle").c_str(), &idle_after), 0);
  EXPECT_EQ(idle_after.st_ino, idle_before.st_ino) << "an idle file is moved, not copied";
  EXPECT_EQ(ReadFile(src + "/log"), "one\n");
  // The writer keeps writing into the delta; the source does not change behind it.
  ASSERT_EQ(::write(fd, "two\n", 4), 4);
  ::close(fd);
  EXPECT_EQ(ReadFile(src + "/log"), "one\n");
  EXPECT_EQ(ReadFile(m->mnt("log")), "one\ntwo\n");
  EXPECT_EQ(ReadFile(m->mnt("idle")), "idle");
  auto pending = m->fs().DeltaChanges();
  ASSERT_TRUE(pending.ok());
  ASSERT_EQ(pending->changes.size(), 1u);
  EXPECT_EQ(pending->changes[0].path, "/log");
  ASSERT_TRUE(m->fs().CommitDelta().ok());
  EXPECT_EQ(ReadFile(src + "/log"), "one\ntwo\n");
  ASSERT_EQ(::stat((src + "/log").c_str(), &log_src), 0);
  EXPECT_NE(::stat((dir_ / "delta/upper/log").c_str(), &log_up), 0);
}

int OpenFds() {
  int n = 0;
  for (auto& e : stdfs::directory_iterator("/proc/self/fd")) n += !e.path().empty();
  return n;
}

TEST_F(DeltaTest, ManyDeltaFilesNeedNoFdEach) {
  std::string src = dir_ / "src";
  ::mkdir(src.c_str(), 0755);
  FsOptions o;
  o.delta_dir = dir_ / "delta";
  o.fd_cache_capacity = 256;
  auto m = MountedFs::StartOn(src, PresetPolicy("full-access"), o);
  ASSERT_NE(m, nullptr);
  constexpr int kFiles = 25000;  // more than the process fd limit (20,000)
  for (int d = 0; d < 25; ++d) {
    std::string dir = m->mnt("d" + std::to_string(d));
    ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
    for (int f = 0; f < kFiles / 25; ++f) {
      int fd = ::open((dir + "/f" + std::to_string(f)).c_str(), O_WRONLY | O_CREAT, 0644);
      ASSERT_GE(fd, 0) << "file " << d << "/" << f << ": " << std::strerror(errno);
      ::close(fd);
    }
  }
  EXPECT_LT(OpenFds(), 2000) << "the delta keeps an fd per object";
  struct stat st;
  for (int d = 0; d < 25; ++d) {
    for (int f = 0; f < kFiles / 25; f += 97) {
      ASSERT_EQ(::stat(m->mnt("d" + std::to_string(d) + "/f" + std::to_string(f)).c_str(), &st), 0);
    }
  }
  auto changes = m->fs().DeltaChanges();
  ASSERT_TRUE(changes.ok());
  EXPECT_EQ(changes->changes.size(), static_cast<size_t>(kFiles + 25));
  EXPECT_EQ(changes->delta_inodes, kFiles + 25);
}

}  // namespace
}  // namespace agentfense::fs::testing
