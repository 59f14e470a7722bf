#include <fcntl.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "base/json_depth.h"
#include "base/mountinfo.h"
#include "base/path.h"
#include "base/result.h"
#include "base/unique_fd.h"
#include "base/worker_threads.h"

namespace agentfense {
namespace {

Result<int> Half(int x) {
  if (x % 2) return Error(ErrorCode::kInvalidArgument, "odd");
  return x / 2;
}

Result<int> Quarter(int x) {
  AF_ASSIGN_OR_RETURN(int h, Half(x));
  AF_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

Status CheckEven(int x) {
  AF_RETURN_IF_ERROR(Half(x));
  return OkStatus();
}

TEST(Result, PropagatesValuesAndErrors) {
  EXPECT_EQ(*Quarter(8), 2);
  auto r = Quarter(6);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument);
  EXPECT_TRUE(CheckEven(4).ok());
  EXPECT_FALSE(CheckEven(3).ok());
}

TEST(Error, ContextChainAndErrno) {
  Error e = Error::FromErrno(ENOENT, "openat x");
  e.With("loading rules");
  EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  EXPECT_EQ(e.ToErrno(), ENOENT);
  EXPECT_EQ(e.ToString(), "loading rules: openat x (No such file or directory)");
  EXPECT_EQ(Error(ErrorCode::kPermissionDenied, "no").ToErrno(), EACCES);
}

TEST(UniqueFd, ClosesOnDestructionAndMove) {
  int raw;
  {
    auto fd = OpenAt(AT_FDCWD, "/", O_PATH | O_DIRECTORY);
    ASSERT_TRUE(fd.ok());
    raw = fd->get();
    UniqueFd moved = std::move(*fd);
    EXPECT_EQ(moved.get(), raw);
    EXPECT_FALSE(fd->valid());
  }
  EXPECT_EQ(fcntl(raw, F_GETFD), -1);
}

TEST(UniqueFd, OpenAtRefusesSymlinkFinalComponent) {
  auto fd = OpenAt(AT_FDCWD, "/proc/self/exe", O_RDONLY);
  ASSERT_FALSE(fd.ok());
  EXPECT_EQ(fd.error().sys_errno(), ELOOP);
}

TEST(Path, NormalizeWorkspacePath) {
  EXPECT_EQ(*NormalizeWorkspacePath(""), "/");
  EXPECT_EQ(*NormalizeWorkspacePath("/"), "/");
  EXPECT_EQ(*NormalizeWorkspacePath("a//b/./c/"), "/a/b/c");
  EXPECT_EQ(*NormalizeWorkspacePath("/.env"), "/.env");
  EXPECT_FALSE(NormalizeWorkspacePath("/a/../b").ok());
  EXPECT_FALSE(NormalizeWorkspacePath(std::string("/a\0b", 4)).ok());
  EXPECT_FALSE(NormalizeWorkspacePath(std::string(5000, 'a')).ok());
  EXPECT_FALSE(NormalizeWorkspacePath("/" + std::string(256, 'a')).ok());
}

TEST(Path, ValidateRelativePath) {
  EXPECT_EQ(*ValidateRelativePath("src/app.py"), "src/app.py");
  EXPECT_EQ(*ValidateRelativePath("src/"), "src");
  EXPECT_EQ(*ValidateRelativePath("", true), "");
  // A leading '/' is the codebase root, never the host's.
  EXPECT_EQ(*ValidateRelativePath("/src/b.py"), "src/b.py");
  EXPECT_EQ(*ValidateRelativePath("/etc/passwd"), "etc/passwd");
  EXPECT_EQ(*ValidateRelativePath("/", true), "");
  for (const char* bad : {"", "/", "//etc", "/../x", "../x", "a/../b", "a//b", "./a", "a\\b",
                          "a/.", "//"}) {
    EXPECT_FALSE(ValidateRelativePath(bad).ok()) << bad;
  }
  EXPECT_FALSE(ValidateRelativePath(std::string("a\0b", 3)).ok());
}

TEST(Path, SplitJoinParent) {
  EXPECT_EQ(SplitPath("/a//b/c"), (std::vector<std::string_view>{"a", "b", "c"}));
  EXPECT_EQ(JoinWorkspacePath("/", "a"), "/a");
  EXPECT_EQ(JoinWorkspacePath("/a", "b"), "/a/b");
  EXPECT_EQ(ParentPath("/a/b"), "/a");
  EXPECT_EQ(ParentPath("/a"), "/");
  EXPECT_EQ(ParentPath("/"), "/");
  EXPECT_EQ(BaseName("/a/b"), "b");
  EXPECT_EQ(BaseName("/a"), "a");
  EXPECT_EQ(BaseName("/"), "");
  EXPECT_EQ(JoinRelativePath("", "a"), "a");
  EXPECT_EQ(JoinRelativePath("a/b", "c"), "a/b/c");
  EXPECT_EQ(SplitRelativePath("a/b/c"), (std::pair<std::string, std::string>{"a/b", "c"}));
  EXPECT_EQ(SplitRelativePath("c"), (std::pair<std::string, std::string>{"", "c"}));
  EXPECT_TRUE(PathIsWithin("/a/b", "/a"));
  EXPECT_TRUE(PathIsWithin("/a", "/a"));
  EXPECT_TRUE(PathIsWithin("/a", "/"));
  EXPECT_FALSE(PathIsWithin("/ab", "/a"));
  EXPECT_FALSE(PathIsWithin("/a", "/a/b"));
}

TEST(Mountinfo, UnescapesOnlyWellFormedOctal) {
  EXPECT_EQ(UnescapeMountinfo("/with\\040space\\011tab"), "/with space\ttab");
  EXPECT_EQ(UnescapeMountinfo("/back\\134slash"), "/back\\slash");
  // Not an escape: kept as written rather than decoded into garbage.
  EXPECT_EQ(UnescapeMountinfo("/a\\9xy"), "/a\\9xy");
  EXPECT_EQ(UnescapeMountinfo("/a\\477"), "/a\\477");
  EXPECT_EQ(UnescapeMountinfo("/end\\04"), "/end\\04");
}

// NOLINTBEGIN(bugprone-unchecked-optional-access): every optional read here follows an
// ASSERT_TRUE on it, which ends the test when it is empty; the check does not model gtest.
TEST(Mountinfo, ParsesFieldsAroundOptionalOnes) {
  auto e = ParseMountinfoLine(
      "36 25 0:32 / /mnt/a\\040b rw,nosuid shared:1 master:2 - fuse.agentfense af rw,user_id=0");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->mount_point, "/mnt/a b");
  EXPECT_EQ(e->optional, (std::vector<std::string_view>{"shared:1", "master:2"}));
  EXPECT_EQ(e->fstype, "fuse.agentfense");
  auto bare = ParseMountinfoLine("1 0 0:1 / / rw");
  ASSERT_TRUE(bare);
  EXPECT_TRUE(bare->optional.empty());
  EXPECT_EQ(bare->fstype, "");
  EXPECT_FALSE(ParseMountinfoLine("1 0 0:1 /"));
  EXPECT_FALSE(ParseMountinfoLine(""));
}
// NOLINTEND(bugprone-unchecked-optional-access)

TEST(WorkerThreads, ReapsFinishedOnSpawnAndJoinsTheRest) {
  WorkerThreads workers;
  std::atomic<int> ran{0};
  // Each Spawn joins the workers that have finished: quick ones never pile up.
  for (int i = 0; i < 50; ++i) workers.Spawn([&] { ++ran; });
  for (int tries = 0; workers.size() > 1 && tries < 5000; ++tries) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    workers.Spawn([&] { ++ran; });
  }
  EXPECT_EQ(workers.size(), 1u);
  // JoinAll waits for one still running.
  std::atomic<bool> release{false};
  std::atomic<bool> finished{false};
  workers.Spawn([&] {
    while (!release.load()) std::this_thread::yield();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    finished = true;
  });
  release = true;
  workers.JoinAll();
  EXPECT_TRUE(finished.load());
  EXPECT_EQ(workers.size(), 0u);
  EXPECT_GE(ran.load(), 50);
}

TEST(JsonDepth, CountsOnlyStructureOutsideStrings) {
  EXPECT_TRUE(JsonNestingWithin(R"({"a":[1,{"b":2}]})", 3));
  EXPECT_FALSE(JsonNestingWithin(R"({"a":[1,{"b":2}]})", 2));
  EXPECT_TRUE(JsonNestingWithin(R"({"s":"[[[[\"{{{{"})", 1));
  EXPECT_FALSE(JsonNestingWithin(std::string(100000, '['), 64));
}

// protobuf's JSON parser accepts single-quoted strings: a lone '"' inside one must not make the
// guard believe the rest of the document is a string (found by tests/security).
TEST(JsonDepth, SingleQuotedStringsDoNotHideNesting) {
  std::string deep = R"({"name":'"',"x":)" + std::string(5000, '[') + std::string(5000, ']') + "}";
  EXPECT_FALSE(JsonNestingWithin(deep, 64));
  EXPECT_TRUE(JsonNestingWithin(R"({"s":"it's [[[[ fine"})", 1));
  EXPECT_TRUE(JsonNestingWithin(R"({'s':'say "[[[[" \' [[['})", 1));
}

TEST(JsonDepth, LeadingClosersBankNoCredit) {
  EXPECT_FALSE(JsonNestingWithin(std::string(100, ']') + std::string(100, '['), 64));
}

}  // namespace
}  // namespace agentfense
