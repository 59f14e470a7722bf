// Owns one file descriptor. A plain `int` anywhere else in the codebase is borrowed.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <utility>

#include "base/result.h"

namespace agentfense {

class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) noexcept : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.Release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    Reset(o.Release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { Reset(); }

  int get() const noexcept { return fd_; }
  bool valid() const noexcept { return fd_ >= 0; }
  explicit operator bool() const noexcept { return valid(); }
  [[nodiscard]] int Release() noexcept { return std::exchange(fd_, -1); }
  void Reset(int fd = -1) noexcept {
    if (fd_ >= 0) ::close(fd_);  // never retried on EINTR: on Linux the fd is gone either way
    fd_ = fd;
  }

 private:
  int fd_;
};

// openat(2) with O_CLOEXEC|O_NOFOLLOW always added. `dirfd` is borrowed.
inline Result<UniqueFd> OpenAt(int dirfd, const char* path, int flags, mode_t mode = 0) {
  int fd = ::openat(dirfd, path, flags | O_CLOEXEC | O_NOFOLLOW, mode);
  if (fd < 0) return Error::FromErrno(errno, std::string("openat ") + path);
  return UniqueFd(fd);
}

// Creates a pipe pair with O_CLOEXEC: {read end, write end}.
Result<std::pair<UniqueFd, UniqueFd>> MakePipe(int extra_flags = 0);

}  // namespace agentfense
