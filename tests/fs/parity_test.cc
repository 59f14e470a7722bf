// Parity suite (mergerfs style): the same syscall sequence runs on a native directory and on the
// mount (full-access policy); return values, errno, contents and metadata must be identical.
#include <dirent.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "fs_test_util.h"

namespace agentfense::fs::testing {
namespace {

// Records one line per syscall: "label -> value" or "label -> ERRNAME".
class Trace {
 public:
  explicit Trace(std::string root) : root_(std::move(root)) {}
  std::string P(std::string_view rel) const { return root_ + "/" + std::string(rel); }

  // For calls whose value is comparable (sizes, counts, 0).
  long V(const std::string& label, long ret) {
    int e = errno;
    lines_.push_back(label + " -> " + (ret < 0 ? std::string(strerrorname_np(e)) : std::to_string(ret)));
    errno = e;
    return ret;
  }
  // For calls returning an fd (numbers may differ): "ok" or the errno.
  int Fd(const std::string& label, int fd) {
    int e = errno;
    lines_.push_back(label + " -> " + (fd < 0 ? std::string(strerrorname_np(e)) : "fd"));
    return fd;
  }
  void Note(const std::string& s) { lines_.push_back(s); }
  void Stat(const std::string& label, const std::string& rel, bool times = false) {
    struct stat st;
    if (::lstat(P(rel).c_str(), &st) != 0) {
      Note(label + " stat -> " + strerrorname_np(errno));
      return;
    }
    FStatNote(label, st, times);
  }
  void FStat(const std::string& label, int fd, bool times = false) {
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      Note(label + " fstat -> " + strerrorname_np(errno));
      return;
    }
    FStatNote(label, st, times);
  }
  void Content(const std::string& label, const std::string& rel) {
    auto c = ReadFile(P(rel));
    Note(label + " content -> " + (c ? "[" + *c + "]" : std::string("unreadable")));
  }
  const std::vector<std::string>& lines() const { return lines_; }

 private:
  void FStatNote(const std::string& label, const struct stat& st, bool times) {
    char buf[256];
    std::snprintf(buf, sizeof(buf), " mode=%o size=%lld nlink=%lu blocks=%lld uid=%u gid=%u",
                  st.st_mode, static_cast<long long>(st.st_size),
                  static_cast<unsigned long>(st.st_nlink), static_cast<long long>(st.st_blocks),
                  st.st_uid, st.st_gid);
    std::string s = label + buf;
    if (times) {
      s += " mtime=" + std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
      s += " atime=" + std::to_string(st.st_atim.tv_sec) + "." + std::to_string(st.st_atim.tv_nsec);
    }
    lines_.push_back(s);
  }
  std::string root_;
  std::vector<std::string> lines_;
};

using Script = std::function<void(Trace&)>;

class ParityTest : public ::testing::Test {
 protected:
  void Run(const Script& script) {
    AF_REQUIRE_FUSE();
    TempDir native;
    auto m = MountedFs::Start(PresetPolicy("full-access"));
    ASSERT_NE(m, nullptr);
    Trace a(native.path()), b(m->mnt());
    script(a);
    script(b);
    ASSERT_EQ(a.lines().size(), b.lines().size());
    for (size_t i = 0; i < a.lines().size(); ++i) {
      EXPECT_EQ(a.lines()[i], b.lines()[i]) << "step " << i << " (native vs mount)";
    }
    // The same script on a delta-backed mount (docs/DELTA.md): same results, and the source
    // stays untouched (empty) until a commit.
    TempDir delta;
    FsOptions opts;
    opts.delta_dir = delta / "d";
    auto dm = MountedFs::Start(PresetPolicy("full-access"), opts);
    ASSERT_NE(dm, nullptr);
    Trace c(dm->mnt());
    script(c);
    ASSERT_EQ(a.lines().size(), c.lines().size());
    for (size_t i = 0; i < a.lines().size(); ++i) {
      EXPECT_EQ(a.lines()[i], c.lines()[i]) << "step " << i << " (native vs delta mount)";
    }
    DIR* dp = ::opendir(dm->src().c_str());
    ASSERT_NE(dp, nullptr);
    int entries = 0;
    while (dirent* de = ::readdir(dp)) {
      entries += std::strcmp(de->d_name, ".") != 0 && std::strcmp(de->d_name, "..") != 0;
    }
    ::closedir(dp);
    EXPECT_EQ(entries, 0) << "the delta mount wrote into its source";
  }
};

TEST_F(ParityTest, CreateOpenFlagCombinations) {
  Run([](Trace& t) {
    const int accs[] = {O_RDONLY, O_WRONLY, O_RDWR};
    const int extras[] = {0, O_CREAT, O_CREAT | O_EXCL, O_TRUNC, O_APPEND, O_CREAT | O_TRUNC,
                          O_CREAT | O_APPEND, O_TRUNC | O_APPEND};
    int i = 0;
    for (int acc : accs) {
      for (int extra : extras) {
        for (bool exists : {false, true}) {
          std::string name = "f" + std::to_string(i++);
          if (exists) WriteFile(t.P(name), "0123456789");
          std::string label = name + " flags=" + std::to_string(acc | extra) + " exists=" +
                              std::to_string(exists);
          int fd = t.Fd(label, ::open(t.P(name).c_str(), acc | extra | O_CLOEXEC, 0640));
          if (fd >= 0) {
            t.V(label + " write", ::write(fd, "abc", 3));
            t.V(label + " lseek", ::lseek(fd, 0, SEEK_CUR));
            char buf[32];
            t.V(label + " pread", ::pread(fd, buf, sizeof(buf), 0));
            t.FStat(label, fd);
            ::close(fd);
          }
          t.Content(label, name);
        }
      }
    }
  });
}

TEST_F(ParityTest, ReadWriteHolesAppendTruncate) {
  Run([](Trace& t) {
    int fd = t.Fd("create", ::open(t.P("a").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    ASSERT_GE(fd, 0);
    t.V("write", ::write(fd, "hello world", 11));
    t.V("pwrite mid", ::pwrite(fd, "HELLO", 5, 0));
    t.V("pwrite hole", ::pwrite(fd, "tail", 4, 1 << 20));
    t.FStat("after hole", fd);
    char buf[64] = {};
    t.V("pread in hole", ::pread(fd, buf, 16, 4096));
    t.Note(std::string("hole bytes zero -> ") + (std::all_of(buf, buf + 16, [](char c) { return c == 0; }) ? "yes" : "no"));
    t.V("seek data", ::lseek(fd, 0, SEEK_DATA));
    t.V("seek hole", ::lseek(fd, 0, SEEK_HOLE));
    t.V("ftruncate shrink", ::ftruncate(fd, 5));
    t.V("ftruncate grow", ::ftruncate(fd, 100));
    t.FStat("after truncates", fd);
    t.V("truncate path", ::truncate(t.P("a").c_str(), 3));
    t.V("pread after truncate", ::pread(fd, buf, sizeof(buf), 0));
    t.Note(std::string(buf, 3));
    ::close(fd);
    int ap = t.Fd("append open", ::open(t.P("a").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC));
    t.V("append write", ::write(ap, "XY", 2));
    t.V("append pos", ::lseek(ap, 0, SEEK_CUR));
    t.V("append pwrite", ::pwrite(ap, "Z", 1, 0));  // Linux: appends anyway
    ::close(ap);
    t.Content("final", "a");
    t.Stat("final", "a");
    t.V("excl on existing", ::open(t.P("a").c_str(), O_CREAT | O_EXCL | O_WRONLY, 0600));
    t.V("open missing", ::open(t.P("missing").c_str(), O_RDONLY));
    t.V("open file as dir", ::open(t.P("a/x").c_str(), O_RDONLY));
    t.V("O_DIRECTORY on file", ::open(t.P("a").c_str(), O_RDONLY | O_DIRECTORY));
  });
}

TEST_F(ParityTest, OffsetsBeyond4GiB) {
  Run([](Trace& t) {
    int fd = t.Fd("create", ::open(t.P("big").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    ASSERT_GE(fd, 0);
    const off_t off = (5LL << 30) + 123;
    t.V("pwrite 5GiB", ::pwrite(fd, "far", 3, off));
    t.FStat("big", fd);
    char buf[8] = {};
    t.V("pread 5GiB", ::pread(fd, buf, 3, off));
    t.Note(buf);
    t.V("lseek end", ::lseek(fd, 0, SEEK_END));
    t.V("seek data", ::lseek(fd, 0, SEEK_DATA));
    ::close(fd);
  });
}

TEST_F(ParityTest, RenameAndFlags) {
  Run([](Trace& t) {
    WriteFile(t.P("a"), "A");
    WriteFile(t.P("b"), "B");
    ::mkdir(t.P("d1").c_str(), 0755);
    ::mkdir(t.P("d2").c_str(), 0755);
    WriteFile(t.P("d2/x"), "X");
    ::mkdir(t.P("empty").c_str(), 0755);
    t.V("rename over file", ::rename(t.P("a").c_str(), t.P("b").c_str()));
    t.Content("b", "b");
    t.Stat("a gone", "a");
    WriteFile(t.P("c"), "C");
    t.V("noreplace existing", ::renameat2(AT_FDCWD, t.P("c").c_str(), AT_FDCWD, t.P("b").c_str(), RENAME_NOREPLACE));
    t.V("noreplace fresh", ::renameat2(AT_FDCWD, t.P("c").c_str(), AT_FDCWD, t.P("c2").c_str(), RENAME_NOREPLACE));
    t.V("exchange", ::renameat2(AT_FDCWD, t.P("b").c_str(), AT_FDCWD, t.P("c2").c_str(), RENAME_EXCHANGE));
    t.Content("b after exchange", "b");
    t.Content("c2 after exchange", "c2");
    t.V("exchange missing", ::renameat2(AT_FDCWD, t.P("b").c_str(), AT_FDCWD, t.P("nope").c_str(), RENAME_EXCHANGE));
    t.V("dir into itself", ::rename(t.P("d1").c_str(), t.P("d1/sub").c_str()));
    t.V("dir over nonempty", ::rename(t.P("d1").c_str(), t.P("d2").c_str()));
    t.V("dir over empty", ::rename(t.P("d1").c_str(), t.P("empty").c_str()));
    t.V("file over dir", ::rename(t.P("b").c_str(), t.P("d2").c_str()));
    t.V("dir over file", ::rename(t.P("d2").c_str(), t.P("b").c_str()));
    t.V("missing", ::rename(t.P("zzz").c_str(), t.P("yyy").c_str()));
    t.V("dir rename", ::rename(t.P("d2").c_str(), t.P("d3").c_str()));
    t.Content("moved child", "d3/x");
    t.Stat("old dir", "d2");
  });
}

TEST_F(ParityTest, LinksAndSymlinks) {
  Run([](Trace& t) {
    WriteFile(t.P("f"), "data");
    t.V("link", ::link(t.P("f").c_str(), t.P("g").c_str()));
    t.Stat("f", "f");
    t.Stat("g", "g");
    t.V("link existing", ::link(t.P("f").c_str(), t.P("g").c_str()));
    int fd = ::open(t.P("g").c_str(), O_WRONLY | O_APPEND);
    t.V("write via g", ::write(fd, "+", 1));
    ::close(fd);
    t.Content("f via link", "f");
    t.Stat("f after write", "f");
    t.V("unlink f", ::unlink(t.P("f").c_str()));
    t.Stat("g after unlink", "g");
    t.V("symlink", ::symlink("g", t.P("s").c_str()));
    t.V("symlink abs", ::symlink("/nonexistent/target", t.P("dangling").c_str()));
    char buf[256];
    ssize_t n = t.V("readlink", ::readlink(t.P("s").c_str(), buf, sizeof(buf)));
    t.Note(std::string(buf, static_cast<size_t>(std::max<ssize_t>(n, 0))));
    t.Stat("lstat s", "s");
    t.Content("through symlink", "s");
    struct stat st;
    t.V("stat dangling", ::stat(t.P("dangling").c_str(), &st));
    t.V("lstat dangling", ::lstat(t.P("dangling").c_str(), &st));
    t.V("symlink loop", ::symlink("loop", t.P("loop").c_str()));
    t.V("open loop", ::open(t.P("loop").c_str(), O_RDONLY));
    t.V("open nofollow", ::open(t.P("s").c_str(), O_RDONLY | O_NOFOLLOW));
    t.V("readlink on file", ::readlink(t.P("g").c_str(), buf, sizeof(buf)));
    t.V("link to dir", ::link(t.P(".").c_str(), t.P("dl").c_str()));
  });
}

TEST_F(ParityTest, DirectoriesAndListing) {
  Run([](Trace& t) {
    t.V("mkdir", ::mkdir(t.P("d").c_str(), 0750));
    t.V("mkdir existing", ::mkdir(t.P("d").c_str(), 0750));
    t.V("mkdir missing parent", ::mkdir(t.P("x/y").c_str(), 0750));
    t.Stat("d", "d");
    for (int i = 0; i < 50; ++i) WriteFile(t.P("d/e" + std::to_string(i)), "x");
    ::mkdir(t.P("d/sub").c_str(), 0755);
    t.Stat("d with subdir", "d");
    t.V("rmdir nonempty", ::rmdir(t.P("d").c_str()));
    t.V("rmdir file", ::rmdir(t.P("d/e1").c_str()));
    t.V("unlink dir", ::unlink(t.P("d/sub").c_str()));
    t.V("rmdir sub", ::rmdir(t.P("d/sub").c_str()));
    DIR* dp = ::opendir(t.P("d").c_str());
    std::vector<std::string> names;
    while (dirent* de = ::readdir(dp)) names.push_back(de->d_name);
    ::closedir(dp);
    std::sort(names.begin(), names.end());
    std::string joined;
    for (auto& n : names) joined += n + ",";
    t.Note("listing " + joined);
    for (int i = 0; i < 50; ++i) ::unlink(t.P("d/e" + std::to_string(i)).c_str());
    t.V("rmdir now empty", ::rmdir(t.P("d").c_str()));
    t.V("rmdir missing", ::rmdir(t.P("d").c_str()));
  });
}

TEST_F(ParityTest, DirectorySeekAndReaddirWhileModifying) {
  Run([](Trace& t) {
    ::mkdir(t.P("d").c_str(), 0755);
    std::set<std::string> original;
    for (int i = 0; i < 200; ++i) {
      std::string n = "n" + std::to_string(i);
      WriteFile(t.P("d/" + n), "x");
      original.insert(n);
    }
    DIR* dp = ::opendir(t.P("d").c_str());
    std::vector<std::string> first;
    for (int i = 0; i < 10; ++i) first.push_back(::readdir(dp)->d_name);
    long pos = ::telldir(dp);
    std::vector<std::string> after;
    for (int i = 0; i < 5; ++i) after.push_back(::readdir(dp)->d_name);
    ::seekdir(dp, pos);
    std::vector<std::string> again;
    for (int i = 0; i < 5; ++i) again.push_back(::readdir(dp)->d_name);
    t.Note(std::string("seekdir repeats -> ") + (after == again ? "yes" : "no"));
    // Modify while iterating: every original entry that is not removed is seen exactly once.
    for (int i = 0; i < 50; ++i) WriteFile(t.P("d/new" + std::to_string(i)), "y");
    std::multiset<std::string> seen(first.begin(), first.end());
    seen.insert(after.begin(), after.end());
    while (dirent* de = ::readdir(dp)) seen.insert(de->d_name);
    ::closedir(dp);
    bool all_once = true;
    for (const auto& n : original) all_once = all_once && seen.count(n) == 1;
    t.Note(std::string("originals seen once -> ") + (all_once ? "yes" : "no"));
    ::rewinddir(dp = ::opendir(t.P("d").c_str()));
    size_t count = 0;
    while (::readdir(dp) != nullptr) ++count;
    ::closedir(dp);
    t.V("count after", static_cast<long>(count));
  });
}

TEST_F(ParityTest, ChmodUtimens) {
  Run([](Trace& t) {
    WriteFile(t.P("f"), "x");
    ::mkdir(t.P("d").c_str(), 0755);
    t.V("chmod 600", ::chmod(t.P("f").c_str(), 0600));
    t.Stat("f", "f");
    t.V("chmod dir 700", ::chmod(t.P("d").c_str(), 0700));
    t.Stat("d", "d");
    struct timespec ts[2] = {{1000000000, 123456789}, {1100000000, 987654321}};
    t.V("utimensat", ::utimensat(AT_FDCWD, t.P("f").c_str(), ts, 0));
    t.Stat("f times", "f", true);
    ::symlink("f", t.P("s").c_str());
    struct timespec ls[2] = {{900000000, 1}, {900000001, 2}};
    t.V("utimensat nofollow", ::utimensat(AT_FDCWD, t.P("s").c_str(), ls, AT_SYMLINK_NOFOLLOW));
    t.Stat("s times", "s", true);
    t.Stat("f times unchanged", "f", true);
    int fd = ::open(t.P("f").c_str(), O_RDWR);
    struct timespec fs[2] = {{UTIME_OMIT, UTIME_OMIT}, {1200000000, 5}};
    t.V("futimens mtime only", ::futimens(fd, fs));
    t.FStat("after futimens", fd, true);
    t.V("fchmod", ::fchmod(fd, 0640));
    t.FStat("after fchmod", fd);
    ::close(fd);
    t.V("chmod missing", ::chmod(t.P("nope").c_str(), 0644));
  });
}

TEST_F(ParityTest, UserXattrs) {
  Run([](Trace& t) {
    WriteFile(t.P("f"), "x");
    const char* p = nullptr;
    std::string fp = t.P("f");
    p = fp.c_str();
    t.V("set", ::setxattr(p, "user.k", "v1", 2, 0));
    char buf[64] = {};
    t.V("get size", ::getxattr(p, "user.k", nullptr, 0));
    t.V("get", ::getxattr(p, "user.k", buf, sizeof(buf)));
    t.Note(buf);
    t.V("get small buffer", ::getxattr(p, "user.k", buf, 1));
    t.V("create existing", ::setxattr(p, "user.k", "v2", 2, XATTR_CREATE));
    t.V("replace missing", ::setxattr(p, "user.nope", "v", 1, XATTR_REPLACE));
    t.V("replace", ::setxattr(p, "user.k", "v22", 3, XATTR_REPLACE));
    t.V("set second", ::setxattr(p, "user.j", "", 0, 0));
    char list[256];
    ssize_t n = t.V("list", ::listxattr(p, list, sizeof(list)));
    std::vector<std::string> names;
    for (ssize_t i = 0; i < n;) {
      names.emplace_back(list + i);
      i += static_cast<ssize_t>(names.back().size()) + 1;
    }
    std::sort(names.begin(), names.end());
    std::string joined;
    for (auto& s : names) joined += s + ",";
    t.Note("names " + joined);
    t.V("get missing", ::getxattr(p, "user.none", buf, sizeof(buf)));
    t.V("remove", ::removexattr(p, "user.k"));
    t.V("remove missing", ::removexattr(p, "user.k"));
    ::mkdir(t.P("d").c_str(), 0755);
    t.V("set on dir", ::setxattr(t.P("d").c_str(), "user.d", "1", 1, 0));
    t.V("get on dir", ::getxattr(t.P("d").c_str(), "user.d", buf, sizeof(buf)));
  });
}

TEST_F(ParityTest, Fallocate) {
  Run([](Trace& t) {
    int fd = t.Fd("create", ::open(t.P("f").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644));
    t.V("fallocate", ::fallocate(fd, 0, 0, 1 << 20));
    t.FStat("allocated", fd);
    t.V("keep size", ::fallocate(fd, FALLOC_FL_KEEP_SIZE, 1 << 20, 1 << 20));
    t.FStat("keep size", fd);
    t.V("punch", ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 65536));
    t.FStat("punched", fd);
    t.V("seek hole", ::lseek(fd, 0, SEEK_HOLE));
    t.V("posix_fallocate", -::posix_fallocate(fd, 0, 3 << 20));
    t.FStat("posix", fd);
    ::close(fd);
  });
}

TEST_F(ParityTest, MmapSharedAndPrivate) {
  Run([](Trace& t) {
    WriteFile(t.P("m"), std::string(8192, 'a'));
    int fd = ::open(t.P("m").c_str(), O_RDWR);
    void* sh = ::mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    t.Note(std::string("mmap shared -> ") + (sh == MAP_FAILED ? strerrorname_np(errno) : "ok"));
    if (sh != MAP_FAILED) {
      std::memcpy(sh, "SHARED", 6);
      t.V("msync", ::msync(sh, 8192, MS_SYNC));
      ::munmap(sh, 8192);
    }
    void* pv = ::mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
    t.Note(std::string("mmap private -> ") + (pv == MAP_FAILED ? strerrorname_np(errno) : "ok"));
    if (pv != MAP_FAILED) {
      std::memcpy(static_cast<char*>(pv) + 100, "PRIVATE", 7);
      ::munmap(pv, 8192);
    }
    ::close(fd);
    auto c = ReadFile(t.P("m"));
    t.Note("head " + c->substr(0, 8) + " at100 " + c->substr(100, 7));
    int ro = ::open(t.P("m").c_str(), O_RDONLY);
    void* bad = ::mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, ro, 0);
    t.Note(std::string("shared write map of O_RDONLY -> ") + (bad == MAP_FAILED ? strerrorname_np(errno) : "mapped"));
    ::close(ro);
  });
}

TEST_F(ParityTest, MknodFifoAndStatfs) {
  Run([](Trace& t) {
    t.V("mkfifo", ::mkfifo(t.P("fifo").c_str(), 0600));
    t.Stat("fifo", "fifo");
    t.V("mkfifo existing", ::mkfifo(t.P("fifo").c_str(), 0600));
    t.V("unlink fifo", ::unlink(t.P("fifo").c_str()));
    t.V("access F_OK missing", ::access(t.P("fifo").c_str(), F_OK));
    WriteFile(t.P("f"), "x", 0644);
    t.V("access R", ::access(t.P("f").c_str(), R_OK));
    t.V("access W", ::access(t.P("f").c_str(), W_OK));
    t.V("access X", ::access(t.P("f").c_str(), X_OK));
    ::chmod(t.P("f").c_str(), 0755);
    t.V("access X after chmod", ::access(t.P("f").c_str(), X_OK));
  });
}

}  // namespace
}  // namespace agentfense::fs::testing
