#include "base/unique_fd.h"

namespace agentfense {

Result<std::pair<UniqueFd, UniqueFd>> MakePipe(int extra_flags) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC | extra_flags) != 0) return Error::FromErrno(errno, "pipe2");
  return std::make_pair(UniqueFd(fds[0]), UniqueFd(fds[1]));
}

}  // namespace agentfense
