// Hostile inputs and hostile trees against the codebase store (SECURITY-NOTES §2.1(a)(e)(k),
// §2.3): traversal names, planted symlinks, FIFOs, setuid bits, racing uploads, crashes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>
#include <thread>

#include "store/codebase_files.h"
#include "store/md5.h"
#include "store/test_util.h"

namespace agentfense::store {
namespace {

using testing::TempDir;

constexpr char kCb[] = "cb_00000000000000cc";

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

size_t CountEntries(const std::string& dir) {
  size_t n = 0;
  for ([[maybe_unused]] auto& e : std::filesystem::directory_iterator(dir)) ++n;
  return n;
}

struct FileId {
  dev_t dev;
  ino_t ino;
  off_t size;
  struct timespec mtime;
};

FileId Id(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(lstat(path.c_str(), &st), 0) << path;
  return {st.st_dev, st.st_ino, st.st_size, st.st_mtim};
}

bool Same(const FileId& a, const FileId& b) {
  return a.dev == b.dev && a.ino == b.ino && a.size == b.size && a.mtime.tv_sec == b.mtime.tv_sec &&
         a.mtime.tv_nsec == b.mtime.tv_nsec;
}

class CodebaseAttackTest : public ::testing::TestWithParam<ResolveMode> {
 protected:
  void SetUp() override {
    Open(true);
    std::filesystem::create_directories(Outside());
    std::ofstream(Outside() + "/secret") << "TOP SECRET";
  }
  void Open(bool tmpfile) {
    files_.reset();
    CodebaseFilesOptions opt;
    opt.root = dir_.Sub("store");
    opt.resolve_mode = GetParam();
    opt.use_o_tmpfile = tmpfile;
    auto f = CodebaseFiles::Open(opt);
    ASSERT_TRUE(f.ok()) << f.error().ToString();
    files_ = std::move(*f);
    if (!files_->CodebaseExists(kCb)) {
      ASSERT_TRUE(files_->CreateCodebase(kCb).ok());
    }
  }
  std::string CbPath(const std::string& rel = "") const {
    return dir_.Sub("store/") + kCb + (rel.empty() ? "" : "/" + rel);
  }
  std::string Outside() const { return dir_.Sub("outside"); }
  Result<UploadResult> Upload(const std::string& rel, std::string_view data, mode_t mode = 0644) {
    AF_ASSIGN_OR_RETURN(auto w, files_->BeginUpload(kCb, rel, -1, mode));
    AF_RETURN_IF_ERROR(w->Write(data));
    return w->Commit();
  }

  TempDir dir_;
  std::unique_ptr<CodebaseFiles> files_;
};

TEST_P(CodebaseAttackTest, TraversalNamesAreRejected) {
  const std::vector<std::string> bad = {"../x",
                                        "//abs",
                                        "/../x",
                                        "a/../../b",
                                        "a//b",
                                        "..",
                                        ".",
                                        "./a",
                                        "a/./b",
                                        "a/..",
                                        "",
                                        "x/",
                                        std::string("a\0b", 3),
                                        "a\\..\\b",
                                        "..\\x",
                                        std::string(4097, 'a'),
                                        std::string(256, 'n'),
                                        "a/" + std::string(256, 'n')};
  for (const std::string& p : bad) {
    auto w = files_->BeginUpload(kCb, p, 1, 0644);
    ASSERT_FALSE(w.ok()) << "accepted upload path: " << p;
    EXPECT_EQ(w.error().code(), ErrorCode::kInvalidArgument) << p;
    EXPECT_FALSE(files_->OpenForDownload(kCb, p).ok()) << p;
    if (!p.empty()) {
      EXPECT_FALSE(files_->Delete(kCb, p, true).ok()) << p;
    }
  }
  for (const std::string& p :
       std::vector<std::string>{"../x", "//abs", "a//b", std::string("a\0b", 3)}) {
    EXPECT_EQ(files_->List(kCb, p, true).error().code(), ErrorCode::kInvalidArgument) << p;
  }
  // Ids are paths too: a malformed codebase id never reaches the filesystem.
  // (Malformed: NOT_FOUND, no codebase has such an id; empty: INVALID_ARGUMENT.)
  for (const char* id : {"../store", "cb_../../../etc", "cb_0000000000000000/..", ".staging", ""}) {
    const ErrorCode want = *id == '\0' ? ErrorCode::kInvalidArgument : ErrorCode::kNotFound;
    EXPECT_EQ(files_->BeginUpload(id, "a", 1, 0644).error().code(), want) << id;
    EXPECT_EQ(files_->List(id, "", true).error().code(), want) << id;
    EXPECT_EQ(files_->DeleteCodebase(id).error().code(), want) << id;
  }
  EXPECT_EQ(CountEntries(CbPath()), 0u);
  EXPECT_FALSE(std::filesystem::exists(dir_.Sub("x")));
  EXPECT_FALSE(std::filesystem::exists(dir_.Sub("store/x")));
}

TEST_P(CodebaseAttackTest, UploadThroughAPlantedDirectorySymlinkIsRefused) {
  // The brief's case: `ln -s /etc d` then upload d/passwd.
  ASSERT_EQ(symlink("/etc", CbPath("d").c_str()), 0);
  FileId passwd = Id("/etc/passwd");
  auto r = Upload("d/passwd", "root::0:0::/:/bin/sh\n");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(Same(passwd, Id("/etc/passwd")));
  EXPECT_FALSE(Upload("d/agentfense-should-not-exist", "x").ok());
  EXPECT_FALSE(std::filesystem::exists("/etc/agentfense-should-not-exist"));
  // Deeper: a link in the middle of a path whose tail does not exist yet (parents would be
  // created through it by a naive MkdirAll).
  ASSERT_EQ(symlink(Outside().c_str(), CbPath("o").c_str()), 0);
  EXPECT_FALSE(Upload("o/new/dir/file", "x").ok());
  EXPECT_FALSE(std::filesystem::exists(Outside() + "/new"));
  ASSERT_TRUE(Upload("real/f", "x").ok());
  ASSERT_EQ(symlink(Outside().c_str(), CbPath("real/o").c_str()), 0);
  EXPECT_FALSE(Upload("real/o/secret", "overwritten").ok());
  EXPECT_EQ(ReadAll(Outside() + "/secret"), "TOP SECRET");
  EXPECT_EQ(CountEntries(dir_.Sub("store/.staging")), 0u);
}

TEST_P(CodebaseAttackTest, UploadOntoASymlinkReplacesTheLinkNotItsTarget) {
  ASSERT_EQ(symlink((Outside() + "/secret").c_str(), CbPath("link").c_str()), 0);
  auto r = Upload("link", "new content");
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(ReadAll(Outside() + "/secret"), "TOP SECRET");
  struct stat st;
  ASSERT_EQ(lstat(CbPath("link").c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(r->delta.files, 0);  // replaced an entry
  EXPECT_EQ(r->delta.bytes, 11);
}

TEST_P(CodebaseAttackTest, UploadOntoAHardLinkDoesNotWriteThroughIt) {
  ASSERT_EQ(link((Outside() + "/secret").c_str(), CbPath("hl").c_str()), 0);
  ASSERT_TRUE(Upload("hl", "replaced").ok());
  EXPECT_EQ(ReadAll(Outside() + "/secret"), "TOP SECRET");
  EXPECT_EQ(ReadAll(CbPath("hl")), "replaced");
}

TEST_P(CodebaseAttackTest, DirectorySwappedForALinkBeforeCommitIsRefused) {
  ASSERT_TRUE(Upload("a/b/keep", "k").ok());
  auto w = files_->BeginUpload(kCb, "a/b/f", -1, 0644);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Write("payload").ok());
  // Between Begin and Commit the tree changes: a/b becomes a link out of the codebase.
  std::filesystem::rename(CbPath("a/b"), CbPath("a/b.moved"));
  ASSERT_EQ(symlink(Outside().c_str(), CbPath("a/b").c_str()), 0);
  auto r = (*w)->Commit();
  ASSERT_FALSE(r.ok());
  EXPECT_FALSE(std::filesystem::exists(Outside() + "/f"));
  EXPECT_EQ(CountEntries(dir_.Sub("store/.staging")), 0u);
}

TEST_P(CodebaseAttackTest, CodebaseDirectoryReplacedByALinkIsRefused) {
  std::filesystem::remove(CbPath());
  ASSERT_EQ(symlink(Outside().c_str(), CbPath().c_str()), 0);
  EXPECT_FALSE(files_->BeginUpload(kCb, "secret", -1, 0644).ok());
  EXPECT_FALSE(files_->OpenForDownload(kCb, "secret").ok());
  EXPECT_FALSE(files_->List(kCb, "", true).ok());
  EXPECT_FALSE(files_->ComputeUsage(kCb).ok());
  EXPECT_EQ(ReadAll(Outside() + "/secret"), "TOP SECRET");
}

TEST_P(CodebaseAttackTest, DownloadRefusesLinksToHostFiles) {
  ASSERT_EQ(symlink("/etc/shadow", CbPath("shadow").c_str()), 0);
  ASSERT_EQ(symlink("/etc", CbPath("etc").c_str()), 0);
  ASSERT_EQ(symlink((Outside() + "/secret").c_str(), CbPath("s").c_str()), 0);
  for (const char* p : {"shadow", "etc/shadow", "etc/passwd", "s"}) {
    auto r = files_->OpenForDownload(kCb, p);
    ASSERT_FALSE(r.ok()) << p;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument) << p;
  }
  // A relative link that stays inside is still a link: refused, not followed.
  ASSERT_TRUE(Upload("real.txt", "fine").ok());
  ASSERT_EQ(symlink("real.txt", CbPath("alias").c_str()), 0);
  EXPECT_FALSE(files_->OpenForDownload(kCb, "alias").ok());
  EXPECT_TRUE(files_->OpenForDownload(kCb, "real.txt").ok());
}

TEST_P(CodebaseAttackTest, ListDoesNotTraverseLinks) {
  ASSERT_TRUE(Upload("src/a.py", "1").ok());
  ASSERT_EQ(symlink("/", CbPath("root").c_str()), 0);
  ASSERT_EQ(symlink("/etc", CbPath("src/etc").c_str()), 0);
  auto all = files_->List(kCb, "", true);
  ASSERT_TRUE(all.ok()) << all.error().ToString();
  std::vector<std::string> paths;
  for (auto& e : *all) {
    paths.push_back(e.path);
    if (e.name == "root" || e.name == "etc") {
      EXPECT_TRUE(e.is_symlink);
      EXPECT_FALSE(e.is_dir);
    }
  }
  EXPECT_EQ(paths, (std::vector<std::string>{"root", "src", "src/a.py", "src/etc"}));
  EXPECT_FALSE(files_->List(kCb, "root", false).ok());  // listing *through* the link: refused
  EXPECT_FALSE(files_->List(kCb, "src/etc", true).ok());
  auto usage = files_->ComputeUsage(kCb);
  ASSERT_TRUE(usage.ok());
  EXPECT_EQ(usage->files, 3);  // a.py and two links; nothing of / or /etc
  EXPECT_EQ(usage->bytes, 1);
}

TEST_P(CodebaseAttackTest, FifoNeitherBlocksDownloadNorListNorDelete) {
  ASSERT_EQ(mkfifo(CbPath("pipe").c_str(), 0644), 0);
  ASSERT_EQ(mkdir(CbPath("d").c_str(), 0755), 0);
  ASSERT_EQ(mkfifo(CbPath("d/pipe2").c_str(), 0644), 0);
  // If anything opened the FIFO for reading without O_NONBLOCK it would hang here; the alarm
  // turns a hang into a failure instead of a stuck CI job.
  alarm(20);
  auto r = files_->OpenForDownload(kCb, "pipe");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kFailedPrecondition);
  auto all = files_->List(kCb, "", true);
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 3u);
  EXPECT_TRUE(files_->ComputeUsage(kCb).ok());
  auto d = files_->Delete(kCb, "pipe", false);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->files, -1);
  EXPECT_TRUE(files_->Delete(kCb, "d", true).ok());
  ASSERT_TRUE(Upload("pipe3", "x").ok());  // an upload never opens an existing FIFO either
  ASSERT_EQ(mkfifo(CbPath("pipe4").c_str(), 0644), 0);
  ASSERT_TRUE(Upload("pipe4", "replaces the fifo").ok());
  EXPECT_EQ(ReadAll(CbPath("pipe4")), "replaces the fifo");
  alarm(0);
}

TEST_P(CodebaseAttackTest, SetuidSetgidStickyAreStripped) {
  struct {
    mode_t in;
    mode_t out;
  } cases[] = {{04755, 0755}, {02755, 0755}, {01777, 0777}, {06777, 0777}, {0100644, 0644}};
  int i = 0;
  for (auto c : cases) {
    std::string name = "f" + std::to_string(i++);
    ASSERT_TRUE(Upload(name, "x", c.in).ok());
    struct stat st;
    ASSERT_EQ(lstat(CbPath(name).c_str(), &st), 0);
    EXPECT_TRUE(S_ISREG(st.st_mode));
    EXPECT_EQ(st.st_mode & 07777, c.out) << std::oct << c.in;
  }
}

TEST_P(CodebaseAttackTest, ConcurrentUploadsToOnePathLandOneWholeVersion) {
  constexpr int kWriters = 8;
  constexpr size_t kSize = 1 << 20;
  std::atomic<int> ok{0};
  std::vector<std::thread> threads;
  threads.reserve(kWriters);
  for (int t = 0; t < kWriters; ++t) {
    threads.emplace_back([&, t] {
      auto w = files_->BeginUpload(kCb, "shared/target.bin", kSize, 0644);
      if (!w.ok()) return;
      std::string chunk(64 << 10, static_cast<char>('A' + t));
      for (size_t n = 0; n < kSize; n += chunk.size()) {
        if (!(*w)->Write(chunk).ok()) return;
      }
      if ((*w)->Commit().ok()) ++ok;
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok.load(), kWriters);
  std::string got = ReadAll(CbPath("shared/target.bin"));
  ASSERT_EQ(got.size(), kSize);
  EXPECT_EQ(got.find_first_not_of(got[0]), std::string::npos) << "interleaved versions";
  EXPECT_EQ(CountEntries(CbPath("shared")), 1u);
  EXPECT_EQ(CountEntries(dir_.Sub("store/.staging")), 0u);
}

TEST_P(CodebaseAttackTest, ConcurrentUsageDeltasAddUpExactly) {
  // Writers overwrite and create files concurrently; the sum of the returned deltas must equal
  // what is on disk, or the codebase record drifts.
  std::atomic<int64_t> bytes{0}, count{0};
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 40; ++i) {
        std::string name = "f" + std::to_string(i % 7);
        std::string data(static_cast<size_t>(t * 100 + i), 'x');
        auto r = Upload(name, data);
        if (r.ok()) {
          bytes += r->delta.bytes;
          count += r->delta.files;
        }
        if (i % 5 == 0) {
          auto d = files_->Delete(kCb, "f" + std::to_string((i + t) % 7), false);
          if (d.ok()) {
            bytes += d->bytes;
            count += d->files;
          }
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  auto usage = files_->ComputeUsage(kCb);
  ASSERT_TRUE(usage.ok());
  EXPECT_EQ(usage->bytes, bytes.load());
  EXPECT_EQ(usage->files, count.load());
}

// A crash mid-upload (the server is SIGKILLed with the writer open) leaves no file at the path.
// With O_TMPFILE there is nothing at all; with named temp files the leftover lives only in
// .staging and is swept at the next start.
TEST_P(CodebaseAttackTest, CrashMidUploadLeavesNoFile) {
  for (bool tmpfile : {true, false}) {
    Open(tmpfile);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto w = files_->BeginUpload(kCb, "crash/file.bin", -1, 0644);
      if (!w.ok()) _exit(2);
      if (!(*w)->Write(std::string(1 << 20, 'z')).ok()) _exit(3);
      kill(getpid(), SIGKILL);  // no destructor, no Abort
      _exit(4);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFSIGNALED(status)) << status;
    EXPECT_FALSE(std::filesystem::exists(CbPath("crash")));
    const std::string staging = dir_.Sub("store/.staging");
    if (tmpfile) {
      EXPECT_EQ(CountEntries(staging), 0u);
    } else {
      ASSERT_EQ(CountEntries(staging), 1u);
      for (auto& e : std::filesystem::directory_iterator(staging)) {
        struct timespec old[2] = {{time(nullptr) - 7200, 0}, {time(nullptr) - 7200, 0}};
        ASSERT_EQ(utimensat(AT_FDCWD, e.path().c_str(), old, AT_SYMLINK_NOFOLLOW), 0);
      }
      Open(tmpfile);  // the restart
      EXPECT_EQ(CountEntries(staging), 0u);
    }
  }
}

TEST_P(CodebaseAttackTest, DeleteNeverFollowsLinks) {
  ASSERT_EQ(symlink(Outside().c_str(), CbPath("out").c_str()), 0);
  EXPECT_FALSE(files_->Delete(kCb, "out/secret", false).ok());
  auto d = files_->Delete(kCb, "out", true);  // removes the link itself
  ASSERT_TRUE(d.ok()) << d.error().ToString();
  EXPECT_EQ(ReadAll(Outside() + "/secret"), "TOP SECRET");
  ASSERT_TRUE(Upload("tree/a", "1").ok());
  ASSERT_EQ(symlink(Outside().c_str(), CbPath("tree/link").c_str()), 0);
  ASSERT_TRUE(files_->Delete(kCb, "tree", true).ok());
  ASSERT_EQ(symlink(Outside().c_str(), CbPath("last").c_str()), 0);
  ASSERT_TRUE(files_->DeleteCodebase(kCb).ok());
  EXPECT_EQ(ReadAll(Outside() + "/secret"), "TOP SECRET");
}

INSTANTIATE_TEST_SUITE_P(Modes, CodebaseAttackTest,
                         ::testing::Values(ResolveMode::kOpenat2, ResolveMode::kWalk),
                         [](const ::testing::TestParamInfo<ResolveMode>& param_info) {
                           return param_info.param == ResolveMode::kOpenat2 ? "Openat2" : "Walk";
                         });

}  // namespace
}  // namespace agentfense::store
