#include "net/egress_proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <fmt/format.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <unordered_map>

#include "base/log.h"
#include "net/dns_message.h"
#include "net/peek.h"
#include "net/process_lookup.h"

namespace agentfense::net {

using policy::EgressDecision;
using policy::EgressPolicy;
using policy::IpAddress;
using policy::Transport;
using Clock = std::chrono::steady_clock;

namespace {

constexpr size_t kMaxConnections = 512;
constexpr size_t kMaxUdpFlows = 256;
constexpr size_t kMaxLearned = 8192;
constexpr size_t kMaxPendingDns = 512;
constexpr int kPipeSize = 1 << 20;
constexpr auto kPeekTimeout = std::chrono::seconds(5);
constexpr auto kConnectTimeout = std::chrono::seconds(10);
constexpr auto kDnsTimeout = std::chrono::milliseconds(1500);
constexpr auto kUdpIdle = std::chrono::seconds(60);
constexpr auto kMinCacheTtl = std::chrono::seconds(30);
constexpr auto kMaxCacheTtl = std::chrono::seconds(600);
constexpr auto kReportEvery =
    std::chrono::seconds(5);  // a repeated lookup or datagram denial is reported once

// epoll tags: the low 2 bits say which socket of an object the event is for.
enum : uint64_t { kTagListener = 1, kTagUdp = 2, kTagDnsUpstream = 3, kTagWake = 4 };
enum Role : uint64_t { kClient = 0, kUpstream = 1, kFlow = 2 };
constexpr uint64_t kFirstObjectId = 16;

std::string HostPort(const IpAddress& a, uint16_t port) {
  return a.v6 ? fmt::format("[{}]:{}", a.ToString(), port)
              : fmt::format("{}:{}", a.ToString(), port);
}

struct SockAddr {
  sockaddr_storage ss{};
  socklen_t len = 0;
  static SockAddr From(const IpAddress& a, uint16_t port) {
    SockAddr s;
    if (a.v6) {
      auto* in6 = reinterpret_cast<sockaddr_in6*>(&s.ss);
      in6->sin6_family = AF_INET6;
      in6->sin6_port = htons(port);
      std::memcpy(&in6->sin6_addr, a.bytes.data(), 16);
      s.len = sizeof(sockaddr_in6);
    } else {
      auto* in = reinterpret_cast<sockaddr_in*>(&s.ss);
      in->sin_family = AF_INET;
      in->sin_port = htons(port);
      std::memcpy(&in->sin_addr, a.bytes.data(), 4);
      s.len = sizeof(sockaddr_in);
    }
    return s;
  }
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&ss); }
};

std::pair<IpAddress, uint16_t> FromSockaddr(const sockaddr_storage& ss) {
  if (ss.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    return {IpAddress::FromBytes(true, reinterpret_cast<const uint8_t*>(&in6->sin6_addr)),
            ntohs(in6->sin6_port)};
  }
  const auto* in = reinterpret_cast<const sockaddr_in*>(&ss);
  return {IpAddress::FromBytes(false, reinterpret_cast<const uint8_t*>(&in->sin_addr)),
          ntohs(in->sin_port)};
}

// Closes with a TCP RST: the client sees "connection reset" at once instead of a clean EOF.
void ResetAndClose(UniqueFd& fd) {
  if (!fd) return;
  linger l{1, 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_LINGER, &l, sizeof(l));
  fd.Reset();
}

struct Pipe {
  UniqueFd r, w;
  size_t bytes = 0;
  bool eof = false;   // the source said EOF
  bool shut = false;  // we passed the EOF on (shutdown SHUT_WR)
};

struct TcpConn {
  enum class State { kPeek, kResolve, kConnect, kRelay };
  uint64_t id = 0;
  State state = State::kPeek;
  UniqueFd client, upstream;
  IpAddress client_ip;
  uint16_t client_port = 0;
  IpAddress orig;  // where the sandboxed process connected
  uint16_t port = 0;
  std::string head;  // bytes read while deciding; sent upstream first
  size_t head_sent = 0;
  PeekResult::Kind protocol = PeekResult::Kind::kNeedMore;
  std::string name;  // the name the decision rests on ("" = the address)
  uint16_t target_port = 0;
  bool connect_reply = false;  // an HTTP CONNECT: we answer "200" once connected
  std::vector<IpAddress> candidates;
  size_t next_candidate = 0;
  IpAddress target;
  Clock::time_point deadline;
  Pipe up, down;  // up: client → upstream, down: upstream → client
  uint32_t client_events = 0, upstream_events = 0;
  bool counted = false;
};

struct UdpFlow {
  uint64_t id = 0;
  IpAddress client_ip, orig;
  uint16_t client_port = 0, port = 0;
  std::string name;
  UniqueFd upstream;  // host side, connected to orig
  UniqueFd reply;     // sandbox side, bound to orig, connected to the client
  Clock::time_point last;
};

struct CachedName {
  std::vector<IpAddress> addresses;  // as the upstream answered (filtered at each use)
  Rcode rcode = Rcode::kNoError;
  Clock::time_point expires;
};

struct DnsWaiter {
  bool for_conn = false;
  uint64_t conn_id = 0;
  DnsQuestion question;
  IpAddress client_ip, server_ip;
  uint16_t client_port = 0;
};

struct PendingLookup {
  std::string name;
  uint16_t id = 0;
  size_t server = 0;
  int tries = 0;
  Clock::time_point deadline;
  std::vector<DnsWaiter> waiters;
};

}  // namespace

std::vector<std::string> NameserversFromResolvConf(std::string_view text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    std::string_view line = text.substr(pos, eol == std::string_view::npos ? eol : eol - pos);
    pos = eol == std::string_view::npos ? text.size() : eol + 1;
    if (!line.starts_with("nameserver")) continue;
    line.remove_prefix(10);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    size_t end = line.find_first_of(" \t\r#%");
    std::string_view addr = line.substr(0, end);
    if (IpAddress::Parse(addr)) out.emplace_back(addr);
  }
  return out;
}

class EgressProxy::Impl {
 public:
  Impl(UniqueFd netns, SandboxSockets sockets, EgressPolicy policy, EgressProxyOptions options)
      : netns_(std::move(netns)),
        sockets_(std::move(sockets)),
        policy_(std::move(policy)),
        options_(std::move(options)) {}

  Status Init(std::vector<policy::SocketAddress> servers) {
    servers_ = std::move(servers);
    AF_ASSIGN_OR_RETURN(home_netns_, CurrentNetns());
    epoll_.Reset(::epoll_create1(EPOLL_CLOEXEC));
    if (!epoll_) return Error::FromErrno(errno, "epoll_create1");
    wake_.Reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!wake_) return Error::FromErrno(errno, "eventfd");
    dns4_.Reset(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    dns6_.Reset(::socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!dns4_) return Error::FromErrno(errno, "socket (upstream DNS)");
    AF_RETURN_IF_ERROR(Watch(sockets_.tcp_listener.get(), EPOLLIN, kTagListener));
    AF_RETURN_IF_ERROR(Watch(sockets_.udp.get(), EPOLLIN, kTagUdp));
    AF_RETURN_IF_ERROR(Watch(dns4_.get(), EPOLLIN, kTagDnsUpstream));
    if (dns6_) AF_RETURN_IF_ERROR(Watch(dns6_.get(), EPOLLIN, kTagDnsUpstream));
    AF_RETURN_IF_ERROR(Watch(wake_.get(), EPOLLIN, kTagWake));
    RefreshHostAddresses();
    thread_ = std::thread([this] { Loop(); });
    return OkStatus();
  }

  ~Impl() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    Wake();
    if (thread_.joinable()) thread_.join();
  }

  Status SetPolicy(EgressPolicy policy) {
    std::unique_lock lock(mu_);
    uint64_t ticket = ++requested_;
    next_policy_ = std::move(policy);
    lock.unlock();
    Wake();
    lock.lock();
    if (!done_cv_.wait_for(lock, std::chrono::seconds(10),
                           [&] { return applied_ >= ticket || stopping_; })) {
      return Error(ErrorCode::kDeadlineExceeded, "the egress proxy did not apply the policy");
    }
    if (applied_ < ticket) return Error(ErrorCode::kUnavailable, "the egress proxy is stopping");
    return OkStatus();
  }

  EgressStats Stats() const {
    EgressStats s;
    s.tcp_allowed = tcp_allowed_.load();
    s.tcp_denied = tcp_denied_.load();
    s.udp_allowed = udp_allowed_.load();
    s.udp_denied = udp_denied_.load();
    s.dns_answered = dns_answered_.load();
    s.dns_refused = dns_refused_.load();
    s.bytes_out = bytes_out_.load();
    s.bytes_in = bytes_in_.load();
    s.open_connections = open_connections_.load();
    return s;
  }

  int netns_fd() const { return netns_.get(); }

 private:
  // ---- plumbing -------------------------------------------------------------------------
  Status Watch(int fd, uint32_t events, uint64_t tag) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = tag;
    if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) != 0) {
      return Error::FromErrno(errno, "epoll_ctl");
    }
    return OkStatus();
  }
  void Rewatch(int fd, uint32_t* current, uint32_t want, uint64_t tag) {
    if (fd < 0 || *current == want) return;
    epoll_event ev{};
    ev.events = want;
    ev.data.u64 = tag;
    int op = *current == UINT32_MAX ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
    if (::epoll_ctl(epoll_.get(), op, fd, &ev) == 0) *current = want;
  }
  void Wake() {
    uint64_t one = 1;
    (void)!::write(wake_.get(), &one, sizeof(one));
  }
  uint64_t NewId() { return next_id_++ << 2; }

  bool IsHostLocal(const IpAddress& a) const {
    if (!a.v6 && a.bytes[0] == 127) return true;
    return host_addresses_.count(a) > 0;
  }

  void RefreshHostAddresses() {
    ifaddrs* list = nullptr;
    if (::getifaddrs(&list) != 0) return;
    std::set<IpAddress> out;
    for (ifaddrs* i = list; i; i = i->ifa_next) {
      if (!i->ifa_addr) continue;
      if (i->ifa_addr->sa_family == AF_INET) {
        const auto* in = reinterpret_cast<const sockaddr_in*>(i->ifa_addr);
        out.insert(IpAddress::FromBytes(false, reinterpret_cast<const uint8_t*>(&in->sin_addr)));
      } else if (i->ifa_addr->sa_family == AF_INET6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(i->ifa_addr);
        out.insert(IpAddress::FromBytes(true, reinterpret_cast<const uint8_t*>(&in6->sin6_addr)));
      }
    }
    ::freeifaddrs(list);
    host_addresses_ = std::move(out);
    host_addresses_at_ = Clock::now();
  }

  void Report(EgressDenial d, const SocketTuple* tuple) {
    if (!options_.on_denied) return;
    if (tuple && sockets_.sock_diag) {
      ProcessInfo p = FindSocketOwner(sockets_.sock_diag.get(), netns_.get(), *tuple);
      d.pid = p.pid;
      d.command = std::move(p.command);
    }
    options_.on_denied(d);
  }

  // A lookup or datagram denial already reported within kReportEvery is not reported again.
  bool FirstReport(const std::string& key) {
    auto now = Clock::now();
    if (reported_.size() > 4096) reported_.clear();
    auto [it, inserted] = reported_.emplace(key, now);
    if (!inserted && now - it->second < kReportEvery) return false;
    it->second = now;
    return true;
  }

  // ---- the loop ---------------------------------------------------------------------------
  void Loop() {
    epoll_event events[64];
    while (true) {
      {
        std::lock_guard lock(mu_);
        if (stopping_) break;
      }
      int n = ::epoll_wait(epoll_.get(), events, 64, 250);
      for (int i = 0; i < n; ++i) {
        uint64_t tag = events[i].data.u64;
        uint32_t ev = events[i].events;
        switch (tag) {
          case kTagListener:
            Accept();
            break;
          case kTagUdp:
            ReadDatagrams();
            break;
          case kTagDnsUpstream:
            ReadUpstreamDns();
            break;
          case kTagWake:
            ApplyRequests();
            break;
          default:
            OnObjectEvent(tag, ev);
            break;
        }
      }
      Housekeeping();
    }
    conns_.clear();
    flows_.clear();
    open_connections_ = 0;
    std::lock_guard lock(mu_);
    done_cv_.notify_all();
  }

  void ApplyRequests() {
    uint64_t drain;
    while (::read(wake_.get(), &drain, sizeof(drain)) > 0) {
    }
    std::optional<EgressPolicy> next;
    uint64_t ticket;
    {
      std::lock_guard lock(mu_);
      if (!next_policy_) return;
      next = std::move(next_policy_);
      next_policy_.reset();
      ticket = requested_;
    }
    policy_ = std::move(*next);
    Reevaluate();
    {
      std::lock_guard lock(mu_);
      applied_ = ticket;
    }
    done_cv_.notify_all();
  }

  // Open connections and flows the new policy no longer allows are closed.
  void Reevaluate() {
    std::vector<uint64_t> doomed;
    for (auto& [id, c] : conns_) {
      if (c->state != TcpConn::State::kRelay) continue;
      bool ok = c->name.empty()
                    ? policy_
                          .AllowsAddress(c->target, c->target_port, Transport::kTcp,
                                         IsHostLocal(c->target))
                          .allowed
                    : policy_.AllowsName(c->name, c->target_port, Transport::kTcp).allowed &&
                          policy_.AllowsAnswer(c->target, IsHostLocal(c->target));
      if (!ok) doomed.push_back(id);
    }
    for (uint64_t id : doomed) {
      auto it = conns_.find(id);
      AF_LOG_INFO("egress: closing {} to {}: no longer allowed", id,
                  HostPort(it->second->target, it->second->target_port));
      ResetAndClose(it->second->client);
      CloseConn(id);
    }
    std::vector<uint64_t> dead_flows;
    for (auto& [id, f] : flows_) {
      bool ok =
          policy_.AllowsAddress(f->orig, f->port, Transport::kUdp, IsHostLocal(f->orig)).allowed ||
          (!f->name.empty() && policy_.AllowsName(f->name, f->port, Transport::kUdp).allowed);
      if (!ok) dead_flows.push_back(id);
    }
    for (uint64_t id : dead_flows) CloseFlow(id);
  }

  void Housekeeping() {
    auto now = Clock::now();
    if (now - host_addresses_at_ > std::chrono::seconds(2)) RefreshHostAddresses();
    std::vector<uint64_t> expired;
    for (auto& [id, c] : conns_) {
      if (c->state != TcpConn::State::kRelay && now >= c->deadline) expired.push_back(id);
    }
    for (uint64_t id : expired) {
      auto it = conns_.find(id);
      if (it == conns_.end()) continue;
      TcpConn& c = *it->second;
      if (c.state == TcpConn::State::kPeek) {
        DecideAfterPeek(c);  // silence is an answer: no name to read
      } else if (c.state == TcpConn::State::kConnect) {
        ConnectNext(c, ETIMEDOUT);
      } else {
        Deny(c, "the name did not resolve in time");
      }
    }
    std::vector<uint64_t> idle;
    for (auto& [id, f] : flows_) {
      if (now - f->last > kUdpIdle) idle.push_back(id);
    }
    for (uint64_t id : idle) CloseFlow(id);
    std::vector<uint16_t> late;
    for (auto& [id, p] : pending_) {
      if (now >= p.deadline) late.push_back(id);
    }
    for (uint16_t id : late) RetryOrFail(id);
    if (learned_.size() > kMaxLearned) learned_.clear();
    if (cache_.size() > kMaxLearned) cache_.clear();
  }

  void OnObjectEvent(uint64_t tag, uint32_t ev) {
    uint64_t id = tag & ~3ULL;
    auto role = static_cast<Role>(tag & 3);
    if (role == kFlow) {
      OnFlowReadable(id);
      return;
    }
    auto it = conns_.find(id);
    if (it == conns_.end()) return;
    TcpConn& c = *it->second;
    if (role == kClient && c.state != TcpConn::State::kRelay && c.state != TcpConn::State::kPeek &&
        (ev & (EPOLLHUP | EPOLLERR))) {
      CloseConn(id);  // the client left while we were deciding
      return;
    }
    switch (c.state) {
      case TcpConn::State::kPeek:
        if (role == kClient) ReadHead(c);
        break;
      case TcpConn::State::kResolve:
        break;
      case TcpConn::State::kConnect:
        if (role == kUpstream && (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
          int err = 0;
          socklen_t len = sizeof(err);
          ::getsockopt(c.upstream.get(), SOL_SOCKET, SO_ERROR, &err, &len);
          if (err != 0) {
            ConnectNext(c, err);
          } else {
            Connected(c);
          }
        }
        break;
      case TcpConn::State::kRelay: {
        if (ev & EPOLLERR) {
          ResetAndClose(c.client);
          CloseConn(id);
          return;
        }
        uint64_t moved = bytes_in_.load() + bytes_out_.load();
        Pump(c);
        // A hang-up that moved nothing cannot be waited out (epoll reports it forever).
        if ((ev & EPOLLHUP) && moved == bytes_in_.load() + bytes_out_.load() &&
            conns_.count(id) > 0) {
          CloseConn(id);
        }
        break;
      }
    }
  }

  // ---- TCP --------------------------------------------------------------------------------
  void Accept() {
    while (true) {
      sockaddr_storage peer{};
      socklen_t len = sizeof(peer);
      int fd = ::accept4(sockets_.tcp_listener.get(), reinterpret_cast<sockaddr*>(&peer), &len,
                         SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) return;
      auto c = std::make_unique<TcpConn>();
      c->client.Reset(fd);
      sockaddr_storage local{};
      len = sizeof(local);
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len);
      std::tie(c->orig, c->port) = FromSockaddr(local);  // TPROXY: the original destination
      std::tie(c->client_ip, c->client_port) = FromSockaddr(peer);
      c->target_port = c->port;
      if (conns_.size() >= kMaxConnections) {
        ++tcp_denied_;
        ResetAndClose(c->client);
        continue;
      }
      c->id = NewId();
      c->client_events = UINT32_MAX;
      c->upstream_events = UINT32_MAX;
      TcpConn& ref = *c;
      conns_[c->id] = std::move(c);
      open_connections_ = conns_.size();
      OnNewConnection(ref);
    }
  }

  // The name the sandbox's resolver gave out for `a` that the policy allows on this port.
  std::string LearnedName(const IpAddress& a, uint16_t port, Transport t) {
    auto it = learned_.find(a);
    if (it == learned_.end()) return "";
    auto now = Clock::now();
    for (const auto& [name, expires] : it->second) {
      if (expires > now && policy_.AllowsName(name, port, t).allowed) return name;
    }
    return "";
  }

  void OnNewConnection(TcpConn& c) {
    EgressDecision d = policy_.AllowsAddress(c.orig, c.port, Transport::kTcp, IsHostLocal(c.orig));
    if (d.allowed) {
      StartConnect(c, {c.orig});
      return;
    }
    // Web ports: read the name the client sends (SNI, Host) before anything else. Other ports:
    // a server may speak first (SSH), so an address our resolver gave out for an allowed name
    // is enough.
    bool web = c.port == 80 || c.port == 443;
    if (!web) {
      std::string learned = LearnedName(c.orig, c.port, Transport::kTcp);
      if (!learned.empty()) {
        c.name = learned;
        StartConnect(c, {c.orig});
        return;
      }
    }
    c.state = TcpConn::State::kPeek;
    c.deadline = Clock::now() + kPeekTimeout;
    Rewatch(c.client.get(), &c.client_events, EPOLLIN, c.id | kClient);
  }

  void ReadHead(TcpConn& c) {
    char buf[4096];
    bool eof = false;
    while (c.head.size() < kMaxPeekBytes) {
      ssize_t n =
          ::recv(c.client.get(), buf, std::min(sizeof(buf), kMaxPeekBytes - c.head.size()), 0);
      if (n > 0) {
        c.head.append(buf, static_cast<size_t>(n));
        continue;
      }
      if (n == 0) eof = true;
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) eof = true;
      break;
    }
    PeekResult r = PeekHostName(c.head);
    if (r.kind == PeekResult::Kind::kNeedMore && !eof && c.head.size() < kMaxPeekBytes) return;
    DecideAfterPeek(c);
  }

  void DecideAfterPeek(TcpConn& c) {
    PeekResult r = PeekHostName(c.head);
    c.protocol = r.kind;
    if (r.kind == PeekResult::Kind::kConnect) {
      // A client that takes us for a proxy: the request names the destination.
      c.head.erase(0, r.consumed);
      c.connect_reply = true;
      c.target_port = r.port;
      if (r.name.empty()) {
        auto literal = IpAddress::Parse(r.literal);
        if (!literal) {
          Deny(c, "CONNECT to a target that is neither a host name nor an address");
          return;
        }
        EgressDecision d =
            policy_.AllowsAddress(*literal, r.port, Transport::kTcp, IsHostLocal(*literal));
        if (!d.allowed) {
          Deny(c, d.reason);
          return;
        }
        StartConnect(c, {*literal});
        return;
      }
      DecideName(c, r.name);
      return;
    }
    if (!r.name.empty()) {
      DecideName(c, r.name);
      return;
    }
    // An HTTP request or TLS hello without a name asked for the address itself (a URL with an
    // IP in it): decided by address, even if that address belongs to an allowed name. Only a
    // protocol we cannot read (or a silent client) falls back on the name our resolver gave out.
    bool named_protocol = r.kind == PeekResult::Kind::kHttp || r.kind == PeekResult::Kind::kTls;
    std::string learned = named_protocol ? "" : LearnedName(c.orig, c.port, Transport::kTcp);
    if (!learned.empty()) {
      c.name = learned;
      StartConnect(c, {c.orig});
      return;
    }
    EgressDecision d = policy_.AllowsAddress(c.orig, c.port, Transport::kTcp, IsHostLocal(c.orig));
    std::string why = d.reason;
    if (named_protocol) why += "; the request names no host, only the address";
    Deny(c, why);
  }

  void DecideName(TcpConn& c, const std::string& name) {
    c.name = name;
    EgressDecision d = policy_.AllowsName(name, c.target_port, Transport::kTcp);
    if (!d.allowed) {
      Deny(c, d.reason);
      return;
    }
    auto it = cache_.find(name);
    if (it != cache_.end() && it->second.expires > Clock::now()) {
      UseAddresses(c, it->second);
      return;
    }
    c.state = TcpConn::State::kResolve;
    c.deadline = Clock::now() + std::chrono::seconds(5);
    Rewatch(c.client.get(), &c.client_events, 0, c.id | kClient);
    DnsWaiter w;
    w.for_conn = true;
    w.conn_id = c.id;
    Lookup(name, std::move(w));
  }

  std::vector<IpAddress> Allowed(const std::vector<IpAddress>& addrs) {
    std::vector<IpAddress> out;
    for (const auto& a : addrs) {
      if (policy_.AllowsAnswer(a, IsHostLocal(a))) out.push_back(a);
    }
    return out;
  }

  void UseAddresses(TcpConn& c, const CachedName& entry) {
    std::vector<IpAddress> ok = Allowed(entry.addresses);
    if (ok.empty()) {
      Deny(c, entry.addresses.empty()
                  ? fmt::format("{} has no address", c.name)
                  : fmt::format("{} resolves only to addresses that are not public (DNS "
                                "rebinding is refused)",
                                c.name));
      return;
    }
    // Keep the address the client picked when it is one of the name's: same server, same session.
    if (!c.connect_reply && std::find(ok.begin(), ok.end(), c.orig) != ok.end()) {
      StartConnect(c, {c.orig});
    } else {
      StartConnect(c, std::move(ok));
    }
  }

  void StartConnect(TcpConn& c, std::vector<IpAddress> candidates) {
    c.candidates = std::move(candidates);
    c.next_candidate = 0;
    c.state = TcpConn::State::kConnect;
    // The client stays quiet while we connect: its bytes wait in its socket.
    Rewatch(c.client.get(), &c.client_events, 0, c.id | kClient);
    ConnectNext(c, 0);
  }

  void ConnectNext(TcpConn& c, int last_error) {
    if (c.upstream) {
      ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, c.upstream.get(), nullptr);
      c.upstream.Reset();
      c.upstream_events = UINT32_MAX;
    }
    while (c.next_candidate < c.candidates.size()) {
      c.target = c.candidates[c.next_candidate++];
      SockAddr sa = SockAddr::From(c.target, c.target_port);
      UniqueFd fd(::socket(sa.ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
      if (!fd) {
        last_error = errno;
        continue;
      }
      int one = 1;
      ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      int rc = ::connect(fd.get(), sa.get(), sa.len);
      if (rc != 0 && errno != EINPROGRESS) {
        last_error = errno;
        continue;
      }
      c.upstream = std::move(fd);
      c.deadline = Clock::now() + kConnectTimeout;
      Rewatch(c.upstream.get(), &c.upstream_events, EPOLLOUT, c.id | kUpstream);
      return;
    }
    // Allowed, but the destination did not answer: the client sees a reset, as it would
    // connecting directly to a closed port.
    AF_LOG_INFO("egress: {} unreachable: {}", HostPort(c.target, c.target_port),
                std::strerror(last_error));
    if (c.connect_reply) {
      static constexpr char kBadGateway[] =
          "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
      (void)!::send(c.client.get(), kBadGateway, sizeof(kBadGateway) - 1, MSG_NOSIGNAL);
      c.client.Reset();
    } else {
      ResetAndClose(c.client);
    }
    CloseConn(c.id);
  }

  void Connected(TcpConn& c) {
    ++tcp_allowed_;
    c.counted = true;
    c.state = TcpConn::State::kRelay;
    if (c.connect_reply) {
      static constexpr char kEstablished[] = "HTTP/1.1 200 Connection established\r\n\r\n";
      (void)!::send(c.client.get(), kEstablished, sizeof(kEstablished) - 1, MSG_NOSIGNAL);
    }
    for (Pipe* p : {&c.up, &c.down}) {
      int fds[2];
      if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
        ResetAndClose(c.client);
        CloseConn(c.id);
        return;
      }
      p->r.Reset(fds[0]);
      p->w.Reset(fds[1]);
      ::fcntl(fds[1], F_SETPIPE_SZ, kPipeSize);
    }
    Pump(c);
  }

  // Moves what can move in both directions without blocking, then asks epoll for what is
  // missing. Returns after the connection was closed when both directions are done.
  void Pump(TcpConn& c) {
    const uint64_t id = c.id;
    if (!PumpUp(c) || !PumpDown(c)) {
      ResetAndClose(c.client);
      CloseConn(id);
      return;
    }
    if (c.up.shut && c.down.shut) {
      CloseConn(id);
      return;
    }
    bool head_pending = c.head_sent < c.head.size();
    uint32_t client_want = 0, upstream_want = 0;
    if (!c.up.eof && c.up.bytes < static_cast<size_t>(kPipeSize) && !head_pending) {
      client_want |= EPOLLIN;
    }
    if (c.down.bytes > 0) client_want |= EPOLLOUT;
    if (!c.down.eof && c.down.bytes < static_cast<size_t>(kPipeSize)) upstream_want |= EPOLLIN;
    if (c.up.bytes > 0 || head_pending) upstream_want |= EPOLLOUT;
    Rewatch(c.client.get(), &c.client_events, client_want, id | kClient);
    Rewatch(c.upstream.get(), &c.upstream_events, upstream_want, id | kUpstream);
  }

  // One direction: src → pipe → dst. False on a hard error.
  bool Move(int src, int dst, Pipe& p, std::atomic<uint64_t>& counter) {
    while (true) {
      bool progress = false;
      if (!p.eof && p.bytes < static_cast<size_t>(kPipeSize)) {
        ssize_t n = ::splice(src, nullptr, p.w.get(), nullptr, kPipeSize - p.bytes,
                             SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
          p.bytes += static_cast<size_t>(n);
          progress = true;
        } else if (n == 0) {
          p.eof = true;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
          return false;
        }
      }
      if (p.bytes > 0) {
        ssize_t n =
            ::splice(p.r.get(), nullptr, dst, nullptr, p.bytes, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
        if (n > 0) {
          p.bytes -= static_cast<size_t>(n);
          counter += static_cast<uint64_t>(n);
          progress = true;
        } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
          return false;
        }
      }
      if (!progress) break;
    }
    if (p.eof && p.bytes == 0 && !p.shut) {
      ::shutdown(dst, SHUT_WR);
      p.shut = true;
    }
    return true;
  }

  bool PumpUp(TcpConn& c) {
    while (c.head_sent < c.head.size()) {
      ssize_t n = ::send(c.upstream.get(), c.head.data() + c.head_sent, c.head.size() - c.head_sent,
                         MSG_NOSIGNAL);
      if (n > 0) {
        c.head_sent += static_cast<size_t>(n);
        bytes_out_ += static_cast<uint64_t>(n);
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
      return false;
    }
    if (!c.head.empty()) {
      c.head.clear();
      c.head.shrink_to_fit();
      c.head_sent = 0;
    }
    return Move(c.client.get(), c.upstream.get(), c.up, bytes_out_);
  }
  bool PumpDown(TcpConn& c) { return Move(c.upstream.get(), c.client.get(), c.down, bytes_in_); }

  void Deny(TcpConn& c, const std::string& reason) {
    ++tcp_denied_;
    EgressDenial d;
    d.operation = "connect";
    d.address = c.orig.ToString();
    d.port = c.target_port;
    d.name = c.name;
    d.destination =
        c.name.empty() ? HostPort(c.orig, c.port) : fmt::format("{}:{}", c.name, c.target_port);
    d.reason = reason;
    SocketTuple t{false, c.client_ip, c.client_port, c.orig, c.port};
    Report(std::move(d), &t);
    // Say it in the client's own protocol when we know it.
    std::string message;
    if (c.protocol == PeekResult::Kind::kHttp || c.protocol == PeekResult::Kind::kConnect) {
      std::string body = fmt::format("agentfense egress policy: {}\n", reason);
      message = fmt::format(
          "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n"
          "Connection: close\r\nX-AgentFense-Egress: denied\r\n\r\n{}",
          body.size(), body);
    } else if (c.protocol == PeekResult::Kind::kTls) {
      message = std::string("\x15\x03\x03\x00\x02\x02\x31", 7);  // fatal alert access_denied(49)
    }
    if (!message.empty()) {
      (void)!::send(c.client.get(), message.data(), message.size(), MSG_NOSIGNAL);
      ::shutdown(c.client.get(), SHUT_WR);
      c.client.Reset();
    } else {
      ResetAndClose(c.client);
    }
    CloseConn(c.id);
  }

  void CloseConn(uint64_t id) {
    auto it = conns_.find(id);
    if (it == conns_.end()) return;
    // Closing a descriptor removes it from the epoll set.
    conns_.erase(it);
    open_connections_ = conns_.size();
  }

  // ---- DNS --------------------------------------------------------------------------------
  void Lookup(const std::string& name, DnsWaiter waiter) {
    for (auto& [id, p] : pending_) {
      if (p.name == name) {
        p.waiters.push_back(std::move(waiter));
        return;
      }
    }
    if (pending_.size() >= kMaxPendingDns || servers_.empty()) {
      CachedName failed;
      failed.rcode = Rcode::kServFail;
      Resolved(name, failed, {std::move(waiter)});
      return;
    }
    PendingLookup p;
    p.name = name;
    uint16_t id = 0;
    do {
      (void)!::getrandom(&id, sizeof(id), 0);
    } while (pending_.count(id) > 0);
    p.id = id;
    p.waiters.push_back(std::move(waiter));
    pending_[id] = std::move(p);
    SendUpstream(pending_[id]);
  }

  void SendUpstream(PendingLookup& p) {
    const policy::SocketAddress& s = servers_[p.server % servers_.size()];
    std::string q = BuildQuery(p.id, p.name, kTypeA);
    SockAddr sa = SockAddr::From(s.address, s.port);
    int fd = s.address.v6 ? dns6_.get() : dns4_.get();
    if (fd >= 0) (void)::sendto(fd, q.data(), q.size(), 0, sa.get(), sa.len);
    p.deadline = Clock::now() + kDnsTimeout;
    ++p.tries;
  }

  void RetryOrFail(uint16_t id) {
    auto it = pending_.find(id);
    if (it == pending_.end()) return;
    PendingLookup& p = it->second;
    if (p.tries < 2 * static_cast<int>(std::max<size_t>(servers_.size(), 1))) {
      ++p.server;
      SendUpstream(p);
      return;
    }
    PendingLookup done = std::move(p);
    pending_.erase(it);
    CachedName failed;
    failed.rcode = Rcode::kServFail;
    Resolved(done.name, failed, done.waiters);
  }

  void ReadUpstreamDns() {
    for (int fd : {dns4_.get(), dns6_.get()}) {
      if (fd < 0) continue;
      while (true) {
        char buf[4096];
        sockaddr_storage from{};
        socklen_t len = sizeof(from);
        ssize_t n = ::recvfrom(fd, buf, sizeof(buf), 0, reinterpret_cast<sockaddr*>(&from), &len);
        if (n <= 0) break;
        if (n < 2) continue;
        uint16_t id = static_cast<uint16_t>((static_cast<uint8_t>(buf[0]) << 8) |
                                            static_cast<uint8_t>(buf[1]));
        auto it = pending_.find(id);
        if (it == pending_.end()) continue;
        auto [from_ip, from_port] = FromSockaddr(from);
        const policy::SocketAddress& s = servers_[it->second.server % servers_.size()];
        if (!(from_ip == s.address) || from_port != s.port) continue;  // not our server's answer
        auto ans =
            ParseUpstreamAnswer(std::string_view(buf, static_cast<size_t>(n)), it->second.name);
        if (!ans) continue;
        PendingLookup done = std::move(it->second);
        pending_.erase(it);
        CachedName entry;
        entry.rcode = ans->rcode == Rcode::kNoError || ans->rcode == Rcode::kNxDomain
                          ? ans->rcode
                          : Rcode::kServFail;
        entry.addresses = std::move(ans->addresses);
        auto ttl = std::clamp<std::chrono::seconds>(std::chrono::seconds(ans->ttl), kMinCacheTtl,
                                                    kMaxCacheTtl);
        entry.expires = Clock::now() + ttl;
        if (entry.rcode != Rcode::kServFail) cache_[done.name] = entry;
        Resolved(done.name, entry, done.waiters);
      }
    }
  }

  void Resolved(const std::string& name, const CachedName& entry,
                const std::vector<DnsWaiter>& waiters) {
    for (const auto& w : waiters) {
      if (w.for_conn) {
        auto it = conns_.find(w.conn_id);
        if (it == conns_.end() || it->second->state != TcpConn::State::kResolve) continue;
        if (entry.rcode != Rcode::kNoError) {
          Deny(*it->second, fmt::format("{} does not resolve", name));
        } else {
          UseAddresses(*it->second, entry);
        }
      } else {
        AnswerFromEntry(w, name, entry);
      }
    }
  }

  void AnswerFromEntry(const DnsWaiter& w, const std::string& name, const CachedName& entry) {
    if (entry.rcode != Rcode::kNoError) {
      SendDns(w, BuildAnswer(w.question, entry.rcode, {}, 0));
      return;
    }
    std::vector<IpAddress> ok = Allowed(entry.addresses);
    if (ok.empty() && !entry.addresses.empty()) {
      std::string why = fmt::format(
          "{} resolves only to addresses that are not public ({}): DNS rebinding is refused", name,
          entry.addresses.front().ToString());
      RefuseLookup(w, name, why);
      return;
    }
    auto expires = entry.expires;
    for (const auto& a : ok) {
      auto& names = learned_[a];
      bool found = false;
      for (auto& [n, e] : names) {
        if (n == name) {
          e = std::max(e, expires);
          found = true;
        }
      }
      if (!found && names.size() < 16) names.emplace_back(name, expires);
    }
    auto ttl = std::chrono::duration_cast<std::chrono::seconds>(expires - Clock::now()).count();
    ++dns_answered_;
    SendDns(w, BuildAnswer(w.question, Rcode::kNoError, ok,
                           static_cast<uint32_t>(std::max<int64_t>(ttl, 1))));
  }

  void RefuseLookup(const DnsWaiter& w, const std::string& name, const std::string& why) {
    ++dns_refused_;
    SendDns(w, BuildAnswer(w.question, Rcode::kRefused, {}, 0, "agentfense: " + why));
    if (FirstReport("dns " + name)) {
      EgressDenial d;
      d.operation = "resolve";
      d.destination = name;
      d.name = name;
      d.reason = why;
      SocketTuple t{true, w.client_ip, w.client_port, w.server_ip, 53};
      Report(std::move(d), &t);
    }
  }

  void HandleDns(std::string_view packet, const IpAddress& client, uint16_t client_port,
                 const IpAddress& server) {
    auto q = ParseQuery(packet);
    if (!q) return;
    DnsWaiter w;
    w.question = *q;
    w.client_ip = client;
    w.client_port = client_port;
    w.server_ip = server;
    EgressDecision d = policy_.AllowsLookup(q->name);
    if (!d.allowed || q->klass != kClassIn) {
      RefuseLookup(w, q->name,
                   fmt::format("{} is not in the sandbox's egress allow-list", q->name));
      return;
    }
    if (q->type != kTypeA) {
      // Only IPv4 leaves the sandbox: AAAA and other types get an empty answer, so clients
      // move on to A at once.
      ++dns_answered_;
      SendDns(w, BuildAnswer(*q, Rcode::kNoError, {}, 60));
      return;
    }
    auto it = cache_.find(q->name);
    if (it != cache_.end() && it->second.expires > Clock::now()) {
      AnswerFromEntry(w, q->name, it->second);
      return;
    }
    Lookup(q->name, std::move(w));
  }

  void SendDns(const DnsWaiter& w, const std::string& reply) {
    SockAddr to = SockAddr::From(w.client_ip, w.client_port);
    static const IpAddress kResolver = IpAddress::Parse(kResolverAddress).value_or(IpAddress{});
    if (w.server_ip == kResolver) {
      (void)::sendto(sockets_.resolver.get(), reply.data(), reply.size(), 0, to.get(), to.len);
      return;
    }
    // Asked of another server (8.8.8.8:53): the answer must come from that address, or the
    // client's connected socket drops it.
    auto sock = ReplySocket(w.server_ip, 53);
    if (!sock.ok()) return;
    (void)::sendto(sock->get(), reply.data(), reply.size(), 0, to.get(), to.len);
  }

  // A socket in the sandbox's namespace that sends from `from`:`port` (IP_TRANSPARENT).
  Result<UniqueFd> ReplySocket(const IpAddress& from, uint16_t port) {
    AF_ASSIGN_OR_RETURN(UniqueFd fd, SocketInNetns(netns_.get(), home_netns_.get(), AF_INET,
                                                   SOCK_DGRAM | SOCK_NONBLOCK));
    int one = 1;
    ::setsockopt(fd.get(), SOL_IP, IP_TRANSPARENT, &one, sizeof(one));
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    SockAddr sa = SockAddr::From(from, port);
    if (::bind(fd.get(), sa.get(), sa.len) != 0) return Error::FromErrno(errno, "bind reply");
    return fd;
  }

  // ---- UDP --------------------------------------------------------------------------------
  void ReadDatagrams() {
    for (int i = 0; i < 256; ++i) {
      char buf[65536];
      char control[128];
      sockaddr_storage from{};
      iovec iov{buf, sizeof(buf)};
      msghdr msg{};
      msg.msg_name = &from;
      msg.msg_namelen = sizeof(from);
      msg.msg_iov = &iov;
      msg.msg_iovlen = 1;
      msg.msg_control = control;
      msg.msg_controllen = sizeof(control);
      ssize_t n = ::recvmsg(sockets_.udp.get(), &msg, MSG_DONTWAIT);
      if (n < 0) return;
      std::optional<std::pair<IpAddress, uint16_t>> orig;
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_IP && c->cmsg_type == IP_ORIGDSTADDR) {
          sockaddr_storage ss{};
          std::memcpy(&ss, CMSG_DATA(c), sizeof(sockaddr_in));
          orig = FromSockaddr(ss);
        }
      }
      if (!orig) continue;
      auto [client, client_port] = FromSockaddr(from);
      std::string_view data(buf, static_cast<size_t>(n));
      if (orig->second == 53) {
        HandleDns(data, client, client_port, orig->first);
      } else {
        HandleDatagram(data, client, client_port, orig->first, orig->second);
      }
    }
  }

  void HandleDatagram(std::string_view data, const IpAddress& client, uint16_t client_port,
                      const IpAddress& orig, uint16_t port) {
    for (auto& [id, f] : flows_) {
      if (f->client_ip == client && f->client_port == client_port && f->orig == orig &&
          f->port == port) {
        f->last = Clock::now();
        (void)::send(f->upstream.get(), data.data(), data.size(), MSG_DONTWAIT);
        return;
      }
    }
    EgressDecision d = policy_.AllowsAddress(orig, port, Transport::kUdp, IsHostLocal(orig));
    std::string name;
    if (!d.allowed) name = LearnedName(orig, port, Transport::kUdp);
    if (!d.allowed && name.empty()) {
      ++udp_denied_;
      if (FirstReport(
              fmt::format("udp {}:{} {}", client.ToString(), client_port, HostPort(orig, port)))) {
        EgressDenial e;
        e.operation = "send";
        e.address = orig.ToString();
        e.port = port;
        e.destination = HostPort(orig, port);
        e.reason = d.reason;
        SocketTuple t{true, client, client_port, orig, port};
        Report(std::move(e), &t);
      }
      return;
    }
    if (flows_.size() >= kMaxUdpFlows) {
      ++udp_denied_;
      return;
    }
    auto f = std::make_unique<UdpFlow>();
    f->id = NewId();
    f->client_ip = client;
    f->client_port = client_port;
    f->orig = orig;
    f->port = port;
    f->name = name;
    f->last = Clock::now();
    SockAddr dst = SockAddr::From(orig, port);
    f->upstream.Reset(::socket(dst.ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!f->upstream || ::connect(f->upstream.get(), dst.get(), dst.len) != 0) return;
    auto reply = ReplySocket(orig, port);
    if (!reply.ok()) return;
    f->reply = std::move(*reply);
    SockAddr back = SockAddr::From(client, client_port);
    if (::connect(f->reply.get(), back.get(), back.len) != 0) return;
    if (!Watch(f->upstream.get(), EPOLLIN, f->id | kFlow).ok()) return;
    ++udp_allowed_;
    (void)::send(f->upstream.get(), data.data(), data.size(), MSG_DONTWAIT);
    flows_[f->id] = std::move(f);
  }

  void OnFlowReadable(uint64_t id) {
    auto it = flows_.find(id);
    if (it == flows_.end()) return;
    UdpFlow& f = *it->second;
    char buf[65536];
    while (true) {
      ssize_t n = ::recv(f.upstream.get(), buf, sizeof(buf), MSG_DONTWAIT);
      if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        CloseFlow(id);  // ECONNREFUSED: the destination port is closed
        return;
      }
      f.last = Clock::now();
      bytes_in_ += static_cast<uint64_t>(n);
      (void)::send(f.reply.get(), buf, static_cast<size_t>(n), MSG_DONTWAIT);
    }
  }

  void CloseFlow(uint64_t id) { flows_.erase(id); }

  UniqueFd netns_;
  UniqueFd home_netns_;
  SandboxSockets sockets_;
  EgressPolicy policy_;  // loop thread only
  EgressProxyOptions options_;
  std::vector<policy::SocketAddress> servers_;
  UniqueFd epoll_, wake_, dns4_, dns6_;
  std::thread thread_;

  // Loop thread only.
  uint64_t next_id_ = kFirstObjectId;
  std::unordered_map<uint64_t, std::unique_ptr<TcpConn>> conns_;
  std::unordered_map<uint64_t, std::unique_ptr<UdpFlow>> flows_;
  std::map<uint16_t, PendingLookup> pending_;
  std::map<std::string, CachedName> cache_;
  std::map<IpAddress, std::vector<std::pair<std::string, Clock::time_point>>> learned_;
  std::map<std::string, Clock::time_point> reported_;
  std::set<IpAddress> host_addresses_;
  Clock::time_point host_addresses_at_;

  std::mutex mu_;  // guards the requests below; leaf lock
  std::condition_variable done_cv_;
  bool stopping_ = false;
  std::optional<EgressPolicy> next_policy_;
  uint64_t requested_ = 0, applied_ = 0;

  std::atomic<uint64_t> tcp_allowed_{0}, tcp_denied_{0}, udp_allowed_{0}, udp_denied_{0},
      dns_answered_{0}, dns_refused_{0}, bytes_out_{0}, bytes_in_{0}, open_connections_{0};
};

EgressProxy::EgressProxy(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
EgressProxy::~EgressProxy() = default;

Result<std::unique_ptr<EgressProxy>> EgressProxy::Start(UniqueFd netns, SandboxSockets sockets,
                                                        EgressPolicy policy,
                                                        EgressProxyOptions options) {
  std::vector<std::string> texts = options.dns_servers;
  if (texts.empty()) {
    UniqueFd fd(::open("/etc/resolv.conf", O_RDONLY | O_CLOEXEC));
    std::string content;
    char buf[4096];
    ssize_t n;
    while (fd && (n = ::read(fd.get(), buf, sizeof(buf))) > 0) {
      content.append(buf, static_cast<size_t>(n));
    }
    texts = NameserversFromResolvConf(content);
  }
  std::vector<policy::SocketAddress> servers;
  for (const auto& t : texts) {
    AF_ASSIGN_OR_RETURN(policy::SocketAddress s, policy::ParseSocketAddress(t, 53));
    servers.push_back(s);
  }
  if (servers.empty()) AF_LOG_WARN("egress: no upstream DNS server: every lookup will fail");
  auto impl = std::make_unique<Impl>(std::move(netns), std::move(sockets), std::move(policy),
                                     std::move(options));
  AF_RETURN_IF_ERROR(impl->Init(std::move(servers)));
  return std::unique_ptr<EgressProxy>(new EgressProxy(std::move(impl)));
}

Status EgressProxy::SetPolicy(policy::EgressPolicy policy) {
  return impl_->SetPolicy(std::move(policy));
}
EgressStats EgressProxy::Stats() const { return impl_->Stats(); }
int EgressProxy::netns_fd() const { return impl_->netns_fd(); }

}  // namespace agentfense::net
