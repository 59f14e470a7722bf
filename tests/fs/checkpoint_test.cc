// Real-mount tests of checkpoints of the delta (docs/CHECKPOINTS.md): checkpoint → change →
// restore round trips (files, directories, deletions, renames, modes, symlinks, hard links, an
// open writer), that a checkpoint never changes after it was taken and costs no copy of data,
// diffs, quotas, persistence across a remount and an interrupted restore, names, and planted
// symlinks that a restore must never follow.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <map>
#include <string>

#include "fs/delta.h"
#include "fs_test_util.h"

namespace agentfense::fs::testing {
namespace {

namespace stdfs = std::filesystem;

// The kernel sends RELEASE after close() returns, in the background: until it arrives the file
// still counts as open for writing, and a checkpoint copies it instead of linking it.
void WaitForRelease(MountedFs& m, const std::string& upper_path) {
  struct stat st;
  ASSERT_EQ(::lstat(upper_path.c_str(), &st), 0);
  for (int i = 0; i < 500; ++i) {
    Inode* n = m.fs().table().Find(st.st_dev, st.st_ino);
    const bool writing = n != nullptr && n->open_writers.load() > 0;
    if (n != nullptr) m.fs().table().Forget(n, 1);
    if (!writing) return;
    ::usleep(2000);
  }
  FAIL() << upper_path << " is still open for writing";
}

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    AF_REQUIRE_FUSE();
    ASSERT_EQ(::mkdir(src().c_str(), 0755), 0);
    ::mkdir((src() + "/src").c_str(), 0755);
    ::mkdir((src() + "/old").c_str(), 0755);
    WriteFile(src() + "/src/main.c", "int main() { return 0; }\n");
    WriteFile(src() + "/src/util.c", "util\n");
    WriteFile(src() + "/old/x", "x\n");
    WriteFile(src() + "/README", "readme\n");
    ::symlink("src/main.c", (src() + "/link").c_str());
  }
  std::string src() const { return dir_ / "source"; }
  std::string delta() const { return dir_ / "delta"; }
  std::unique_ptr<MountedFs> Mount(uint64_t quota_bytes = 0, size_t max_checkpoints = 100) {
    FsOptions o;
    o.delta_dir = delta();
    o.delta_quota_bytes = quota_bytes;
    o.max_checkpoints = max_checkpoints;
    return MountedFs::StartOn(src(), PresetPolicy("full-access"), o);
  }
  std::string Ckpt(const std::string& name, const std::string& rel) const {
    return delta() + "/checkpoints/" + name + "/upper" + rel;
  }
  TempDir dir_;
};

// Changes of every kind, applied through the mount.
void ChangeEverything(const std::string& m, const std::string& tag) {
  WriteFile(m + "/src/main.c", "int main() { return " + tag + "; }\n");
  WriteFile(m + "/new-" + tag, tag + "\n");
  ASSERT_EQ(::mkdir((m + "/dir-" + tag).c_str(), 0750), 0);
  WriteFile(m + "/dir-" + tag + "/inner", "inner " + tag + "\n", 0600);
  ASSERT_EQ(::chmod((m + "/README").c_str(), tag == "1" ? 0600 : 0640), 0);
  ::unlink((m + "/old/x").c_str());
  ::rmdir((m + "/old").c_str());
  ::unlink((m + "/link").c_str());
  ASSERT_EQ(::symlink(("target-" + tag).c_str(), (m + "/link").c_str()), 0);
  const std::string util = ::access((m + "/src/util.c").c_str(), F_OK) == 0 ? "/src/util.c"
                                                                             : "/src/util-1.c";
  ASSERT_EQ(::rename((m + util).c_str(), (m + "/src/util-" + tag + ".c").c_str()), 0);
}

TEST_F(CheckpointTest, RestoreGivesBackExactlyTheWorkspaceOfTheCheckpoint) {
  auto m = Mount();
  ChangeEverything(m->mnt(), "1");
  const auto at_c1 = Snapshot(m->mnt());
  auto c1 = m->fs().CreateCheckpoint("c1");
  ASSERT_TRUE(c1.ok()) << c1.error().ToString();
  EXPECT_GT(c1->files, 3);
  EXPECT_GE(c1->deletions, 2);

  // Everything changes again, including the files the checkpoint shares.
  WriteFile(m->mnt() + "/src/main.c", "int main() { return 2; }\n");
  WriteFile(m->mnt() + "/new-1", "overwritten\n");
  ASSERT_EQ(::chmod((m->mnt() + "/dir-1/inner").c_str(), 0644), 0);
  ASSERT_EQ(::unlink((m->mnt() + "/dir-1/inner").c_str()), 0);
  ASSERT_EQ(::rmdir((m->mnt() + "/dir-1").c_str()), 0);
  ASSERT_EQ(::unlink((m->mnt() + "/src/util-1.c").c_str()), 0);
  ASSERT_EQ(::unlink((m->mnt() + "/README").c_str()), 0);
  ASSERT_EQ(::mkdir((m->mnt() + "/README").c_str(), 0700), 0);  // a directory where a file was
  ASSERT_EQ(::unlink((m->mnt() + "/link").c_str()), 0);
  ASSERT_EQ(::mkdir((m->mnt() + "/link").c_str(), 0700), 0);
  ASSERT_EQ(::mkdir((m->mnt() + "/old").c_str(), 0700), 0);  // recreated: opaque
  ASSERT_EQ(::rename((m->mnt() + "/src").c_str(), (m->mnt() + "/src2").c_str()), 0);
  ASSERT_NE(Snapshot(m->mnt()), at_c1);
  // The checkpoint did not change with them.
  EXPECT_EQ(ReadFile(Ckpt("c1", "/src/main.c")), "int main() { return 1; }\n");
  EXPECT_EQ(ReadFile(Ckpt("c1", "/new-1")), "1\n");

  auto diff = m->fs().DiffCheckpoint("c1", "");
  ASSERT_TRUE(diff.ok()) << diff.error().ToString();
  std::map<std::string, ChangeKind> kinds;
  for (const auto& c : *diff) kinds[c.path] = c.kind;
  EXPECT_EQ(kinds["/new-1"], ChangeKind::kModified);
  EXPECT_EQ(kinds["/README"], ChangeKind::kModified);  // file → directory
  EXPECT_EQ(kinds.count("/dir-1"), 1u);
  EXPECT_EQ(kinds["/dir-1"], ChangeKind::kDeleted);
  EXPECT_EQ(kinds["/src2"], ChangeKind::kAdded);
  EXPECT_EQ(kinds["/src"], ChangeKind::kDeleted);

  auto r = m->fs().RestoreCheckpoint("c1");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(Snapshot(m->mnt()), at_c1);
  auto none = m->fs().DiffCheckpoint("c1", "");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty()) << none->front().path;

  // Writing after a restore never changes the checkpoint either: a second restore is exact too.
  WriteFile(m->mnt() + "/src/main.c", "int main() { return 3; }\n");
  ASSERT_EQ(::chmod((m->mnt() + "/new-1").c_str(), 0600), 0);
  EXPECT_EQ(ReadFile(Ckpt("c1", "/src/main.c")), "int main() { return 1; }\n");
  ASSERT_TRUE(m->fs().RestoreCheckpoint("c1").ok());
  EXPECT_EQ(Snapshot(m->mnt()), at_c1);
  // The source saw none of it.
  EXPECT_EQ(ReadFile(src() + "/src/main.c"), "int main() { return 0; }\n");
}

TEST_F(CheckpointTest, TakesNoCopyOfDataAndHidesItsLinks) {
  auto m = Mount();
  const std::string big(8 << 20, 'b');
  WriteFile(m->mnt() + "/big", big);
  WaitForRelease(*m, delta() + "/upper/big");
  struct stat before;
  ASSERT_EQ(::stat((m->mnt() + "/big").c_str(), &before), 0);
  ASSERT_TRUE(m->fs().CreateCheckpoint("c").ok());
  struct stat in_ckpt, shown;
  ASSERT_EQ(::lstat(Ckpt("c", "/big").c_str(), &in_ckpt), 0);
  ASSERT_EQ(::lstat((delta() + "/upper/big").c_str(), &shown), 0);
  EXPECT_EQ(in_ckpt.st_ino, shown.st_ino) << "the checkpoint links the delta's file";
  ASSERT_EQ(::stat((m->mnt() + "/big").c_str(), &shown), 0);
  EXPECT_EQ(shown.st_nlink, 1u) << "the checkpoint's link is not the agent's";
  EXPECT_EQ(shown.st_ino, before.st_ino);
  // The next write copies it first.
  int fd = ::open((m->mnt() + "/big").c_str(), O_WRONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::pwrite(fd, "X", 1, 0), 1);
  ::close(fd);
  ASSERT_EQ(::lstat((delta() + "/upper/big").c_str(), &shown), 0);
  EXPECT_NE(in_ckpt.st_ino, shown.st_ino);
  EXPECT_EQ(ReadFile(Ckpt("c", "/big")), big);
  EXPECT_EQ(ReadFile(m->mnt() + "/big")->substr(0, 2), "Xb");
}

TEST_F(CheckpointTest, ChangingCheckpointedFilesNeverWalksTheDeltaAgain) {
  auto m = Mount();
  for (const char* f : {"/a", "/b"}) {
    WriteFile(m->mnt() + f, "x\n");
    WaitForRelease(*m, delta() + "/upper" + f);
  }
  ASSERT_TRUE(m->fs().CreateCheckpoint("c").ok());
  struct stat st;
  ASSERT_EQ(::stat((m->mnt() + "/a").c_str(), &st), 0);  // linked twice: the index is walked
  EXPECT_EQ(st.st_nlink, 1u);
  const size_t walks = m->fs().link_index_stats(true).walks;
  ASSERT_EQ(walks, 1u);
  WriteFile(m->mnt() + "/a", "changed\n");  // unshared: its upper name leaves the index exactly
  ASSERT_EQ(::stat((m->mnt() + "/b").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 1u);
  ASSERT_EQ(::stat((m->mnt() + "/a").c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 1u);
  EXPECT_EQ(m->fs().link_index_stats(true).walks, walks) << "an unshare must not drop the index";
  EXPECT_EQ(ReadFile(Ckpt("c", "/a")), "x\n");
}

TEST_F(CheckpointTest, AWriterOpenAcrossTheCheckpointNeverChangesIt) {
  auto m = Mount();
  WriteFile(m->mnt() + "/log", "before\n");
  int fd = ::open((m->mnt() + "/log").c_str(), O_WRONLY | O_APPEND);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(m->fs().CreateCheckpoint("c").ok());
  ASSERT_EQ(::write(fd, "after\n", 6), 6);
  ::close(fd);
  EXPECT_EQ(ReadFile(m->mnt() + "/log"), "before\nafter\n");
  EXPECT_EQ(ReadFile(Ckpt("c", "/log")), "before\n");
  ASSERT_TRUE(m->fs().RestoreCheckpoint("c").ok());
  EXPECT_EQ(ReadFile(m->mnt() + "/log"), "before\n");
}

TEST_F(CheckpointTest, HardLinksOfTheAgentStayOneFileThroughCheckpointAndRestore) {
  auto m = Mount();
  WriteFile(m->mnt() + "/a", "shared\n");
  ASSERT_EQ(::link((m->mnt() + "/a").c_str(), (m->mnt() + "/b").c_str()), 0);
  ASSERT_TRUE(m->fs().CreateCheckpoint("c").ok());
  WriteFile(m->mnt() + "/a", "changed\n");
  EXPECT_EQ(ReadFile(m->mnt() + "/b"), "changed\n");
  ASSERT_TRUE(m->fs().RestoreCheckpoint("c").ok());
  EXPECT_EQ(ReadFile(m->mnt() + "/b"), "shared\n");
  WriteFile(m->mnt() + "/b", "again\n");
  EXPECT_EQ(ReadFile(m->mnt() + "/a"), "again\n") << "still one file under two names";
  struct stat a;
  ASSERT_EQ(::stat((m->mnt() + "/a").c_str(), &a), 0);
  EXPECT_EQ(a.st_nlink, 2u);
}

TEST_F(CheckpointTest, CheckpointsSurviveARemountAndAnInterruptedRestoreIsCompleted) {
  std::map<std::string, std::string> at_c;
  {
    auto m = Mount();
    ChangeEverything(m->mnt(), "1");
    at_c = Snapshot(m->mnt());
    ASSERT_TRUE(m->fs().CreateCheckpoint("c").ok());
    ChangeEverything(m->mnt(), "2");
  }
  {
    auto m = Mount();
    auto list = m->fs().ListCheckpoints();
    ASSERT_TRUE(list.ok());
    ASSERT_EQ(list->size(), 1u);
    EXPECT_EQ(list->front().name, "c");
    EXPECT_NE(Snapshot(m->mnt()), at_c);
  }
  // A crash right after the restore was recorded: the next open completes it.
  WriteFile(delta() + "/restore.pending", "c\n", 0600);
  auto m = Mount();
  EXPECT_EQ(Snapshot(m->mnt()), at_c);
  EXPECT_NE(::access((delta() + "/restore.pending").c_str(), F_OK), 0);
}

TEST_F(CheckpointTest, QuotasCountWhatOnlyCheckpointsHold) {
  auto m = Mount(/*quota_bytes=*/1 << 20);
  const std::string part(600 << 10, 'p');
  WriteFile(m->mnt() + "/f", part);
  WaitForRelease(*m, delta() + "/upper/f");
  auto c = m->fs().CreateCheckpoint("c");
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  // Rewriting the file needs a second copy: 1.2 MiB with the checkpoint's, past the quota.
  int fd = ::open((m->mnt() + "/f").c_str(), O_WRONLY);
  EXPECT_LT(fd, 0);
  EXPECT_EQ(errno, ENOSPC);
  if (fd >= 0) ::close(fd);
  auto changes = m->fs().DeltaChanges();
  ASSERT_TRUE(changes.ok());
  EXPECT_GE(changes->delta_bytes, 600 << 10);
  // Restoring under quota works, and so does writing once the checkpoint is gone.
  ASSERT_EQ(::unlink((m->mnt() + "/f").c_str()), 0);
  ASSERT_TRUE(m->fs().RestoreCheckpoint("c").ok());
  EXPECT_EQ(ReadFile(m->mnt() + "/f"), part);
  ASSERT_TRUE(m->fs().DeleteCheckpoint("c").ok());
  WriteFile(m->mnt() + "/f", std::string(900 << 10, 'q'));
  EXPECT_EQ(ReadFile(m->mnt() + "/f")->size(), 900u << 10);
}

TEST_F(CheckpointTest, NamesAreCheckedAndTheirNumberBounded) {
  auto m = Mount(0, /*max_checkpoints=*/3);
  for (const char* bad : {"", ".", "..", "a/b", "../x", ".hidden", "-x", "a b", "a\nb"}) {
    auto r = m->fs().CreateCheckpoint(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument) << bad;
  }
  EXPECT_EQ(m->fs().CreateCheckpoint(std::string("a\0b", 3)).error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(m->fs().CreateCheckpoint(std::string(65, 'a')).error().code(),
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(m->fs().RestoreCheckpoint("../../etc").error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(m->fs().RestoreCheckpoint("nope").error().code(), ErrorCode::kNotFound);
  ASSERT_TRUE(m->fs().CreateCheckpoint(std::string(64, 'a')).ok());
  ASSERT_TRUE(m->fs().CreateCheckpoint("b").ok());
  EXPECT_EQ(m->fs().CreateCheckpoint("b").error().code(), ErrorCode::kAlreadyExists);
  ASSERT_TRUE(m->fs().CreateCheckpoint("c").ok());
  EXPECT_EQ(m->fs().CreateCheckpoint("d").error().code(), ErrorCode::kResourceExhausted);
  ASSERT_TRUE(m->fs().DeleteCheckpoint("b").ok());
  EXPECT_TRUE(m->fs().CreateCheckpoint("d").ok());
}

TEST_F(CheckpointTest, PlantedSymlinksAreRestoredAsLinksAndNeverFollowed) {
  TempDir outside;
  WriteFile(outside / "victim", "host file\n");
  ::mkdir((outside / "dir").c_str(), 0755);
  auto m = Mount();
  ASSERT_EQ(::mkdir((m->mnt() + "/d").c_str(), 0755), 0);
  WriteFile(m->mnt() + "/d/f", "mine\n");
  ASSERT_EQ(::symlink((outside / "victim").c_str(), (m->mnt() + "/to-victim").c_str()), 0);
  ASSERT_TRUE(m->fs().CreateCheckpoint("c").ok());
  const auto at_c = Snapshot(m->mnt());
  // The directory is swapped for a link to a host directory, the link for a file.
  ASSERT_EQ(::unlink((m->mnt() + "/d/f").c_str()), 0);
  ASSERT_EQ(::rmdir((m->mnt() + "/d").c_str()), 0);
  ASSERT_EQ(::symlink((outside / "dir").c_str(), (m->mnt() + "/d").c_str()), 0);
  ASSERT_EQ(::unlink((m->mnt() + "/to-victim").c_str()), 0);
  WriteFile(m->mnt() + "/to-victim", "replaced\n");
  ASSERT_TRUE(m->fs().RestoreCheckpoint("c").ok());
  EXPECT_EQ(Snapshot(m->mnt()), at_c);
  EXPECT_EQ(ReadFile(outside / "victim"), "host file\n");
  EXPECT_TRUE(stdfs::is_empty(outside / "dir")) << "nothing was created through the link";
  auto diff = m->fs().DiffCheckpoint("c", "");
  ASSERT_TRUE(diff.ok());
  EXPECT_TRUE(diff->empty());
}

}  // namespace
}  // namespace agentfense::fs::testing
