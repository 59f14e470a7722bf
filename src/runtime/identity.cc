#include "runtime/identity.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <fstream>
#include <tuple>
#include <vector>

namespace agentfense::runtime {
namespace {

bool ParseU32(std::string_view s, uint32_t* out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), *out);
  return ec == std::errc() && p == s.data() + s.size();
}

std::vector<std::string_view> Fields(std::string_view line) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    size_t colon = line.find(':', start);
    out.push_back(line.substr(start, colon == std::string_view::npos ? colon : colon - start));
    if (colon == std::string_view::npos) return out;
    start = colon + 1;
  }
}

// The first line of `file` whose ids [field `id`, + field `count` or 1) overlap `range`.
std::string Overlap(const IdentityRange& range, const std::string& file, size_t id_field,
                    int count_field) {
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    auto f = Fields(line);
    uint32_t id = 0;
    uint32_t n = 1;
    if (f.size() <= id_field || !ParseU32(f[id_field], &id)) continue;
    if (count_field >= 0 &&
        (f.size() <= static_cast<size_t>(count_field) || !ParseU32(f[count_field], &n))) {
      continue;
    }
    uint64_t lo = id;
    uint64_t hi = static_cast<uint64_t>(id) + n;  // exclusive
    if (lo < static_cast<uint64_t>(range.first) + range.count && hi > range.first) {
      return fmt::format("{} ({}: {})", f[0], file, id);
    }
  }
  return "";
}

}  // namespace

Result<IdentityRange> IdentityRange::Parse(std::string_view text) {
  size_t dash = text.find('-');
  uint32_t lo = 0;
  uint32_t hi = 0;
  if (dash == std::string_view::npos || !ParseU32(text.substr(0, dash), &lo) ||
      !ParseU32(text.substr(dash + 1), &hi) || hi < lo) {
    return Error(
        ErrorCode::kInvalidArgument,
        fmt::format("identity range \"{}\": expected FIRST-LAST, e.g. 524288-589823", text));
  }
  IdentityRange r;
  r.first = lo;
  r.count = hi - lo + 1;
  return r;
}

std::string IdentityRange::ToString() const {
  return fmt::format("{}-{}", first, static_cast<uint64_t>(first) + count - 1);
}

Status ValidateIdentityRange(const IdentityRange& range, const std::string& etc) {
  const std::string where = "sandbox.uid_range " + range.ToString();
  if (range.count == 0) return Error(ErrorCode::kInvalidArgument, where + " is empty");
  if (static_cast<uint64_t>(range.first) + range.count > 0x7fffffffu) {
    return Error(ErrorCode::kInvalidArgument, where + " goes past the largest uid (2^31-2)");
  }
  if (range.Contains(0) || range.Contains(65534)) {
    return Error(ErrorCode::kInvalidArgument, where + " holds uid 0 or 65534 (nobody)");
  }
  for (auto [file, id_field, count_field, what] :
       {std::tuple{etc + "/passwd", 2, -1, "the user"},
        std::tuple{etc + "/group", 2, -1, "the group"},
        std::tuple{etc + "/subuid", 1, 2, "the subordinate uids of"},
        std::tuple{etc + "/subgid", 1, 2, "the subordinate gids of"}}) {
    std::string hit = Overlap(range, file, static_cast<size_t>(id_field), count_field);
    if (!hit.empty()) {
      return Error(ErrorCode::kFailedPrecondition,
                   fmt::format("{} overlaps {} {}: sandboxes must never share an identity with "
                               "anyone on the host; choose a free range (docs/OPERATIONS.md)",
                               where, what, hit));
    }
  }
  return OkStatus();
}

Result<IdentityLease> IdentityLease::Acquire(const IdentityRange& range,
                                             const std::string& lease_dir, uint32_t preferred,
                                             std::string_view key) {
  if (range.count == 0) return Error(ErrorCode::kInvalidArgument, "empty identity range");
  // Its parent (/run/agentfense) may be new too; the lease directory itself is checked below.
  const std::string parent = lease_dir.substr(0, lease_dir.rfind('/'));
  if (!parent.empty() && ::mkdir(parent.c_str(), 0755) != 0 && errno != EEXIST) {
    return Error::FromErrno(errno, "creating " + parent);
  }
  if (::mkdir(lease_dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return Error::FromErrno(errno, "creating " + lease_dir);
  }
  UniqueFd dir(::open(lease_dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir) return Error::FromErrno(errno, "opening " + lease_dir);
  struct stat st;
  if (::fstat(dir.get(), &st) != 0) return Error::FromErrno(errno, "stat " + lease_dir);
  // Whoever can write here can take or block identities: it must be ours alone.
  if (st.st_uid != ::geteuid() || (st.st_mode & 077) != 0) {
    return Error(ErrorCode::kFailedPrecondition,
                 fmt::format("{} must be a directory of uid {} with mode 0700 (it is uid {}, "
                             "mode {:o})",
                             lease_dir, ::geteuid(), st.st_uid, st.st_mode & 07777));
  }
  // FNV-1a of the key: where the probe starts.
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : key) {
    h ^= c;
    h *= 1099511628211ull;
  }
  const uint32_t start =
      range.Contains(preferred) ? preferred - range.first : static_cast<uint32_t>(h % range.count);
  for (uint32_t i = 0; i < range.count; ++i) {
    const uint32_t id = range.first + (start + i) % range.count;
    const std::string name = std::to_string(id);
    UniqueFd fd(::openat(dir.get(), name.c_str(), O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) return Error::FromErrno(errno, fmt::format("opening lease {}/{}", lease_dir, name));
    if (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK) continue;
      return Error::FromErrno(errno, fmt::format("locking lease {}/{}", lease_dir, name));
    }
    // Diagnostics only (who holds it); the lock is what counts.
    if (::ftruncate(fd.get(), 0) == 0) {
      (void)!::pwrite(fd.get(), key.data(), key.size(), 0);
    }
    IdentityLease lease;
    lease.id_ = id;
    lease.lock_ = std::move(fd);
    return lease;
  }
  return Error(ErrorCode::kResourceExhausted,
               fmt::format("every identity of sandbox.uid_range {} is in use by a live sandbox",
                           range.ToString()));
}

}  // namespace agentfense::runtime
