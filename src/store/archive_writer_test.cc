// Archive uploads: the tar parser on its own, then extraction and publication into a real store,
// one test per hostile-archive case (SECURITY-NOTES §2.3 "Uploaded trees with links", A4).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "store/codebase_files.h"
#include "store/tar_reader.h"
#include "store/test_tar.h"
#include "store/test_util.h"

namespace agentfense::store {
namespace {

using testing::Tar;
using testing::TempDir;

constexpr char kCb[] = "cb_00000000000000ab";

// ---- the parser --------------------------------------------------------------------------------

struct Recorder : TarReader::Handler {
  std::vector<TarEntry> entries;
  std::vector<std::string> contents;
  int ends = 0;
  Status OnEntry(const TarEntry& e) override {
    entries.push_back(e);
    contents.emplace_back();
    return OkStatus();
  }
  Status OnData(std::string_view d) override {
    contents.back().append(d);
    return OkStatus();
  }
  Status OnEntryEnd() override {
    ++ends;
    return OkStatus();
  }
};

TEST(TarReaderTest, AnySplitGivesTheSameEntries) {
  std::string longname(150, 'n');
  std::string tar = Tar()
                        .Dir("./src/")
                        .File("./src/a.txt", "hello")
                        .File("big.bin", std::string(70000, 'x'), 0755)
                        .PaxPath("deep/" + longname)
                        .File("ignored-short-name", "long")
                        .Symlink("ln", "src/a.txt")
                        .End();
  for (size_t step : {size_t{1}, size_t{7}, size_t{512}, size_t{4096}, tar.size()}) {
    TarReader reader;
    Recorder rec;
    for (size_t i = 0; i < tar.size(); i += step) {
      ASSERT_TRUE(reader.Feed(std::string_view(tar).substr(i, step), rec).ok()) << step;
    }
    ASSERT_TRUE(reader.Finish().ok());
    ASSERT_EQ(rec.entries.size(), 5u);
    EXPECT_EQ(rec.ends, 5);
    EXPECT_EQ(rec.entries[0].type, TarEntryType::kDirectory);
    EXPECT_EQ(rec.entries[0].name, "./src/");
    EXPECT_EQ(rec.contents[1], "hello");
    EXPECT_EQ(rec.contents[2].size(), 70000u);
    EXPECT_EQ(rec.entries[2].mode, 0755u);
    EXPECT_EQ(rec.entries[3].name, "deep/" + longname);  // pax path wins over the header's name
    EXPECT_EQ(rec.entries[4].type, TarEntryType::kSymlink);
    EXPECT_EQ(rec.entries[4].linkname, "src/a.txt");
  }
}

TEST(TarReaderTest, TruncatedOrCorruptArchivesAreErrors) {
  std::string tar = Tar().File("a", std::string(1000, 'a')).End();
  {
    TarReader reader;
    Recorder rec;
    ASSERT_TRUE(reader.Feed(std::string_view(tar).substr(0, 700), rec).ok());
    EXPECT_FALSE(reader.Finish().ok());  // no end marker: truncated
  }
  {
    std::string bad = tar;
    bad[0] = 'b';  // the checksum no longer matches
    TarReader reader;
    Recorder rec;
    EXPECT_EQ(reader.Feed(bad, rec).error().code(), ErrorCode::kInvalidArgument);
    EXPECT_FALSE(reader.Feed("more", rec).ok());  // sticky
  }
  {
    TarReader reader;
    Recorder rec;
    EXPECT_FALSE(reader.Feed(std::string(512, 'z'), rec).ok());  // not a tar at all
  }
}

// ---- extraction into a real store ---------------------------------------------------------------

class ArchiveTest : public ::testing::TestWithParam<ResolveMode> {
 protected:
  void SetUp() override { Open(); }
  void Open(int64_t max_file = 0, int64_t max_entries = 1000000) {
    files_.reset();
    CodebaseFilesOptions opt;
    opt.root = dir_.Sub("store");
    opt.resolve_mode = GetParam();
    opt.max_file_bytes = max_file;
    opt.max_archive_entries = max_entries;
    auto f = CodebaseFiles::Open(opt);
    ASSERT_TRUE(f.ok()) << f.error().ToString();
    files_ = std::move(*f);
    auto st = files_->CreateCodebase(kCb);
    ASSERT_TRUE(st.ok() || st.error().code() == ErrorCode::kAlreadyExists);
  }
  std::string CbPath(const std::string& rel = "") const {
    return dir_.Sub("store/") + kCb + (rel.empty() ? "" : "/" + rel);
  }
  // Uploads `tar` in 1000-byte pieces and commits.
  Result<ArchiveResult> Upload(const std::string& tar) {
    AF_ASSIGN_OR_RETURN(auto w, files_->BeginArchive(kCb));
    for (size_t i = 0; i < tar.size(); i += 1000) {
      AF_RETURN_IF_ERROR(w->Write(std::string_view(tar).substr(i, 1000)));
    }
    return w->Commit();
  }
  std::vector<std::string> Tree() {
    std::vector<std::string> out;
    for (auto it = std::filesystem::recursive_directory_iterator(CbPath());
         it != std::filesystem::recursive_directory_iterator(); ++it) {
      out.push_back(std::filesystem::relative(it->path(), CbPath()).string());
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  size_t StagingEntries() {
    size_t n = 0;
    for ([[maybe_unused]] auto& e :
         std::filesystem::directory_iterator(dir_.Sub("store/.staging"))) {
      ++n;
    }
    return n;
  }
  static std::string ReadAll(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  // A refused archive: the error code, an untouched codebase and nothing left in staging.
  void ExpectRefused(const std::string& tar, ErrorCode code, const std::string& words) {
    auto before = Tree();
    auto r = Upload(tar);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code(), code) << r.error().ToString();
    EXPECT_NE(r.error().ToString().find(words), std::string::npos) << r.error().ToString();
    EXPECT_EQ(Tree(), before);
    EXPECT_EQ(StagingEntries(), 0u);
  }

  TempDir dir_;
  std::unique_ptr<CodebaseFiles> files_;
};

TEST_P(ArchiveTest, ExtractsFilesDirsModesAndCountsUsage) {
  std::string tar = Tar()
                        .Dir("./")
                        .Dir("./src/")
                        .File("./src/main.py", "print('hi')\n")
                        .File("./run.sh", "#!/bin/sh\n", 04755)
                        .Dir("./empty/")
                        .File("a/b/c/deep.txt", "deep")  // parents implied
                        .File("dup.txt", "first version, longer")
                        .File("dup.txt", "second")  // the last one wins
                        .HardLink("copy.txt", "./src/main.py")
                        .Symlink("src/link.py", "main.py")
                        .End();
  auto r = Upload(tar);
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(r->files, 6);  // main.py, run.sh, deep.txt, dup.txt twice, copy.txt
  EXPECT_EQ(r->symlinks, 1);
  EXPECT_EQ(ReadAll(CbPath("src/main.py")), "print('hi')\n");
  EXPECT_EQ(ReadAll(CbPath("dup.txt")), "second");
  EXPECT_EQ(ReadAll(CbPath("copy.txt")), "print('hi')\n");
  EXPECT_EQ(ReadAll(CbPath("a/b/c/deep.txt")), "deep");
  EXPECT_TRUE(std::filesystem::is_directory(CbPath("empty")));
  struct stat st, st2;
  ASSERT_EQ(::stat(CbPath("run.sh").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);  // exec bit kept, setuid stripped
  // The hard link became a copy: no inode is shared inside the store.
  ASSERT_EQ(::stat(CbPath("copy.txt").c_str(), &st), 0);
  ASSERT_EQ(::stat(CbPath("src/main.py").c_str(), &st2), 0);
  EXPECT_NE(st.st_ino, st2.st_ino);
  EXPECT_EQ(st.st_nlink, 1u);
  ASSERT_EQ(::lstat(CbPath("src/link.py").c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  // The usage delta is what a walk of the tree counts.
  auto usage = files_->ComputeUsage(kCb);
  ASSERT_TRUE(usage.ok());
  EXPECT_EQ(r->delta.bytes, usage->bytes);
  EXPECT_EQ(r->delta.files, usage->files);
  EXPECT_EQ(usage->files, 6);  // main.py run.sh deep.txt dup.txt copy.txt link.py
  EXPECT_EQ(StagingEntries(), 0u);
  // New top-level names are published whole: one changed path each.
  EXPECT_EQ(r->changed,
            (std::vector<std::string>{"a", "copy.txt", "dup.txt", "empty", "run.sh", "src"}));
}

TEST_P(ArchiveTest, MergesIntoAnExistingTreeWithExactUsage) {
  ASSERT_TRUE(Upload(Tar().File("keep.txt", "keep").File("src/old.py", "0123456789").End()).ok());
  auto r = Upload(Tar().File("src/old.py", "abc").File("src/new.py", "new").End());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(ReadAll(CbPath("keep.txt")), "keep");
  EXPECT_EQ(ReadAll(CbPath("src/old.py")), "abc");
  EXPECT_EQ(r->delta.bytes, 3 - 10 + 3);
  EXPECT_EQ(r->delta.files, 1);
  EXPECT_EQ(r->changed, (std::vector<std::string>{"src/new.py", "src/old.py"}));
}

TEST_P(ArchiveTest, AbsoluteNamesAreRefused) {
  ExpectRefused(Tar().File("ok.txt", "x").File("/etc/evil", "x").End(), ErrorCode::kInvalidArgument,
                "/etc/evil");
  EXPECT_FALSE(std::filesystem::exists("/etc/evil"));
}

TEST_P(ArchiveTest, DotDotNamesAreRefused) {
  ExpectRefused(Tar().File("a/../../escape.txt", "x").End(), ErrorCode::kInvalidArgument,
                "escape.txt");
  ExpectRefused(Tar().PaxPath("../escape.txt").File("x", "x").End(), ErrorCode::kInvalidArgument,
                "escape.txt");
  EXPECT_FALSE(std::filesystem::exists(dir_.Sub("store/escape.txt")));
  EXPECT_FALSE(std::filesystem::exists(dir_.Sub("escape.txt")));
}

TEST_P(ArchiveTest, SymlinksPointingOutsideAreRefused) {
  ExpectRefused(Tar().Symlink("creds", "/root/.aws/credentials").End(), ErrorCode::kInvalidArgument,
                "absolute");
  ExpectRefused(Tar().Symlink("a/b/up", "../../../etc").End(), ErrorCode::kInvalidArgument,
                "outside");
  // Inside the tree (even through ".."): stored as a link, never followed by the store.
  auto r = Upload(Tar().File("a/target", "t").Symlink("a/b/ok", "../target").End());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(std::filesystem::read_symlink(CbPath("a/b/ok")), "../target");
  // Directory names longer than a short string's inline buffer: the destination is worked out
  // from the link's parent, which must still be alive while it is.
  const std::string deep = "a_directory_name_longer_than_sso/another_long_directory_name";
  r = Upload(Tar().File(deep + "/target", "t").Symlink(deep + "/sub/ok", "../target").End());
  ASSERT_TRUE(r.ok()) << r.error().ToString();
  EXPECT_EQ(std::filesystem::read_symlink(CbPath(deep + "/sub/ok")), "../target");
}

TEST_P(ArchiveTest, HardLinksToOutsideNamesAreRefused) {
  ExpectRefused(Tar().HardLink("pw", "/etc/passwd").End(), ErrorCode::kInvalidArgument,
                "/etc/passwd");
  ExpectRefused(Tar().HardLink("pw", "../../etc/passwd").End(), ErrorCode::kInvalidArgument,
                "passwd");
  // A name the archive did not store (it may exist in the codebase, or the staging directory's
  // neighbours): refused too, the source must come from this archive.
  ASSERT_TRUE(Upload(Tar().File("existing.txt", "x").End()).ok());
  ExpectRefused(Tar().HardLink("alias", "existing.txt").End(), ErrorCode::kInvalidArgument,
                "stored earlier by this archive");
  // Through a symlink of the same archive: refused, the source is never reached through a link.
  ExpectRefused(Tar().File("d/f", "x").Symlink("l", "d").HardLink("alias", "l/f").End(),
                ErrorCode::kInvalidArgument, "stored earlier by this archive");
}

TEST_P(ArchiveTest, DeviceNodesAndFifosAreRefused) {
  ExpectRefused(Tar().Special("null", '3').End(), ErrorCode::kInvalidArgument, "device");
  ExpectRefused(Tar().Special("sda", '4').End(), ErrorCode::kInvalidArgument, "device");
  ExpectRefused(Tar().Special("pipe", '6').End(), ErrorCode::kInvalidArgument, "FIFO");
  ExpectRefused(Tar().Special("sparse", 'S').End(), ErrorCode::kInvalidArgument, "unsupported");
}

TEST_P(ArchiveTest, ADirectoryCannotBeSwappedForASymlink) {
  // CVE-2021-32803 shape: a directory, then a link of the same name to somewhere else, then a
  // file "inside" the directory that would land wherever the link points.
  TempDir outside;
  ExpectRefused(Tar().Dir("d").Symlink("d", outside.path()).File("d/x", "x").End(),
                ErrorCode::kInvalidArgument, "absolute");
  ExpectRefused(Tar().Dir("d").File("e/keep", "k").Symlink("d", "e").File("d/x", "x").End(),
                ErrorCode::kFailedPrecondition, "would replace a directory");
  // The link first, then entries through it: never written through the link.
  ExpectRefused(Tar().Dir("e").Symlink("d", "e").File("d/x", "x").End(),
                ErrorCode::kInvalidArgument, "symbolic link");
  ExpectRefused(Tar().Dir("e").Symlink("d", "e").Dir("d/sub").End(), ErrorCode::kInvalidArgument,
                "symbolic link");
  EXPECT_FALSE(std::filesystem::exists(outside.Sub("x")));
  // The codebase already holds a link (a sandbox's sync can store one): an archive directory of
  // that name is refused, not merged through the link.
  ASSERT_TRUE(Upload(Tar().Dir("real").Symlink("via", "real").End()).ok());
  ExpectRefused(Tar().File("via/x", "x").End(), ErrorCode::kFailedPrecondition, "symbolic link");
  EXPECT_FALSE(std::filesystem::exists(CbPath("real/x")));
}

TEST_P(ArchiveTest, ConflictsWithTheCodebaseChangeNothing) {
  ASSERT_TRUE(Upload(Tar().File("f", "file").Dir("d").End()).ok());
  // "a" would be new, but "d" as a file conflicts: the check pass runs before anything moves.
  ExpectRefused(Tar().File("a", "new").File("d", "x").End(), ErrorCode::kFailedPrecondition,
                "would replace a directory");
  ExpectRefused(Tar().File("a", "new").File("f/x", "x").End(), ErrorCode::kFailedPrecondition,
                "file");
  EXPECT_FALSE(std::filesystem::exists(CbPath("a")));
}

TEST_P(ArchiveTest, AHalfReceivedArchiveLeavesNothingVisible) {
  std::string tar = Tar().File("one.txt", "1").File("two.bin", std::string(100000, 'b')).End();
  {
    auto w = files_->BeginArchive(kCb);
    ASSERT_TRUE(w.ok());
    ASSERT_TRUE((*w)->Write(std::string_view(tar).substr(0, 50000)).ok());
    // The first file is complete in staging, but nothing is in the codebase.
    EXPECT_TRUE(Tree().empty());
    EXPECT_EQ(StagingEntries(), 1u);
  }  // the client went away: the writer is destroyed uncommitted
  EXPECT_TRUE(Tree().empty());
  EXPECT_EQ(StagingEntries(), 0u);
  // Closed early without the end marker: Commit refuses it.
  auto w = files_->BeginArchive(kCb);
  ASSERT_TRUE(w.ok());
  ASSERT_TRUE((*w)->Write(std::string_view(tar).substr(0, tar.size() - 1024)).ok());
  auto r = (*w)->Commit();
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.error().ToString().find("truncated"), std::string::npos);
  EXPECT_TRUE(Tree().empty());
  EXPECT_EQ(StagingEntries(), 0u);
}

TEST_P(ArchiveTest, LimitsOnEntriesAndSizes) {
  Open(/*max_file=*/1000, /*max_entries=*/3);
  ExpectRefused(Tar().File("a", "a").File("b", "b").File("c", "c").File("d", "d").End(),
                ErrorCode::kResourceExhausted, "more than 3 entries");
  ExpectRefused(Tar().File("big", std::string(1001, 'x')).End(), ErrorCode::kResourceExhausted,
                "limit of 1000 bytes");
  ASSERT_TRUE(Upload(Tar().File("a", "a").File("b", "b").File("c", "c").End()).ok());
}

TEST_P(ArchiveTest, UnknownCodebaseIsNotFound) {
  auto w = files_->BeginArchive("cb_00000000000000ff");
  ASSERT_FALSE(w.ok());
  EXPECT_EQ(w.error().code(), ErrorCode::kNotFound);
}

INSTANTIATE_TEST_SUITE_P(Resolvers, ArchiveTest,
                         ::testing::Values(ResolveMode::kOpenat2, ResolveMode::kWalk),
                         [](const auto& param_info) {
                           return param_info.param == ResolveMode::kOpenat2 ? "Openat2" : "Walk";
                         });

}  // namespace
}  // namespace agentfense::store
