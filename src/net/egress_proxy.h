// The egress filter of one sandbox (docs/NETWORK.md): the only way out of the sandbox's network
// namespace. The namespace's nftables rules hand every TCP connection and UDP datagram to the
// sockets of this proxy (TPROXY, see netns.h); the proxy decides with the sandbox's
// policy::EgressPolicy and, when allowed, opens its own socket from the host's namespace and
// relays (splice(2): bytes never cross user space). DNS to any server is answered here, for the
// names the policy allows, with addresses the policy allows (no rebinding to private ones).
//
// One thread runs an epoll loop; the policy lives on that thread and is replaced through
// SetPolicy, which returns once the new policy decides every new connection and the open ones
// it no longer allows are closed. Everything refused is reported through on_denied (with the
// sandboxed process when it can be found).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "net/netns.h"
#include "policy/egress.h"

namespace agentfense::net {

struct EgressDenial {
  std::string operation;    // "connect", "resolve" or "send" (a UDP datagram)
  std::string destination;  // "evil.test:443", "203.0.113.9:80", "evil.test" (a lookup)
  std::string address;      // the IP the process aimed at ("" for a lookup)
  uint16_t port = 0;
  std::string name;  // the host name when known (SNI, Host, CONNECT, DNS question)
  std::string reason;
  pid_t pid = 0;  // host pid of the sandboxed process, 0 when unknown
  std::string command;
};

struct EgressStats {
  uint64_t tcp_allowed = 0;
  uint64_t tcp_denied = 0;
  uint64_t udp_allowed = 0;  // flows
  uint64_t udp_denied = 0;   // datagrams
  uint64_t dns_answered = 0;
  uint64_t dns_refused = 0;
  uint64_t bytes_out = 0;
  uint64_t bytes_in = 0;
  uint64_t open_connections = 0;
};

struct EgressProxyOptions {
  // Upstream resolvers, "IP" or "IP:PORT" (IPv6 in brackets with a port). Empty: the
  // nameservers of the host's /etc/resolv.conf.
  std::vector<std::string> dns_servers;
  // Called on the proxy's thread for every refused connection, lookup or datagram (lookups and
  // datagrams repeated within a few seconds are reported once).
  std::function<void(const EgressDenial&)> on_denied;
};

// The nameservers of a resolv.conf text (invalid lines are skipped).
std::vector<std::string> NameserversFromResolvConf(std::string_view text);

class EgressProxy {
 public:
  // Serves `netns` (already prepared: `sockets` from PrepareNetns). Must be called from a thread
  // in the host's network namespace: upstream sockets are made there.
  static Result<std::unique_ptr<EgressProxy>> Start(UniqueFd netns, SandboxSockets sockets,
                                                    policy::EgressPolicy policy,
                                                    EgressProxyOptions options);
  ~EgressProxy();
  EgressProxy(const EgressProxy&) = delete;
  EgressProxy& operator=(const EgressProxy&) = delete;

  Status SetPolicy(policy::EgressPolicy policy);
  EgressStats Stats() const;
  int netns_fd() const;

  class Impl;

 private:
  explicit EgressProxy(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace agentfense::net
