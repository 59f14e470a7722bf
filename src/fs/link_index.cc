#include "fs/link_index.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unordered_set>

namespace agentfense::fs {
namespace {

// Deeper than the inode table ever decides (its paths stop at 2048 levels: docs/FILESYSTEM.md).
constexpr size_t kMaxDepth = 4096;

bool Dots(const char* n) { return n[0] == '.' && (n[1] == '\0' || (n[1] == '.' && n[2] == '\0')); }

// `path` is `from` or beneath it: the rest after `from` ("" or "/..."), else nullopt.
std::optional<std::string_view> Beneath(std::string_view path, std::string_view from) {
  if (path.size() < from.size() || path.compare(0, from.size(), from) != 0) return std::nullopt;
  std::string_view rest = path.substr(from.size());
  if (!rest.empty() && rest[0] != '/') return std::nullopt;
  return rest;
}

}  // namespace

LinkIndex::LinkIndex(int root_fd, std::function<void()> changed,
                     std::chrono::milliseconds rescan_interval)
    : root_fd_(root_fd), changed_(std::move(changed)), rescan_interval_(rescan_interval) {}

void LinkIndex::Changed() {
  if (changed_) changed_();
}

bool LinkIndex::WalkLocked() {
  const auto start = std::chrono::steady_clock::now();
  std::unordered_map<Key, Entry, KeyHash> found;
  std::unordered_set<Key, KeyHash> dirs;  // visited directories: a bind mount cannot loop the walk
  struct Frame {
    DIR* dp;
    std::string path;  // "" for the root, else "/a/b"
  };
  std::vector<Frame> stack;
  bool complete = true;
  size_t walked = 0;
  // Takes `fd` (a directory); false when it could not be listed.
  auto push = [&](int fd, std::string path) {
    struct stat st;
    if (::fstat(fd, &st) != 0) {
      ::close(fd);
      return false;
    }
    if (!dirs.insert({st.st_dev, st.st_ino}).second) {
      ::close(fd);
      return true;
    }
    DIR* dp = ::fdopendir(fd);
    if (dp == nullptr) {
      ::close(fd);
      return false;
    }
    stack.push_back({dp, std::move(path)});
    return true;
  };
  // Only the tree's own mount is walked: a mount inside it (maybe this very FUSE mount, whose
  // only server is the thread running this walk) is never entered. statx with
  // AT_STATX_DONT_SYNC reports a mount point's mount id without asking its filesystem.
  constexpr int kStatx = AT_SYMLINK_NOFOLLOW | AT_STATX_DONT_SYNC;
  constexpr unsigned kWant = STATX_TYPE | STATX_NLINK | STATX_INO | STATX_MNT_ID;
  struct statx rst;
  const bool have_mnt = ::statx(root_fd_, "", AT_EMPTY_PATH | kStatx, kWant, &rst) == 0 &&
                        (rst.stx_mask & STATX_MNT_ID) != 0;
  int root = ::openat(root_fd_, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (root < 0 || !push(root, "")) complete = false;
  while (!stack.empty()) {
    DIR* dp = stack.back().dp;
    errno = 0;
    dirent* de = ::readdir(dp);
    if (de == nullptr) {
      if (errno != 0) complete = false;
      ::closedir(dp);
      stack.pop_back();
      continue;
    }
    if (Dots(de->d_name)) continue;
    ++walked;
    const unsigned char type = de->d_type;
    if (type != DT_DIR && type != DT_REG && type != DT_UNKNOWN) continue;
    const int dfd = ::dirfd(dp);
    struct statx sx;
    if (::statx(dfd, de->d_name, kStatx, kWant, &sx) != 0) {
      if (errno != ENOENT) complete = false;  // ENOENT: removed meanwhile
      continue;
    }
    if (have_mnt && sx.stx_mnt_id != rst.stx_mnt_id) continue;  // another mount: not the tree's
    std::string child = stack.back().path + "/" + de->d_name;
    if (S_ISREG(sx.stx_mode) && sx.stx_nlink > 1) {
      Entry& e = found[{makedev(sx.stx_dev_major, sx.stx_dev_minor), sx.stx_ino}];
      e.nlink = sx.stx_nlink;
      e.paths.push_back(std::move(child));
      continue;
    }
    if (!S_ISDIR(sx.stx_mode)) continue;
    if (stack.size() >= kMaxDepth) continue;
    int fd = ::openat(dfd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
      if (errno != ENOENT && errno != ENOTDIR) complete = false;  // else replaced meanwhile
      continue;
    }
    if (!push(fd, std::move(child))) complete = false;
  }
  entries_ = std::move(found);
  built_ = true;
  complete_ = complete;
  last_walk_ = std::chrono::steady_clock::now();
  walked_ = walked;
  ++walks_;
  walk_seconds_ = std::chrono::duration<double>(last_walk_ - start).count();
  return complete;
}

std::optional<std::vector<std::string>> LinkIndex::Names(dev_t dev, ino_t ino, nlink_t nlink) {
  std::optional<std::vector<std::string>> out;
  bool walked = false;
  {
    std::lock_guard lock(mu_);
    const Key key{dev, ino};
    auto agrees = [&] {
      if (!complete_) return false;
      auto it = entries_.find(key);
      return it != entries_.end() && it->second.nlink == nlink;
    };
    if (!built_ || (!agrees() && std::chrono::steady_clock::now() - last_walk_ >= rescan_interval_)) {
      WalkLocked();
      walked = true;
    }
    if (agrees()) out = entries_.find(key)->second.paths;
  }
  if (walked) Changed();
  return out;
}

void LinkIndex::Linked(dev_t dev, ino_t ino, nlink_t nlink_after, const std::string& existing,
                       const std::string& added) {
  {
    std::lock_guard lock(mu_);
    if (!built_) return;
    auto it = entries_.find({dev, ino});
    if (it != entries_.end()) {
      auto& paths = it->second.paths;
      if (std::find(paths.begin(), paths.end(), added) == paths.end()) paths.push_back(added);
      it->second.nlink = nlink_after;
    } else if (nlink_after == 2) {
      // It had one name, the one the mount knows it by.
      entries_[{dev, ino}] = Entry{nlink_after, {existing, added}};
    } else {
      return;  // the index did not know this file's other names: Names() walks again
    }
  }
  Changed();
}

void LinkIndex::Unlinked(dev_t dev, ino_t ino, nlink_t nlink_after, const std::string& removed) {
  {
    std::lock_guard lock(mu_);
    if (!built_) return;
    auto it = entries_.find({dev, ino});
    if (it == entries_.end()) return;
    auto& paths = it->second.paths;
    paths.erase(std::remove(paths.begin(), paths.end(), removed), paths.end());
    if (nlink_after <= 1) {
      entries_.erase(it);
    } else {
      it->second.nlink = nlink_after;
    }
  }
  Changed();
}

void LinkIndex::Renamed(const std::string& from, const std::string& to, bool exchange) {
  bool any = false;
  {
    std::lock_guard lock(mu_);
    for (auto& [key, e] : entries_) {
      for (auto& p : e.paths) {
        if (auto rest = Beneath(p, from)) {
          p = to + std::string(*rest);
          any = true;
        } else if (exchange) {
          if (auto back = Beneath(p, to)) {
            p = from + std::string(*back);
            any = true;
          }
        }
      }
    }
  }
  if (any) Changed();
}

void LinkIndex::Invalidate() {
  {
    std::lock_guard lock(mu_);
    if (!built_) return;
    built_ = false;
    entries_.clear();
  }
  Changed();
}

LinkIndex::Stats LinkIndex::stats() const {
  std::lock_guard lock(mu_);
  Stats s;
  s.built = built_;
  s.files = entries_.size();
  s.walked = walked_;
  s.walks = walks_;
  s.walk_seconds = walk_seconds_;
  s.bytes = entries_.bucket_count() * sizeof(void*);
  for (const auto& [key, e] : entries_) {
    s.names += e.paths.size();
    s.bytes += sizeof(Key) + sizeof(Entry) + 2 * sizeof(void*) +
               e.paths.capacity() * sizeof(std::string);
    for (const auto& p : e.paths) s.bytes += p.capacity() > 15 ? p.capacity() + 1 : 0;
  }
  return s;
}

}  // namespace agentfense::fs
