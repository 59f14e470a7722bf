// Which sandboxed process owns a socket, for the audit log of refused connections: the socket's
// inode comes from sock_diag (NETLINK_SOCK_DIAG, asked inside the sandbox's namespace), then the
// processes of that namespace are searched for a descriptor of it (/proc/PID/fd). Best effort:
// a process that already closed the socket, or one we may not inspect, leaves pid 0.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "policy/egress.h"

namespace agentfense::net {

struct SocketTuple {
  bool udp = false;
  policy::IpAddress local;  // the sandboxed process's side
  uint16_t local_port = 0;
  policy::IpAddress remote;  // where it was sending
  uint16_t remote_port = 0;
};

struct ProcessInfo {
  pid_t pid = 0;        // host pid; 0 when unknown
  std::string command;  // its command line, arguments joined by spaces (≤ 256 bytes)
};

// `diag_fd`: a NETLINK_SOCK_DIAG socket created in the sandbox's namespace; `netns_fd`: that
// namespace (its inode selects the processes to search).
ProcessInfo FindSocketOwner(int diag_fd, int netns_fd, const SocketTuple& tuple);

}  // namespace agentfense::net
