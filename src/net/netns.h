// The network namespace of a sandbox with network on (docs/NETWORK.md "The namespace"):
//
//   lo            127.0.0.1/8, ::1, and the sandbox's address 10.0.2.15/32
//   routes        default dev lo src 10.0.2.15 (so connect() to any address is attempted), and
//                 a policy route that delivers every marked packet locally (table 100)
//   nftables      table inet agentfense: every TCP segment and UDP datagram to a non-local
//                 address is marked and handed by TPROXY to the supervisor's sockets; the
//                 proxy's listeners cannot be reached directly; anything else is rejected
//
// There is no interface that leads anywhere: a packet that is not intercepted goes out through
// lo, comes back, and is dropped (forwarding is off). The only way out is a socket the supervisor
// opens on the host side after deciding. The namespace belongs to the supervisor's user namespace
// (the host's when it runs as root), in which sandboxed processes have no capability: they can
// neither change the rules nor the routes.
#pragma once

#include <cstdint>

#include "base/result.h"
#include "base/unique_fd.h"

namespace agentfense::net {

inline constexpr const char* kSandboxAddress = "10.0.2.15";
inline constexpr const char* kResolverAddress = "10.0.2.3";  // what resolv.conf names
inline constexpr uint16_t kTcpProxyPort = 15001;
inline constexpr uint16_t kUdpProxyPort = 15053;
inline constexpr uint32_t kInterceptMark = 0x1;
inline constexpr uint32_t kInterceptTable = 100;

// The sandbox-side sockets the egress proxy serves, created inside the namespace.
struct SandboxSockets {
  UniqueFd tcp_listener;  // IP_TRANSPARENT, 127.0.0.1:kTcpProxyPort, non-blocking
  UniqueFd udp;           // IP_TRANSPARENT + IP_RECVORIGDSTADDR, 127.0.0.1:kUdpProxyPort
  UniqueFd resolver;      // IP_TRANSPARENT, bound to kResolverAddress:53 (answers come from it)
  UniqueFd sock_diag;     // NETLINK_SOCK_DIAG in the namespace (who owns a socket)
};

// A new, empty network namespace (only a down lo). Runs on a short-lived thread: unsharing the
// network namespace is per thread, and the caller's thread must stay in the host's.
Result<UniqueFd> CreateNetns();

// Configures `netns` as described above and creates its sandbox-side sockets. Idempotent
// enough for a namespace that only has lo (a new one, or a Docker container's "none" network).
Result<SandboxSockets> PrepareNetns(int netns_fd);

// Creates a socket inside `netns` (setns on the calling thread and back). Aborts the process if
// the thread cannot return to `home_netns`: its later sockets would be made in the sandbox.
Result<UniqueFd> SocketInNetns(int netns_fd, int home_netns_fd, int domain, int type);

// A network namespace file descriptor of the calling thread.
Result<UniqueFd> CurrentNetns();

}  // namespace agentfense::net
