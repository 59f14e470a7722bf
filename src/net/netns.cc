#include "net/netns.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <linux/fib_rules.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <net/if.h>
#include <netinet/in.h>
#include <nftables/libnftables.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <thread>

#include "base/log.h"
#include "base/shared_library.h"

namespace agentfense::net {
namespace {

// One rtnetlink request: header, fixed part, attributes; sent and acknowledged synchronously.
class NlRequest {
 public:
  NlRequest(uint16_t type, uint16_t flags, const void* body, size_t body_len) {
    buf_.resize(NLMSG_SPACE(body_len));
    auto* h = reinterpret_cast<nlmsghdr*>(buf_.data());
    h->nlmsg_type = type;
    h->nlmsg_flags = static_cast<uint16_t>(NLM_F_REQUEST | NLM_F_ACK | flags);
    h->nlmsg_seq = 1;
    std::memcpy(NLMSG_DATA(h), body, body_len);
    h->nlmsg_len = static_cast<uint32_t>(NLMSG_LENGTH(body_len));
  }
  void Attr(uint16_t type, const void* data, size_t len) {
    size_t at = NLMSG_ALIGN(header()->nlmsg_len);
    buf_.resize(at + RTA_SPACE(len));
    auto* rta = reinterpret_cast<rtattr*>(buf_.data() + at);
    rta->rta_type = type;
    rta->rta_len = static_cast<uint16_t>(RTA_LENGTH(len));
    std::memcpy(RTA_DATA(rta), data, len);
    header()->nlmsg_len = static_cast<uint32_t>(at + RTA_SPACE(len));
  }
  void Attr32(uint16_t type, uint32_t v) { Attr(type, &v, sizeof(v)); }

  Status Send(int fd, const char* what) {
    if (::send(fd, buf_.data(), header()->nlmsg_len, 0) < 0) {
      return Error::FromErrno(errno, std::string("netlink send: ") + what);
    }
    char reply[4096];
    ssize_t n = ::recv(fd, reply, sizeof(reply), 0);
    if (n < 0) return Error::FromErrno(errno, std::string("netlink recv: ") + what);
    auto* h = reinterpret_cast<nlmsghdr*>(reply);
    if (!NLMSG_OK(h, static_cast<size_t>(n)) || h->nlmsg_type != NLMSG_ERROR) {
      return Error(ErrorCode::kInternal, std::string("netlink: unexpected reply to ") + what);
    }
    int err = reinterpret_cast<nlmsgerr*>(NLMSG_DATA(h))->error;
    if (err != 0 && err != -EEXIST) return Error::FromErrno(-err, what);
    return OkStatus();
  }

 private:
  nlmsghdr* header() { return reinterpret_cast<nlmsghdr*>(buf_.data()); }
  std::string buf_;
};

uint32_t Addr4(const char* text) {
  in_addr a{};
  ::inet_pton(AF_INET, text, &a);
  return a.s_addr;  // network order, as netlink wants it
}

Status ConfigureLinksAndRoutes() {
  UniqueFd nl(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
  if (!nl) return Error::FromErrno(errno, "socket(NETLINK_ROUTE)");
  unsigned lo = ::if_nametoindex("lo");
  if (lo == 0) return Error::FromErrno(errno, "no lo in the sandbox's namespace");

  ifinfomsg link{};
  link.ifi_family = AF_UNSPEC;
  link.ifi_index = static_cast<int>(lo);
  link.ifi_flags = IFF_UP;
  link.ifi_change = IFF_UP;
  AF_RETURN_IF_ERROR(NlRequest(RTM_NEWLINK, 0, &link, sizeof(link)).Send(nl.get(), "lo up"));

  ifaddrmsg addr{};
  addr.ifa_family = AF_INET;
  addr.ifa_prefixlen = 32;
  addr.ifa_scope = RT_SCOPE_HOST;
  addr.ifa_index = lo;
  NlRequest add_addr(RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &addr, sizeof(addr));
  add_addr.Attr32(IFA_LOCAL, Addr4(kSandboxAddress));
  add_addr.Attr32(IFA_ADDRESS, Addr4(kSandboxAddress));
  AF_RETURN_IF_ERROR(add_addr.Send(nl.get(), "address of the sandbox"));

  // default dev lo src 10.0.2.15: without a route connect() fails before any hook sees it.
  rtmsg def{};
  def.rtm_family = AF_INET;
  def.rtm_table = RT_TABLE_MAIN;
  def.rtm_protocol = RTPROT_STATIC;
  def.rtm_scope = RT_SCOPE_LINK;
  def.rtm_type = RTN_UNICAST;
  NlRequest add_def(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, &def, sizeof(def));
  add_def.Attr32(RTA_OIF, lo);
  add_def.Attr32(RTA_PREFSRC, Addr4(kSandboxAddress));
  AF_RETURN_IF_ERROR(add_def.Send(nl.get(), "default route"));

  // Marked packets are local: TPROXY needs the route lookup to deliver them to our sockets.
  rtmsg local{};
  local.rtm_family = AF_INET;
  local.rtm_table = RT_TABLE_UNSPEC;
  local.rtm_protocol = RTPROT_STATIC;
  local.rtm_scope = RT_SCOPE_HOST;
  local.rtm_type = RTN_LOCAL;
  NlRequest add_local(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, &local, sizeof(local));
  add_local.Attr32(RTA_TABLE, kInterceptTable);
  add_local.Attr32(RTA_OIF, lo);
  AF_RETURN_IF_ERROR(add_local.Send(nl.get(), "local route of intercepted packets"));

  fib_rule_hdr rule{};
  rule.family = AF_INET;
  rule.action = FR_ACT_TO_TBL;
  rule.table = RT_TABLE_UNSPEC;
  NlRequest add_rule(RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL, &rule, sizeof(rule));
  add_rule.Attr32(FRA_FWMARK, kInterceptMark);
  add_rule.Attr32(FRA_FWMASK, kInterceptMark);
  add_rule.Attr32(FRA_TABLE, kInterceptTable);
  add_rule.Attr32(FRA_PRIORITY, 100);
  return add_rule.Send(nl.get(), "rule for intercepted packets");
}

std::string Ruleset() {
  return fmt::format(R"(
table inet agentfense {{
  chain intercept {{
    type route hook output priority mangle; policy accept;
    fib daddr type local return
    meta nfproto ipv4 meta l4proto {{ tcp, udp }} meta mark set {mark:#x}
  }}
  chain deliver {{
    type filter hook prerouting priority mangle; policy accept;
    meta mark {mark:#x} meta l4proto tcp tproxy ip to 127.0.0.1:{tcp} accept
    meta mark {mark:#x} meta l4proto udp tproxy ip to 127.0.0.1:{udp} accept
  }}
  chain guard {{
    type filter hook input priority filter; policy accept;
    meta mark != {mark:#x} tcp dport {tcp} reject with tcp reset
    meta mark != {mark:#x} udp dport {udp} drop
  }}
  chain leave {{
    type filter hook output priority filter; policy accept;
    meta mark {mark:#x} accept
    fib daddr type local accept
    reject with icmpx admin-prohibited
  }}
}}
)",
                     fmt::arg("mark", kInterceptMark), fmt::arg("tcp", kTcpProxyPort),
                     fmt::arg("udp", kUdpProxyPort));
}

// libnftables, loaded on first use (base/shared_library.h): only a sandbox with network on loads
// rules, and linking the library cost every supervisor 0.14 MiB. The pointers' types come from
// <nftables/libnftables.h>, so every call is checked against the library's own declarations.
struct NftApi {
  decltype(&::nft_ctx_new) ctx_new;
  decltype(&::nft_ctx_buffer_output) ctx_buffer_output;
  decltype(&::nft_ctx_buffer_error) ctx_buffer_error;
  decltype(&::nft_run_cmd_from_buffer) run_cmd_from_buffer;
  decltype(&::nft_ctx_get_error_buffer) ctx_get_error_buffer;
  decltype(&::nft_ctx_free) ctx_free;
};

// Loaded once per process, then read-only.
Result<const NftApi*> LoadNftables() {
  static const Result<NftApi> api = []() -> Result<NftApi> {
    constexpr const char* kLib = "libnftables.so.1";
    AF_ASSIGN_OR_RETURN(void* lib, LoadSharedLibrary(kLib));
    NftApi n{};
    AF_RETURN_IF_ERROR(ResolveSymbol(lib, kLib, "nft_ctx_new", &n.ctx_new));
    AF_RETURN_IF_ERROR(ResolveSymbol(lib, kLib, "nft_ctx_buffer_output", &n.ctx_buffer_output));
    AF_RETURN_IF_ERROR(ResolveSymbol(lib, kLib, "nft_ctx_buffer_error", &n.ctx_buffer_error));
    AF_RETURN_IF_ERROR(
        ResolveSymbol(lib, kLib, "nft_run_cmd_from_buffer", &n.run_cmd_from_buffer));
    AF_RETURN_IF_ERROR(
        ResolveSymbol(lib, kLib, "nft_ctx_get_error_buffer", &n.ctx_get_error_buffer));
    AF_RETURN_IF_ERROR(ResolveSymbol(lib, kLib, "nft_ctx_free", &n.ctx_free));
    return n;
  }();
  if (!api.ok()) return api.error();
  return &*api;
}

Status LoadRuleset() {
  AF_ASSIGN_OR_RETURN(const NftApi* nft, LoadNftables());
  nft_ctx* ctx = nft->ctx_new(NFT_CTX_DEFAULT);
  if (!ctx) return Error(ErrorCode::kInternal, "nft_ctx_new failed");
  nft->ctx_buffer_output(ctx);
  nft->ctx_buffer_error(ctx);
  std::string rules = Ruleset();
  int rc = nft->run_cmd_from_buffer(ctx, rules.c_str());
  const char* said = nft->ctx_get_error_buffer(ctx);
  std::string err = said != nullptr ? said : "";
  nft->ctx_free(ctx);
  if (rc != 0) {
    return Error(ErrorCode::kFailedPrecondition, "loading the sandbox's nftables rules: " + err);
  }
  return OkStatus();
}

Result<UniqueFd> TransparentSocket(int type, const char* ip, uint16_t port, bool orig_dst) {
  UniqueFd fd(::socket(AF_INET, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return Error::FromErrno(errno, "socket");
  int one = 1;
  if (::setsockopt(fd.get(), SOL_IP, IP_TRANSPARENT, &one, sizeof(one)) != 0) {
    return Error::FromErrno(errno, "IP_TRANSPARENT");
  }
  (void)::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (orig_dst && ::setsockopt(fd.get(), SOL_IP, IP_RECVORIGDSTADDR, &one, sizeof(one)) != 0) {
    return Error::FromErrno(errno, "IP_RECVORIGDSTADDR");
  }
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  ::inet_pton(AF_INET, ip, &sa.sin_addr);
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
    return Error::FromErrno(errno, fmt::format("bind {}:{}", ip, port));
  }
  if (type == SOCK_STREAM && ::listen(fd.get(), 1024) != 0)
    return Error::FromErrno(errno, "listen");
  return fd;
}

// Runs `fn` on a new thread that joined `netns_fd` first; returns what `fn` returned.
template <typename T, typename Fn>
Result<T> InNetns(int netns_fd, Fn fn) {
  std::optional<Result<T>> out;
  std::thread t([&] {
    if (netns_fd >= 0 && ::setns(netns_fd, CLONE_NEWNET) != 0) {
      out.emplace(Error::FromErrno(errno, "setns into the sandbox's network namespace"));
      return;
    }
    out.emplace(fn());
  });
  t.join();
  if (!out) return Error(ErrorCode::kInternal, "network namespace helper thread produced nothing");
  return std::move(*out);
}

}  // namespace

Result<UniqueFd> CurrentNetns() {
  UniqueFd fd(::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC));
  if (!fd) return Error::FromErrno(errno, "open /proc/thread-self/ns/net");
  return fd;
}

Result<UniqueFd> CreateNetns() {
  return InNetns<UniqueFd>(-1, []() -> Result<UniqueFd> {
    if (::unshare(CLONE_NEWNET) != 0) {
      int err = errno;
      if (err == EPERM && ::geteuid() != 0) {
        // Rootless (issue 19): the namespace, its rules and TPROXY would need a user namespace
        // of the supervisor's own first (docs/NETWORK.md "Rootless").
        return Error(ErrorCode::kFailedPrecondition,
                     "network on needs a supervisor running as root: as an ordinary user the "
                     "sandbox's network namespace cannot be made yet (docs/NETWORK.md, Rootless)",
                     err);
      }
      return Error::FromErrno(err, "unshare(CLONE_NEWNET) (needs CAP_SYS_ADMIN)");
    }
    return CurrentNetns();
  });
}

Result<SandboxSockets> PrepareNetns(int netns_fd) {
  return InNetns<SandboxSockets>(netns_fd, []() -> Result<SandboxSockets> {
    AF_RETURN_IF_ERROR(ConfigureLinksAndRoutes());
    AF_RETURN_IF_ERROR(LoadRuleset());
    SandboxSockets s;
    AF_ASSIGN_OR_RETURN(s.tcp_listener,
                        TransparentSocket(SOCK_STREAM, "127.0.0.1", kTcpProxyPort, false));
    AF_ASSIGN_OR_RETURN(s.udp, TransparentSocket(SOCK_DGRAM, "127.0.0.1", kUdpProxyPort, true));
    AF_ASSIGN_OR_RETURN(s.resolver, TransparentSocket(SOCK_DGRAM, kResolverAddress, 53, false));
    s.sock_diag.Reset(::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG));
    if (!s.sock_diag) return Error::FromErrno(errno, "socket(NETLINK_SOCK_DIAG)");
    return s;
  });
}

Result<UniqueFd> SocketInNetns(int netns_fd, int home_netns_fd, int domain, int type) {
  if (::setns(netns_fd, CLONE_NEWNET) != 0) return Error::FromErrno(errno, "setns (sandbox)");
  int fd = ::socket(domain, type | SOCK_CLOEXEC, 0);
  int err = errno;
  if (::setns(home_netns_fd, CLONE_NEWNET) != 0) {
    // Every later socket of this thread would be made inside the sandbox: stop here.
    AF_LOG_ERROR("cannot return to the host's network namespace: {}", std::strerror(errno));
    std::abort();
  }
  if (fd < 0) return Error::FromErrno(err, "socket in the sandbox's namespace");
  return UniqueFd(fd);
}

}  // namespace agentfense::net
