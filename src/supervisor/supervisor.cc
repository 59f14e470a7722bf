#include "supervisor/supervisor.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstring>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "base/log.h"
#include "supervisor/relay.h"

namespace agentfense::supervisor {
namespace {

using nlohmann::json;

constexpr size_t kMaxAuditBytes = 64ull << 20;  // beyond this, denials are counted, not written
constexpr size_t kMaxControlLine = 4u << 20;

json ErrorReply(const Error& e) {
  return {{"ok", false}, {"code", static_cast<int>(e.code())}, {"error", e.ToString()}};
}

json ChangeJson(const fs::Change& c) {
  return {{"path", c.path},
          {"kind", std::string(fs::ChangeKindName(c.kind))},
          {"size", c.size},
          {"is_dir", c.is_dir}};
}

json CheckpointJson(const fs::CheckpointInfo& c) {
  return {{"name", c.name},   {"created_ns", c.created_ns}, {"files", c.files},
          {"dirs", c.dirs},   {"bytes", c.bytes},           {"deletions", c.deletions}};
}

// Paths are host file names (any bytes): invalid UTF-8 is replaced in the JSON, never an error.
std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace

Result<SandboxIdentity> AcquireIdentity(const SupervisorSpec& spec, runtime::IdentityLease* lease) {
  if (::geteuid() != 0) {
    // Rootless: no other identity can be entered; the sandbox is the user (docs/RUNTIMES.md).
    return SandboxIdentity{::getuid(), ::getgid()};
  }
  AF_ASSIGN_OR_RETURN(runtime::IdentityRange range,
                      runtime::IdentityRange::Parse(spec.identity_range));
  AF_RETURN_IF_ERROR(runtime::ValidateIdentityRange(range));
  auto got = runtime::IdentityLease::Acquire(range, spec.identity_lease_dir, spec.preferred_uid,
                                             spec.sandbox_id);
  if (!got.ok()) return std::move(got).error().With("leasing a host identity");
  *lease = std::move(*got);
  return SandboxIdentity{lease->uid(), lease->gid()};
}

Result<UniqueFd> ListenUnix(const std::string& path) {
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path)) {
    return Error(ErrorCode::kInvalidArgument, "socket path too long: " + path);
  }
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error::FromErrno(errno, "socket");
  UniqueFd sock(fd);
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  ::unlink(path.c_str());  // a socket file left by an earlier supervisor of this sandbox
  // The run directory is 0700 and root's; the umask makes the socket 0600 from birth (no window).
  mode_t old = ::umask(0177);
  int rc = ::bind(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  ::umask(old);
  if (rc != 0) return Error::FromErrno(errno, "bind " + path);
  if (::listen(sock.get(), 64) != 0) return Error::FromErrno(errno, "listen " + path);
  return sock;
}

Result<std::unique_ptr<Supervisor>> Supervisor::Start(SupervisorSpec spec) {
  std::unique_ptr<Supervisor> s(new Supervisor());
  s->spec_ = std::move(spec);
  const SupervisorSpec& sp = s->spec_;

  int efd = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (efd < 0) return Error::FromErrno(errno, "eventfd");
  s->wake_.Reset(efd);

  std::string audit_path = sp.run_dir + "/" + kAuditFile;
  int afd = ::open(audit_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW,
                   0600);
  if (afd < 0) return Error::FromErrno(errno, "open " + audit_path);
  s->audit_.Reset(afd);
  struct stat st{};
  if (::fstat(afd, &st) == 0) s->audit_bytes_ = static_cast<size_t>(st.st_size);

  AF_ASSIGN_OR_RETURN(auto policy, policy::Policy::Compile(sp.rules));
  if (sp.network) {
    // Refused before anything is mounted or started: a bad rule is the caller's error.
    auto egress =
        policy::EgressPolicy::Create(sp.egress.any_public, sp.egress.allow, sp.egress.public_cidrs);
    if (!egress.ok()) return std::move(egress).error().With("egress policy");
  }
  fs::FsOptions options;
  Supervisor* self = s.get();
  options.ask_timeout = std::chrono::milliseconds(sp.ask_timeout_ms);
  if (sp.fuse_busy_poll_us >= 0 && sp.fuse_busy_poll_us <= fs::kMaxBusyPollUs) {
    options.busy_poll_us = static_cast<int>(sp.fuse_busy_poll_us);
  }
  options.ask_events = [self](const fs::AskEvent& e) { self->OnAskEvent(e); };
  options.audit = [self](const fs::AuditEvent& e) {
    self->WriteAudit({{"time", static_cast<int64_t>(::time(nullptr))},
                      {"path", e.path},
                      {"op", std::string(e.op)},
                      {"rule", e.rule},
                      {"pid", e.pid},
                      {"errno", e.error}});
  };
  if (!sp.delta_dir.empty()) {
    // The delta holds the sandbox's pending writes: private to the supervisor (0700).
    if (::mkdir(sp.delta_dir.c_str(), 0700) != 0 && errno != EEXIST) {
      return Error::FromErrno(errno, "creating the delta directory " + sp.delta_dir);
    }
    options.delta_dir = sp.delta_dir;
    options.delta_quota_bytes = sp.delta_quota_bytes;
    options.delta_quota_inodes = sp.delta_quota_inodes;
    if (sp.max_checkpoints > 0) options.max_checkpoints = sp.max_checkpoints;
  }
  AF_ASSIGN_OR_RETURN(s->identity_, AcquireIdentity(sp, &s->lease_));
  AF_RETURN_IF_ERROR(fs::CleanupStaleMount(sp.mountpoint));
  // The mount serves the sandbox's identity only (SPEC §5, host side). Docker's daemon and runc
  // (root) must stat and bind the mount point, so there the kernel lets everyone through and the
  // daemon's per-request check keeps all but the sandbox (and root) out; the mount point's
  // directory is root's alone either way.
  fs::MountAccess access;
  access.uid = s->identity_.uid;
  access.gid = s->identity_.gid;
  access.allow_other = sp.runtime == RuntimeKind::kDocker;
  auto mount = fs::Mount::Start(sp.source_dir, sp.mountpoint, std::move(policy), options, access);
  if (!mount.ok()) return std::move(mount).error().With("mounting the workspace");
  s->mount_ = std::move(*mount);

  // bwrap joins a namespace prepared before it starts; a container brings its own ("none"),
  // prepared once it runs. Either way no command runs before the filter serves: commands come
  // only through the agent socket, which is bound below.
  UniqueFd netns;
  if (sp.network && sp.runtime == RuntimeKind::kBwrap) {
    AF_ASSIGN_OR_RETURN(netns, net::CreateNetns());
    UniqueFd mine(::fcntl(netns.get(), F_DUPFD_CLOEXEC, 3));
    if (!mine) return Error::FromErrno(errno, "dup netns");
    AF_RETURN_IF_ERROR(s->StartEgress(std::move(mine)));
  }
  auto rt = StartRuntime(sp, s->identity_, netns.get());
  if (!rt.ok()) return std::move(rt).error().With("starting the sandbox runtime");
  s->runtime_ = std::move(*rt);
  netns.Reset();
  if (sp.network && sp.runtime == RuntimeKind::kDocker) {
    pid_t pid = s->runtime_->pid();
    UniqueFd ns(
        pid > 0 ? ::open(("/proc/" + std::to_string(pid) + "/ns/net").c_str(), O_RDONLY | O_CLOEXEC)
                : -1);
    if (!ns) return Error(ErrorCode::kUnavailable, "the container's network namespace is gone");
    AF_RETURN_IF_ERROR(s->StartEgress(std::move(ns)));
  }

  AF_ASSIGN_OR_RETURN(s->agent_listen_, ListenUnix(sp.run_dir + "/" + kAgentSocket));
  AF_ASSIGN_OR_RETURN(s->control_listen_, ListenUnix(sp.run_dir + "/" + kControlSocket));
  return s;
}

Supervisor::~Supervisor() { Teardown(); }

void Supervisor::WriteAudit(const json& line) {
  std::string text = line.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  std::lock_guard lock(audit_mu_);
  if (audit_bytes_ + text.size() > kMaxAuditBytes) return;
  if (::write(audit_.get(), text.data(), text.size()) > 0) audit_bytes_ += text.size();
}

Status Supervisor::StartEgress(UniqueFd netns) {
  const auto t0 = std::chrono::steady_clock::now();
  AF_ASSIGN_OR_RETURN(auto policy,
                      policy::EgressPolicy::Create(spec_.egress.any_public, spec_.egress.allow,
                                                   spec_.egress.public_cidrs));
  auto sockets = net::PrepareNetns(netns.get());
  if (!sockets.ok()) return std::move(sockets).error().With("preparing the network namespace");
  net::EgressProxyOptions options;
  options.dns_servers = spec_.egress.dns_servers;
  options.on_denied = [this](const net::EgressDenial& d) {
    WriteAudit({{"time", static_cast<int64_t>(::time(nullptr))},
                {"kind", "net"},
                {"op", d.operation},
                {"dest", d.destination},
                {"addr", d.address},
                {"port", d.port},
                {"name", d.name},
                {"reason", d.reason},
                {"pid", d.pid},
                {"command", d.command}});
  };
  auto proxy = net::EgressProxy::Start(std::move(netns), std::move(*sockets), std::move(policy),
                                       std::move(options));
  if (!proxy.ok()) return std::move(proxy).error().With("starting the egress filter");
  egress_ = std::move(*proxy);
  AF_LOG_INFO(
      "supervisor {}: network namespace and egress filter ready in {} us", spec_.sandbox_id,
      std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0)
          .count());
  return OkStatus();
}

void Supervisor::Teardown() {
  // Accesses waiting for a decision are denied first (EACCES: the stop's answer, whatever the
  // runtime's own ending does to their callers), and nothing waits for one any more.
  {
    std::shared_lock lock(state_mu_);
    if (mount_) mount_->fs().StopAsks();
  }
  std::unique_lock lock(state_mu_);  // after the control request in progress (a commit) ends
  // Stopping the runtime first breaks every agent connection's in-flight calls; the connections
  // keep their own reference to it, which refuses their later requests.
  if (runtime_) {
    if (auto st = runtime_->Stop(destroy_.load()); !st.ok()) {
      AF_LOG_WARN("stopping runtime: {}", st.error().ToString());
    }
    runtime_.reset();
  }
  egress_.reset();  // after the runtime: nothing inside is left to connect
  const bool agent_socket = static_cast<bool>(agent_listen_);
  const bool control_socket = static_cast<bool>(control_listen_);
  agent_listen_.Reset();
  control_listen_.Reset();
  if (mount_) {
    mount_->Unmount();
    mount_.reset();
  }
  CloseWatchers();
  // Last: the control socket's file going away tells the server (SupervisorControl::Stop) that
  // everything above is done.
  if (agent_socket) ::unlink((spec_.run_dir + "/" + kAgentSocket).c_str());
  if (control_socket) ::unlink((spec_.run_dir + "/" + kControlSocket).c_str());
}

json Supervisor::EgressCounters() const {
  json out = json::object();
  if (!egress_) return out;
  net::EgressStats s = egress_->Stats();
  out = {{"tcp_allowed", s.tcp_allowed},
         {"tcp_denied", s.tcp_denied},
         {"udp_allowed", s.udp_allowed},
         {"udp_denied", s.udp_denied},
         {"dns_answered", s.dns_answered},
         {"dns_refused", s.dns_refused},
         {"bytes_out", s.bytes_out},
         {"bytes_in", s.bytes_in},
         {"open_connections", s.open_connections}};
  return out;
}

json Supervisor::FuseRequests() const {
  json out = json::object();
  if (mount_) {
    for (const auto& [kind, n] : mount_->fs().RequestCounts()) out[kind] = n;
  }
  return out;
}

std::string Supervisor::HandleControl(const std::string& line) {
  json req = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (req.is_discarded() || !req.is_object() || !req.contains("op") || !req["op"].is_string()) {
    return ErrorReply(Error(ErrorCode::kInvalidArgument, "bad control request")).dump();
  }
  const std::string op = req["op"].get<std::string>();
  std::shared_lock lock(state_mu_);
  if (op == "status") {
    return json({{"ok", true},
                 {"sandbox_id", spec_.sandbox_id},
                 {"pid", static_cast<int>(::getpid())},
                 {"runtime_alive", runtime_ && runtime_->alive()},
                 {"host_uid", identity_.uid},
                 {"host_gid", identity_.gid},
                 {"inodes", mount_ ? mount_->fs().known_inodes() : 0},
                 {"fuse_requests", FuseRequests()},
                 {"egress", EgressCounters()}})
        .dump();
  }
  if (!mount_) return ErrorReply(Error(ErrorCode::kUnavailable, "the sandbox is stopping")).dump();
  if (op == "set_policy") {
    if (!req.contains("rules")) {
      return ErrorReply(Error(ErrorCode::kInvalidArgument, "set_policy needs rules")).dump();
    }
    auto rules = RulesFromJson(req["rules"].dump());
    if (!rules.ok()) return ErrorReply(rules.error()).dump();
    auto policy = policy::Policy::Compile(std::move(*rules));
    if (!policy.ok()) return ErrorReply(policy.error()).dump();
    if (Status can = mount_->fs().CheckPolicy(*policy); !can.ok()) {
      return ErrorReply(can.error()).dump();
    }
    mount_->fs().SetPolicy(std::move(*policy));  // returns after every stale cache is dropped
    return json({{"ok", true}}).dump();
  }
  if (op == "set_egress") {
    if (!egress_) {
      return ErrorReply(Error(ErrorCode::kFailedPrecondition,
                              "the sandbox was started without network: stop it, change its "
                              "egress policy, start it again"))
          .dump();
    }
    if (!req.contains("egress")) {
      return ErrorReply(Error(ErrorCode::kInvalidArgument, "set_egress needs egress")).dump();
    }
    auto spec = EgressFromJson(req["egress"].dump());
    if (!spec.ok()) return ErrorReply(spec.error()).dump();
    auto policy =
        policy::EgressPolicy::Create(spec->any_public, spec->allow, spec_.egress.public_cidrs);
    if (!policy.ok()) return ErrorReply(policy.error()).dump();
    auto st = egress_->SetPolicy(std::move(*policy));  // returns once it decides
    if (!st.ok()) return ErrorReply(st.error()).dump();
    return json({{"ok", true}}).dump();
  }
  if (op == "invalidate") {
    std::string path = req.value("path", "/");
    auto st = mount_->fs().InvalidatePath(path);
    if (!st.ok()) return ErrorReply(st.error()).dump();
    return json({{"ok", true}}).dump();
  }
  if (op == "changes") {
    auto set = mount_->fs().DeltaChanges();
    if (!set.ok()) return ErrorReply(set.error()).dump();
    json list = json::array();
    for (const auto& c : set->changes) list.push_back(ChangeJson(c));
    return Dump({{"ok", true},
                 {"changes", std::move(list)},
                 {"delta_bytes", set->delta_bytes},
                 {"delta_inodes", set->delta_inodes}});
  }
  if (op == "commit") {
    // Runs on this control connection's thread: the FUSE loop keeps serving meanwhile (requests
    // that change the delta wait for the commit to finish).
    auto report = mount_->fs().CommitDelta();
    if (!report.ok()) return ErrorReply(report.error()).dump();
    json applied = json::array();
    for (const auto& c : report->applied) applied.push_back(ChangeJson(c));
    json errors = json::array();
    for (const auto& e : report->errors) {
      errors.push_back({{"path", e.path}, {"message", e.message}});
    }
    return Dump({{"ok", true}, {"applied", std::move(applied)}, {"errors", std::move(errors)}});
  }
  if (op == "discard") {
    auto n = mount_->fs().DiscardDelta();
    if (!n.ok()) return ErrorReply(n.error()).dump();
    return Dump({{"ok", true}, {"discarded", *n}});
  }
  if (op == "checkpoint" || op == "restore" || op == "checkpoint_delete") {
    // Checkpoints (docs/CHECKPOINTS.md). Like a commit, these run on this connection's thread
    // while the FUSE loop keeps serving; requests that change the delta wait for them.
    if (!req.contains("name") || !req["name"].is_string()) {
      return ErrorReply(Error(ErrorCode::kInvalidArgument, op + " needs a name")).dump();
    }
    const std::string name = req["name"].get<std::string>();
    if (op == "checkpoint_delete") {
      auto st = mount_->fs().DeleteCheckpoint(name);
      if (!st.ok()) return ErrorReply(st.error()).dump();
      return json({{"ok", true}}).dump();
    }
    auto info = op == "checkpoint" ? mount_->fs().CreateCheckpoint(name)
                                   : mount_->fs().RestoreCheckpoint(name);
    if (!info.ok()) return ErrorReply(info.error()).dump();
    return Dump({{"ok", true}, {"checkpoint", CheckpointJson(*info)}});
  }
  if (op == "checkpoints") {
    auto list = mount_->fs().ListCheckpoints();
    if (!list.ok()) return ErrorReply(list.error()).dump();
    json out = json::array();
    for (const auto& c : *list) out.push_back(CheckpointJson(c));
    return Dump({{"ok", true}, {"checkpoints", std::move(out)}});
  }
  if (op == "checkpoint_diff") {
    const std::string name = req.value("name", "");
    const std::string against = req.value("against", "");
    auto diff = mount_->fs().DiffCheckpoint(name, against);
    if (!diff.ok()) return ErrorReply(diff.error()).dump();
    json list = json::array();
    for (const auto& c : *diff) list.push_back(ChangeJson(c));
    return Dump({{"ok", true}, {"changes", std::move(list)}});
  }
  if (op == "approvals") {
    json list = json::array();
    for (const auto& r : mount_->fs().PendingAsks()) {
      fs::AskEvent e;
      e.request = r;
      list.push_back(json::parse(AskEventToJson(e)));
    }
    return Dump({{"ok", true}, {"approvals", std::move(list)}});
  }
  if (op == "answer") {
    auto grant = policy::ParseLevel(req.value("grant", std::string("none")));
    if (!req.contains("id") || !req["id"].is_string() || !grant.ok() ||
        (*grant != policy::Level::kNone && *grant != policy::Level::kRead &&
         *grant != policy::Level::kWrite)) {
      return ErrorReply(Error(ErrorCode::kInvalidArgument,
                              "answer needs an id and a grant of none, read or write"))
          .dump();
    }
    fs::AskAnswer a;
    a.grant = *grant;
    a.by = req.value("by", std::string()).substr(0, 512);
    a.remember = req.value("remember", std::string()).substr(0, 4096);
    auto st = mount_->fs().AnswerAsk(req["id"].get<std::string>(), a);
    if (!st.ok()) return ErrorReply(st.error()).dump();
    return json({{"ok", true}}).dump();
  }
  if (op == "stop") {
    destroy_.store(req.value("destroy", false));
    stop_.store(true);
    uint64_t one = 1;
    (void)!::write(wake_.get(), &one, sizeof(one));
    return json({{"ok", true}}).dump();
  }
  return ErrorReply(Error(ErrorCode::kInvalidArgument, "unknown control op: " + op)).dump();
}

void Supervisor::OnAskEvent(const fs::AskEvent& e) {
  const std::string text = AskEventToJson(e);
  json line = json::parse(text);
  line["kind"] = "approval";
  line["time"] = e.time_ns / 1'000'000'000;
  WriteAudit(line);
  std::lock_guard lock(watchers_mu_);
  for (auto it = watchers_.begin(); it != watchers_.end();) {
    Watcher& w = **it;
    std::lock_guard wlock(w.mu);
    if (w.closed || w.lines.size() >= kMaxWatcherBacklog) {
      // Gone, or not reading: dropped rather than holding memory (it can list and watch again).
      w.closed = true;
      uint64_t one = 1;
      (void)!::write(w.wake.get(), &one, sizeof(one));
      it = watchers_.erase(it);
      continue;
    }
    w.lines.push_back(text + "\n");
    uint64_t one = 1;
    (void)!::write(w.wake.get(), &one, sizeof(one));
    ++it;
  }
}

void Supervisor::CloseWatchers() {
  std::lock_guard lock(watchers_mu_);
  for (auto& w : watchers_) {
    std::lock_guard wlock(w->mu);
    w->closed = true;
    uint64_t one = 1;
    (void)!::write(w->wake.get(), &one, sizeof(one));
  }
  watchers_.clear();
}

void Supervisor::WatchApprovals(int conn) {
  auto w = std::make_shared<Watcher>();
  w->wake.Reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!w->wake) return;
  {
    std::lock_guard lock(watchers_mu_);
    watchers_.push_back(w);
  }
  // The accesses pending now, then every event (one held in between may come twice: clients
  // go by id).
  std::string first = json({{"ok", true}}).dump() + "\n";
  {
    std::shared_lock lock(state_mu_);
    if (mount_) {
      for (const auto& r : mount_->fs().PendingAsks()) {
        fs::AskEvent e;
        e.request = r;
        first += AskEventToJson(e) + "\n";
      }
    }
  }
  if (::send(conn, first.data(), first.size(), MSG_NOSIGNAL) < 0) {
    std::lock_guard wlock(w->mu);
    w->closed = true;
    return;
  }
  while (true) {
    pollfd fds[2] = {{conn, POLLIN, 0}, {w->wake.get(), POLLIN, 0}};
    if (::poll(fds, 2, -1) < 0 && errno != EINTR) break;
    if (fds[0].revents != 0) break;  // the client closed (or wrote, which it must not)
    uint64_t n;
    (void)!::read(w->wake.get(), &n, sizeof(n));
    std::deque<std::string> lines;
    bool closed;
    {
      std::lock_guard wlock(w->mu);
      lines.swap(w->lines);
      closed = w->closed;
    }
    for (const auto& l : lines) {
      if (::send(conn, l.data(), l.size(), MSG_NOSIGNAL) < 0) closed = true;
    }
    if (closed) break;
  }
  std::lock_guard wlock(w->mu);
  w->closed = true;  // OnAskEvent drops it at its next event
}

void Supervisor::ServeControlConnection(UniqueFd conn) {
  std::string buf;
  char chunk[4096];
  while (true) {
    ssize_t n = ::recv(conn.get(), chunk, sizeof(chunk), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    buf.append(chunk, static_cast<size_t>(n));
    if (buf.size() > kMaxControlLine) return;
    size_t nl;
    while ((nl = buf.find('\n')) != std::string::npos) {
      const std::string line = buf.substr(0, nl);
      json req = json::parse(line, nullptr, /*allow_exceptions=*/false);
      if (req.is_object() && req.value("op", std::string()) == "watch_approvals") {
        return WatchApprovals(conn.get());  // the connection is the stream's from here on
      }
      std::string reply = HandleControl(line) + "\n";
      buf.erase(0, nl + 1);
      if (::send(conn.get(), reply.data(), reply.size(), MSG_NOSIGNAL) < 0) return;
    }
  }
}

int Supervisor::Serve() {
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  sigaddset(&mask, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &mask, nullptr);
  UniqueFd sigfd(::signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK));

  std::vector<std::thread> conns;
  int rc = 0;
  while (!stop_.load()) {
    pollfd fds[4] = {{agent_listen_.get(), POLLIN, 0},
                     {control_listen_.get(), POLLIN, 0},
                     {wake_.get(), POLLIN, 0},
                     {sigfd.get(), POLLIN, 0}};
    int n = ::poll(fds, 4, 1000);
    if (n < 0 && errno != EINTR) break;
    if (fds[3].revents & POLLIN) {
      AF_LOG_INFO("supervisor {}: signal received, stopping", spec_.sandbox_id);
      break;
    }
    if (!runtime_->alive()) {
      AF_LOG_WARN("supervisor {}: the sandbox runtime died", spec_.sandbox_id);
      rc = 1;
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (!(fds[i].revents & POLLIN)) continue;
      int c = ::accept4(fds[i].fd, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) continue;
      UniqueFd conn(c);
      if (i == 0) {
        conns.emplace_back([rt = runtime_, fd = std::move(conn)]() mutable {
          ServeAgentConnection(std::move(fd), std::move(rt));
        });
      } else {
        conns.emplace_back(
            [this, fd = std::move(conn)]() mutable { ServeControlConnection(std::move(fd)); });
      }
    }
  }
  Teardown();
  // Agent connections hold their own reference to the stopped runtime; control connections find
  // the state gone (Teardown waited for the request each was handling). Both end with the process.
  for (auto& t : conns) t.detach();
  return rc;
}

}  // namespace agentfense::supervisor
