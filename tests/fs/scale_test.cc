// Scale: a tree far larger than the process fd limit (20,000 here) is walked without EMFILE,
// because inodes are reached through file handles and a bounded fd cache.
#include <fcntl.h>
#include <ftw.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <string>

#include "fs_test_util.h"

namespace agentfense::fs::testing {
namespace {

TEST(Scale, HundredThousandFilesWalkedWithoutEmfile) {
  AF_REQUIRE_FUSE();
  FsOptions opts;
  opts.fd_cache_capacity = 1024;
  auto m = MountedFs::Start(PresetPolicy("read-only"), opts);
  ASSERT_NE(m, nullptr);
  constexpr int kDirs = 100, kPerDir = 1000;
  for (int d = 0; d < kDirs; ++d) {
    std::string dir = m->src("d" + std::to_string(d));
    ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
    for (int f = 0; f < kPerDir; ++f) {
      int fd = ::open((dir + "/f" + std::to_string(f)).c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
      ASSERT_GE(fd, 0);
      ::close(fd);
    }
  }
  struct rlimit rl;
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &rl), 0);
  // find(1) in a child process: it stats every entry (readdirplus + lookups).
  std::string cmd = "find " + m->mnt() + " -type f | wc -l";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  long count = 0;
  ASSERT_EQ(std::fscanf(p, "%ld", &count), 1);
  EXPECT_EQ(::pclose(p), 0);
  EXPECT_EQ(count, kDirs * kPerDir);
  // And an in-process walk that lstat()s every file.
  static long seen = 0;
  seen = 0;
  ASSERT_EQ(::nftw(m->mnt().c_str(),
                   [](const char*, const struct stat*, int type, struct FTW*) {
                     if (type == FTW_F) ++seen;
                     return 0;
                   },
                   32, FTW_PHYS),
            0);
  EXPECT_EQ(seen, kDirs * kPerDir);
  EXPECT_LE(m->fs().table().cached_fds(), opts.fd_cache_capacity);
  RecordProperty("fd_limit", static_cast<int>(rl.rlim_cur));
  RecordProperty("known_inodes", static_cast<int>(m->fs().known_inodes()));
}

}  // namespace
}  // namespace agentfense::fs::testing
