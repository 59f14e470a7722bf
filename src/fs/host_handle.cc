#include "fs/host_handle.h"

#include <fcntl.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace agentfense::fs {

Result<HostHandle> HostHandle::Of(int fd) {
  // MAX_HANDLE_SZ is 128; file_handle is a header followed by f_handle[].
  std::vector<unsigned char> buf(sizeof(struct file_handle) + MAX_HANDLE_SZ);
  auto* fh = reinterpret_cast<struct file_handle*>(buf.data());
  fh->handle_bytes = MAX_HANDLE_SZ;
  int mount_id = -1;
  if (::name_to_handle_at(fd, "", fh, &mount_id, AT_EMPTY_PATH) != 0) {
    return Error::FromErrno(errno, "name_to_handle_at");
  }
  HostHandle h;
  h.bytes_.assign(reinterpret_cast<const char*>(buf.data()),
                  sizeof(struct file_handle) + fh->handle_bytes);
  h.mount_id_ = mount_id;
  return h;
}

Result<UniqueFd> HostHandle::Open(int mount_fd, int flags) const {
  // The stored bytes are copied into an aligned buffer: file_handle has an unsigned int header.
  std::vector<unsigned char> buf(bytes_.size());
  std::memcpy(buf.data(), bytes_.data(), bytes_.size());
  int fd = ::open_by_handle_at(mount_fd, reinterpret_cast<struct file_handle*>(buf.data()),
                               flags | O_CLOEXEC);
  if (fd < 0) return Error::FromErrno(errno, "open_by_handle_at");
  return UniqueFd(fd);
}

std::string ProcFdPath(int fd) { return "/proc/self/fd/" + std::to_string(fd); }

}  // namespace agentfense::fs
