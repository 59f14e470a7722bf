#include "store/codebase_files.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "store/md5.h"
#include "store/test_util.h"

namespace agentfense::store {
namespace {

using testing::TempDir;

constexpr char kCb[] = "cb_00000000000000aa";

struct Config {
  ResolveMode resolve;
  bool tmpfile;
};

std::string ConfigName(const ::testing::TestParamInfo<Config>& info) {
  return std::string(info.param.resolve == ResolveMode::kOpenat2 ? "Openat2" : "Walk") +
         (info.param.tmpfile ? "Tmpfile" : "NamedTemp");
}

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

class CodebaseFilesTest : public ::testing::TestWithParam<Config> {
 protected:
  void SetUp() override { Open(); }
  void Open(int64_t max_file = 0, size_t max_list = 100000) {
    files_.reset();
    CodebaseFilesOptions opt;
    opt.root = dir_.Sub("store");
    opt.resolve_mode = GetParam().resolve;
    opt.use_o_tmpfile = GetParam().tmpfile;
    opt.sync_uploads = GetParam().tmpfile;  // half the configurations flush each upload
    opt.max_file_bytes = max_file;
    opt.max_list_entries = max_list;
    auto f = CodebaseFiles::Open(opt);
    ASSERT_TRUE(f.ok()) << f.error().ToString();
    files_ = std::move(*f);
    auto st = files_->CreateCodebase(kCb);
    ASSERT_TRUE(st.ok() || st.error().code() == ErrorCode::kAlreadyExists);
  }
  std::string CbPath(const std::string& rel = "") const {
    return dir_.Sub("store/") + kCb + (rel.empty() ? "" : "/" + rel);
  }
  Result<UploadResult> Upload(const std::string& rel, std::string_view data, mode_t mode = 0644) {
    AF_ASSIGN_OR_RETURN(auto w,
                        files_->BeginUpload(kCb, rel, static_cast<int64_t>(data.size()), mode));
    // Chunks of 7 bytes: MD5 and writes must not depend on chunk boundaries.
    for (size_t i = 0; i < data.size(); i += 7) AF_RETURN_IF_ERROR(w->Write(data.substr(i, 7)));
    return w->Commit();
  }

  TempDir dir_;
  std::unique_ptr<CodebaseFiles> files_;
};

TEST_P(CodebaseFilesTest, RootIsPrivateAndStagingIsOutsideCodebases) {
  struct stat st;
  ASSERT_EQ(stat(dir_.Sub("store").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0700u);
  EXPECT_TRUE(std::filesystem::is_directory(dir_.Sub("store/.staging")));
  EXPECT_EQ(CountEntries(CbPath()), 0u);
  EXPECT_EQ(files_->CreateCodebase(kCb).error().code(), ErrorCode::kAlreadyExists);
  EXPECT_EQ(files_->CreateCodebase("cb_..").error().code(), ErrorCode::kNotFound);  // malformed id
  EXPECT_EQ(*files_->CodebasePath(kCb), CbPath());
}

TEST_P(CodebaseFilesTest, UploadLandsWithModeChecksumAndDelta) {
  auto r = Upload("src/tool.sh", "#!/bin/sh\necho hi\n", 0755);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->path, "src/tool.sh");
  EXPECT_EQ(r->size, 18);
  EXPECT_EQ(r->md5_hex, Md5Hex("#!/bin/sh\necho hi\n"));
  EXPECT_EQ(r->delta.bytes, 18);
  EXPECT_EQ(r->delta.files, 1);
  EXPECT_EQ(ReadAll(CbPath("src/tool.sh")), "#!/bin/sh\necho hi\n");
  struct stat st;
  ASSERT_EQ(stat(CbPath("src/tool.sh").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);

  // Overwrite with a smaller file: size delta is the difference, file count unchanged.
  r = Upload("src/tool.sh", "short", 0600);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->delta.bytes, 5 - 18);
  EXPECT_EQ(r->delta.files, 0);
  ASSERT_EQ(stat(CbPath("src/tool.sh").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  // Mode 0 means 0644; owner rw is always kept.
  ASSERT_TRUE(Upload("a.txt", "x", 0).ok());
  ASSERT_EQ(stat(CbPath("a.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  ASSERT_TRUE(Upload("b.txt", "x", 0044).ok());
  ASSERT_EQ(stat(CbPath("b.txt").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0644u);
  // Empty file.
  r = Upload("empty", "");
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->md5_hex, "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(r->delta.files, 1);
  EXPECT_EQ(CountEntries(dir_.Sub("store/.staging")), 0u);  // nothing left behind
}

TEST_P(CodebaseFilesTest, DownloadStreamsRegularFiles) {
  std::string data;
  for (int i = 0; i < 200000; ++i) data += static_cast<char>('a' + i % 26);
  ASSERT_TRUE(Upload("d/data.bin", data).ok());
  auto reader = files_->OpenForDownload(kCb, "d/data.bin");
  ASSERT_TRUE(reader.ok()) << reader.error().ToString();
  EXPECT_EQ(reader->size(), 200000);
  std::string got;
  char buf[65536];
  while (true) {
    auto n = reader->Read(buf, sizeof buf);
    ASSERT_TRUE(n.ok());
    if (*n == 0) break;
    got.append(buf, *n);
  }
  EXPECT_EQ(got, data);
  EXPECT_EQ(files_->OpenForDownload(kCb, "d").error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(files_->OpenForDownload(kCb, "nope").error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(files_->OpenForDownload("cb_00000000000000bb", "d/data.bin").error().code(),
            ErrorCode::kNotFound);
}

TEST_P(CodebaseFilesTest, ListsFlatAndRecursiveSorted) {
  ASSERT_TRUE(Upload("README.md", "hello").ok());
  ASSERT_TRUE(Upload("src/app.py", "print(1)").ok());
  ASSERT_TRUE(Upload("src/lib/util.py", "x = 1").ok());
  auto flat = files_->List(kCb, "", false);
  ASSERT_TRUE(flat.ok()) << flat.error().ToString();
  ASSERT_EQ(flat->size(), 2u);
  EXPECT_EQ((*flat)[0].path, "README.md");
  EXPECT_EQ((*flat)[0].size, 5);
  EXPECT_FALSE((*flat)[0].is_dir);
  EXPECT_GT((*flat)[0].mtime_ns, 0);
  EXPECT_EQ((*flat)[1].path, "src");
  EXPECT_TRUE((*flat)[1].is_dir);
  EXPECT_EQ((*flat)[1].size, 0);

  auto all = files_->List(kCb, "", true);
  ASSERT_TRUE(all.ok());
  std::vector<std::string> paths;
  for (auto& e : *all) paths.push_back(e.path);
  EXPECT_EQ(paths, (std::vector<std::string>{"README.md", "src", "src/app.py", "src/lib",
                                             "src/lib/util.py"}));
  auto sub = files_->List(kCb, "src/", false);  // a trailing '/' is accepted for directories
  ASSERT_TRUE(sub.ok());
  ASSERT_EQ(sub->size(), 2u);
  EXPECT_EQ((*sub)[0].path, "src/app.py");
  EXPECT_EQ((*sub)[0].name, "app.py");
  auto one = files_->List(kCb, "src/app.py", true);
  ASSERT_TRUE(one.ok());
  ASSERT_EQ(one->size(), 1u);
  EXPECT_EQ((*one)[0].name, "app.py");
  EXPECT_EQ(files_->List(kCb, "missing", false).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(files_->List(kCb, "../", false).error().code(), ErrorCode::kInvalidArgument);
}

TEST_P(CodebaseFilesTest, ListIsBounded) {
  Open(0, /*max_list=*/10);
  for (int i = 0; i < 11; ++i) ASSERT_TRUE(Upload("f" + std::to_string(i), "x").ok());
  auto r = files_->List(kCb, "", false);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kResourceExhausted);
}

TEST_P(CodebaseFilesTest, MaxFileBytesIsEnforced) {
  Open(/*max_file=*/100);
  EXPECT_EQ(files_->BeginUpload(kCb, "big", 101, 0644).error().code(),
            ErrorCode::kResourceExhausted);
  auto w = files_->BeginUpload(kCb, "big", -1, 0644);  // hint unknown: enforced while writing
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Write(std::string(100, 'x')).ok());
  EXPECT_EQ((*w)->Write("y").error().code(), ErrorCode::kResourceExhausted);
  EXPECT_FALSE((*w)->Commit().ok());
  EXPECT_FALSE(std::filesystem::exists(CbPath("big")));
  EXPECT_EQ(CountEntries(dir_.Sub("store/.staging")), 0u);
}

TEST_P(CodebaseFilesTest, AbortAndDestructionLeaveNothing) {
  {
    auto w = files_->BeginUpload(kCb, "dir/partial.txt", 10, 0644);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Write("12345").ok());
  }  // destroyed without Commit: a client that disconnected
  auto w = files_->BeginUpload(kCb, "aborted.txt", 10, 0644);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Write("12345").ok());
  (*w)->Abort();
  (*w)->Abort();  // idempotent
  EXPECT_EQ((*w)->Commit().error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(CountEntries(CbPath()), 0u);  // not even the parent directory
  EXPECT_EQ(CountEntries(dir_.Sub("store/.staging")), 0u);
}

TEST_P(CodebaseFilesTest, RefusesToReplaceADirectoryOrWriteBelowAFile) {
  ASSERT_TRUE(Upload("d/x", "1").ok());
  auto r = Upload("d", "file over dir");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_TRUE(std::filesystem::is_directory(CbPath("d")));
  r = Upload("d/x/y", "below a file");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_EQ(ReadAll(CbPath("d/x")), "1");
  EXPECT_EQ(CountEntries(dir_.Sub("store/.staging")), 0u);
}

TEST_P(CodebaseFilesTest, DeleteAdjustsUsageAndMatchesComputeUsage) {
  int64_t bytes = 0, count = 0;
  auto apply = [&](const UsageDelta& d) {
    bytes += d.bytes;
    count += d.files;
  };
  for (const char* p : {"a.txt", "src/b.py", "src/c/d.py", "src/c/e/f.txt"}) {
    auto r = Upload(p, std::string(p) + "-content");
    ASSERT_TRUE(r.ok());
    apply(r->delta);
  }
  ASSERT_EQ(symlink("a.txt", CbPath("link").c_str()), 0);  // e.g. from a sandbox sync
  auto usage = files_->ComputeUsage(kCb);
  ASSERT_TRUE(usage.ok());
  EXPECT_EQ(usage->bytes, bytes);
  EXPECT_EQ(usage->files, count + 1);
  auto d = files_->Delete(kCb, "link", false);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->bytes, 0);
  EXPECT_EQ(d->files, -1);
  EXPECT_TRUE(std::filesystem::exists(CbPath("a.txt")));  // the link, not its target

  d = files_->Delete(kCb, "a.txt", false);
  ASSERT_TRUE(d.ok());
  apply(*d);
  EXPECT_EQ(files_->Delete(kCb, "a.txt", false).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(files_->Delete(kCb, "src", false).error().code(), ErrorCode::kFailedPrecondition);
  d = files_->Delete(kCb, "src/c", true);
  ASSERT_TRUE(d.ok()) << d.error().ToString();
  EXPECT_EQ(d->files, -2);
  apply(*d);
  usage = files_->ComputeUsage(kCb);
  EXPECT_EQ(usage->bytes, bytes);
  EXPECT_EQ(usage->files, count);
  EXPECT_EQ(count, 1);
  ASSERT_EQ(mkdir(CbPath("emptydir").c_str(), 0755), 0);
  d = files_->Delete(kCb, "emptydir", false);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->files, 0);
  EXPECT_EQ(files_->Delete(kCb, "", true).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(CountEntries(dir_.Sub("store/.staging")), 0u);
}

TEST_P(CodebaseFilesTest, DeleteCodebaseRemovesTheTree) {
  ASSERT_TRUE(Upload("a/b/c.txt", "x").ok());
  ASSERT_EQ(symlink("/", CbPath("a/root").c_str()), 0);
  ASSERT_TRUE(files_->DeleteCodebase(kCb).ok());
  EXPECT_FALSE(std::filesystem::exists(CbPath()));
  EXPECT_FALSE(files_->CodebaseExists(kCb));
  EXPECT_EQ(files_->DeleteCodebase(kCb).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(CountEntries(dir_.Sub("store/.staging")), 0u);
  EXPECT_TRUE(std::filesystem::exists("/etc/passwd"));  // the link was not followed
}

// A tree far deeper than PATH_MAX and than the fd limit we allow during removal.
TEST_P(CodebaseFilesTest, DeletesDeepTreesWithFewFds) {
  constexpr int kDepth = 1000;  // 11,000 bytes of path: beyond PATH_MAX
  {
    int raw = open(CbPath().c_str(), O_RDONLY | O_DIRECTORY);
    ASSERT_GE(raw, 0);
    UniqueFd cur(raw);
    for (int i = 0; i < kDepth; ++i) {
      ASSERT_EQ(mkdirat(cur.get(), "dddddddddd", 0755), 0);
      int f = openat(cur.get(), "file", O_CREAT | O_WRONLY | O_CLOEXEC, 0644);
      ASSERT_GE(f, 0);
      ASSERT_EQ(write(f, "abc", 3), 3);
      close(f);
      int next = openat(cur.get(), "dddddddddd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
      ASSERT_GE(next, 0);
      cur.Reset(next);
    }
  }
  struct rlimit old_limit;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &old_limit), 0);
  struct rlimit tight = old_limit;
  tight.rlim_cur = 64;  // well below the depth: recursion with an fd per level would fail
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &tight), 0);
  auto usage = files_->ComputeUsage(kCb);
  auto d = files_->Delete(kCb, "dddddddddd/dddddddddd", true);
  Status del = files_->DeleteCodebase(kCb);
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &old_limit), 0);
  ASSERT_TRUE(usage.ok()) << usage.error().ToString();
  EXPECT_EQ(usage->files, kDepth);
  EXPECT_EQ(usage->bytes, 3 * kDepth);
  ASSERT_TRUE(d.ok()) << d.error().ToString();
  EXPECT_EQ(d->files, -(kDepth - 2));
  EXPECT_EQ(d->bytes, -3 * (kDepth - 2));
  ASSERT_TRUE(del.ok()) << del.error().ToString();
  EXPECT_FALSE(std::filesystem::exists(CbPath()));
  EXPECT_EQ(CountEntries(dir_.Sub("store/.staging")), 0u);
}

TEST_P(CodebaseFilesTest, OpenSweepsLeftoversOfACrash) {
  const std::string staging = dir_.Sub("store/.staging/");
  { std::ofstream(staging + "up-stale") << "partial"; }
  { std::ofstream(staging + "up-fresh") << "in progress elsewhere"; }
  std::filesystem::create_directories(staging + "trash-0123/a/b");
  { std::ofstream(staging + "trash-0123/a/b/f") << "x"; }
  struct timespec old_times[2] = {{time(nullptr) - 7200, 0}, {time(nullptr) - 7200, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, (staging + "up-stale").c_str(), old_times, 0), 0);
  Open();
  EXPECT_FALSE(std::filesystem::exists(staging + "up-stale"));
  EXPECT_FALSE(std::filesystem::exists(staging + "trash-0123"));
  EXPECT_TRUE(std::filesystem::exists(staging + "up-fresh"));
}

TEST_P(CodebaseFilesTest, StreamsLargeUploadsWithoutBuffering) {
  struct rusage before;
  getrusage(RUSAGE_SELF, &before);
  auto w = files_->BeginUpload(kCb, "big.bin", 128 << 20, 0644);
  ASSERT_TRUE(w.ok());
  std::string chunk(64 << 10, '\0');
  Md5 md5;
  for (int i = 0; i < 2048; ++i) {  // 128 MiB in 64 KiB chunks, as clients send
    for (size_t j = 0; j < chunk.size(); j += 4096) chunk[j] = static_cast<char>(i + j);
    md5.Update(chunk);
    ASSERT_TRUE((*w)->Write(chunk).ok());
  }
  auto r = (*w)->Commit();
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  struct rusage after;
  getrusage(RUSAGE_SELF, &after);
  EXPECT_EQ(r->size, 128 << 20);
  EXPECT_EQ(r->md5_hex, md5.FinalHex());
  EXPECT_LT(after.ru_maxrss - before.ru_maxrss, 32 << 10);  // KiB: far less than the file
  EXPECT_EQ(std::filesystem::file_size(CbPath("big.bin")), 128u << 20);
}

INSTANTIATE_TEST_SUITE_P(Modes, CodebaseFilesTest,
                         ::testing::Values(Config{ResolveMode::kOpenat2, true},
                                           Config{ResolveMode::kWalk, true},
                                           Config{ResolveMode::kOpenat2, false},
                                           Config{ResolveMode::kWalk, false}),
                         ConfigName);

TEST(ResolveMode, ThisKernelHasOpenat2) {
  // Linux >= 5.6: if this fails on CI, every test above still ran the walk fallback.
  EXPECT_EQ(ProbeResolveMode(), ResolveMode::kOpenat2);
}

}  // namespace
}  // namespace agentfense::store
