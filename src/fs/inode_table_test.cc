// InodeTable's map of (dev, ino) keys, without FUSE: every entry points at a live inode.
#include "fs/inode_table.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace agentfense::fs {
namespace {

class InodeTableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/af-inode-table-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    for (const char* name : {"a", "b", "c"}) std::ofstream(dir_ + "/" + name) << name;
    auto t = InodeTable::Create(UniqueFd(::open(dir_.c_str(), O_PATH | O_DIRECTORY)), 64);
    ASSERT_TRUE(t.ok()) << t.error().ToString();
    table_ = std::move(*t);
  }
  void TearDown() override {
    table_.reset();
    std::filesystem::remove_all(dir_);
  }

  struct Opened {
    UniqueFd fd;
    struct stat st {};
  };
  Opened Open(const std::string& name) {
    Opened o;
    o.fd = UniqueFd(::open((dir_ + "/" + name).c_str(), O_PATH | O_NOFOLLOW));
    EXPECT_TRUE(o.fd.valid());
    EXPECT_EQ(::fstat(o.fd.get(), &o.st), 0);
    return o;
  }
  Inode* Lookup(const std::string& name, bool upper) {
    Opened o = Open(name);
    auto n = table_->AddLookup(table_->root(), name, std::move(o.fd), o.st, upper);
    EXPECT_TRUE(n.ok());
    return n.ok() ? *n : nullptr;
  }

  std::string dir_;
  std::unique_ptr<InodeTable> table_;
};

// An inode reached under two keys (its own and, after a copy-up, its new object's) whose second
// key is taken over by another inode must leave no entry behind when it is freed. The supervisor
// once freed such an inode and kept its first key mapped to it: the next lookup of that object
// read freed memory (a sandbox swapping directories and symlinks while commits ran).
TEST_F(InodeTableTest, AFreedInodeLeavesNoKeyBehind) {
  Inode* first = Lookup("a", /*upper=*/false);
  ASSERT_NE(first, nullptr);
  Opened copy = Open("c");
  const struct stat a_st = Open("a").st;
  table_->SwitchBacking(first, std::move(copy.fd), copy.st, /*upper=*/true);

  // The same object as a source object: the alt key's entry goes to a new inode.
  Inode* other = Lookup("c", /*upper=*/false);
  ASSERT_NE(other, nullptr);
  EXPECT_NE(other, first);

  table_->Forget(first, 1);  // the kernel forgets it: freed
  EXPECT_EQ(table_->Find(a_st.st_dev, a_st.st_ino), nullptr);
  Inode* again = table_->Find(copy.st.st_dev, copy.st.st_ino);
  EXPECT_EQ(again, other);
  if (again != nullptr) table_->Forget(again, 1);

  Inode* fresh = Lookup("a", /*upper=*/false);  // a lookup after it meets no freed inode
  ASSERT_NE(fresh, nullptr);
  EXPECT_EQ(table_->PathOf(fresh), "/a");
}

// A key taken over by a new inode (an inode number reused by another object) leaves the old
// inode reachable by the kernel's node id, and freeing it does not unmap its successor.
TEST_F(InodeTableTest, FreeingAReplacedInodeKeepsItsSuccessor) {
  Inode* file = Lookup("b", /*upper=*/false);
  ASSERT_NE(file, nullptr);
  Inode* up = Lookup("b", /*upper=*/true);  // same key, other layer: a new inode takes the key
  ASSERT_NE(up, nullptr);
  ASSERT_NE(up, file);
  const struct stat st = Open("b").st;
  table_->Forget(file, 1);
  Inode* found = table_->Find(st.st_dev, st.st_ino);
  EXPECT_EQ(found, up);
  if (found != nullptr) table_->Forget(found, 1);
  EXPECT_EQ(table_->PathOf(up), "/b");
}

}  // namespace
}  // namespace agentfense::fs
