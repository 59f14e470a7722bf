#include "supervisor/client.h"

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <charconv>
#include <cstring>
#include <thread>

#include <nlohmann/json.hpp>

#include "base/unique_fd.h"

extern char** environ;

namespace agentfense::supervisor {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

Status WriteFileAtomically(const std::string& path, const std::string& content) {
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return Error::FromErrno(errno, "open " + tmp);
  UniqueFd f(fd);
  size_t off = 0;
  while (off < content.size()) {
    ssize_t n = ::write(f.get(), content.data() + off, content.size() - off);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return Error::FromErrno(errno, "write " + tmp);
    off += static_cast<size_t>(n);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) return Error::FromErrno(errno, "rename " + path);
  return OkStatus();
}

Result<UniqueFd> ConnectUnix(const std::string& path) {
  sockaddr_un addr{};
  if (path.size() >= sizeof(addr.sun_path)) {
    return Error(ErrorCode::kInvalidArgument, "socket path too long: " + path);
  }
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Error::FromErrno(errno, "socket");
  UniqueFd sock(fd);
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  if (::connect(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return Error(ErrorCode::kUnavailable, "no supervisor at " + path, errno);
  }
  return sock;
}

// Maps the supervisor's "error: <code> <message>" start report to an Error.
Error StartError(const std::string& line) {
  std::string rest = line.substr(std::min<size_t>(line.size(), 7));
  int code = 0;  // stays 0 (→ kInternal below) unless a number leads
  (void)std::from_chars(rest.data(), rest.data() + rest.size(), code);
  size_t space = rest.find(' ');
  std::string message = space == std::string::npos ? rest : rest.substr(space + 1);
  if (code <= 0 || code > 16) code = static_cast<int>(ErrorCode::kInternal);
  return Error(static_cast<ErrorCode>(code), message);
}

fs::Change ChangeFromJson(const json& j) {
  fs::Change c;
  c.path = j.value("path", "");
  std::string kind = j.value("kind", "modified");
  c.kind = kind == "added"     ? fs::ChangeKind::kAdded
           : kind == "deleted" ? fs::ChangeKind::kDeleted
                               : fs::ChangeKind::kModified;
  c.size = j.value("size", static_cast<int64_t>(0));
  c.is_dir = j.value("is_dir", false);
  return c;
}

std::vector<fs::Change> ChangesFromJson(const json& j, const char* key) {
  std::vector<fs::Change> out;
  if (!j.contains(key) || !j[key].is_array()) return out;
  for (const auto& c : j[key]) {
    if (c.is_object()) out.push_back(ChangeFromJson(c));
  }
  return out;
}

}  // namespace

Status SpawnSupervisor(const SupervisorSpec& spec, const std::string& binary,
                       std::chrono::milliseconds timeout) {
  const std::string spec_path = spec.run_dir + "/" + kSpecFile;
  AF_RETURN_IF_ERROR(WriteFileAtomically(spec_path, SpecToJson(spec)));
  AF_ASSIGN_OR_RETURN(auto pipe, MakePipe());
  auto& [ready_r, ready_w] = pipe;
  const std::string log_path = spec.run_dir + "/" + kLogFile;

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  posix_spawn_file_actions_adddup2(&fa, ready_w.get(), 3);  // dup2 clears O_CLOEXEC on fd 3
  std::string fd_arg = "3";
  std::vector<char*> argv = {const_cast<char*>(binary.c_str()), const_cast<char*>("--spec"),
                             const_cast<char*>(spec_path.c_str()),
                             const_cast<char*>("--ready-fd"), fd_arg.data(), nullptr};
  // A minimal environment: nothing of the server's environment reaches the sandbox side.
  std::vector<char*> envp = {const_cast<char*>("PATH=/usr/sbin:/usr/bin:/sbin:/bin"), nullptr};
  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, binary.c_str(), &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  ready_w.Reset();
  if (rc != 0) return Error::FromErrno(rc, "spawning " + binary);
  // The first process exits at once (it forks the real supervisor); reap it.
  int wstatus = 0;
  while (::waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
  }

  std::string line;
  auto deadline = Clock::now() + timeout;
  while (line.find('\n') == std::string::npos) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      return Error(ErrorCode::kDeadlineExceeded, "the sandbox supervisor did not start in time");
    }
    pollfd p{ready_r.get(), POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;
    char buf[4096];
    ssize_t got = ::read(ready_r.get(), buf, sizeof(buf));
    if (got <= 0) {
      if (line.empty()) {
        return Error(ErrorCode::kInternal,
                     "the sandbox supervisor exited without a report (see " + log_path + ")");
      }
      break;
    }
    line.append(buf, static_cast<size_t>(got));
    if (line.size() > 64 * 1024) break;
  }
  if (auto nl = line.find('\n'); nl != std::string::npos) line.resize(nl);
  if (line == "ok") return OkStatus();
  if (line.rfind("error: ", 0) == 0) return StartError(line);
  return Error(ErrorCode::kInternal, "unexpected supervisor report: " + line);
}

Result<std::string> SupervisorControl::Call(const std::string& request,
                                            std::chrono::milliseconds timeout) const {
  AF_ASSIGN_OR_RETURN(UniqueFd sock, ConnectUnix(run_dir_ + "/" + kControlSocket));
  std::string line = request + "\n";
  if (::send(sock.get(), line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size())) {
    return Error(ErrorCode::kUnavailable, "supervisor control: send failed", errno);
  }
  std::string reply;
  auto deadline = Clock::now() + timeout;
  while (reply.find('\n') == std::string::npos) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return Error(ErrorCode::kDeadlineExceeded, "supervisor control timeout");
    pollfd p{sock.get(), POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;
    char buf[4096];
    ssize_t got = ::recv(sock.get(), buf, sizeof(buf), 0);
    if (got <= 0) return Error(ErrorCode::kUnavailable, "supervisor closed the control connection");
    reply.append(buf, static_cast<size_t>(got));
    if (reply.size() > (256u << 20)) return Error(ErrorCode::kInternal, "supervisor reply too long");
  }
  reply.resize(reply.find('\n'));
  json j = json::parse(reply, nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Error(ErrorCode::kInternal, "supervisor sent a malformed reply");
  }
  if (!j.value("ok", false)) {
    int code = j.value("code", static_cast<int>(ErrorCode::kInternal));
    if (code <= 0 || code > 16) code = static_cast<int>(ErrorCode::kInternal);
    return Error(static_cast<ErrorCode>(code), j.value("error", std::string("supervisor error")));
  }
  return reply;
}

Result<SupervisorStatus> SupervisorControl::Status() const {
  AF_ASSIGN_OR_RETURN(std::string reply, Call(R"({"op":"status"})", std::chrono::seconds(5)));
  json j = json::parse(reply, nullptr, false);
  SupervisorStatus s;
  s.sandbox_id = j.value("sandbox_id", "");
  s.pid = j.value("pid", 0);
  s.runtime_alive = j.value("runtime_alive", false);
  s.host_uid = j.value("host_uid", uint32_t{0});
  s.host_gid = j.value("host_gid", uint32_t{0});
  if (j.is_object() && j.contains("fuse_requests") && j["fuse_requests"].is_object()) {
    for (const auto& [kind, n] : j["fuse_requests"].items()) {
      if (n.is_number_unsigned()) s.fuse_requests.emplace_back(kind, n.get<uint64_t>());
    }
  }
  if (j.is_object() && j.contains("egress") && j["egress"].is_object()) {
    for (const auto& [kind, n] : j["egress"].items()) {
      if (n.is_number_unsigned()) s.egress.emplace_back(kind, n.get<uint64_t>());
    }
  }
  return s;
}

agentfense::Status SupervisorControl::SetPolicy(const std::vector<policy::Rule>& rules) const {
  AF_RETURN_IF_ERROR(Call(R"({"op":"set_policy","rules":)" + RulesToJson(rules) + "}"));
  return OkStatus();
}

agentfense::Status SupervisorControl::SetEgress(const EgressSpec& egress) const {
  EgressSpec only;
  only.any_public = egress.any_public;
  only.allow = egress.allow;
  AF_RETURN_IF_ERROR(Call(R"({"op":"set_egress","egress":)" + EgressToJson(only) + "}"));
  return OkStatus();
}

agentfense::Status SupervisorControl::Invalidate(const std::string& path) const {
  AF_RETURN_IF_ERROR(Call(json({{"op", "invalidate"}, {"path", path}}).dump()));
  return OkStatus();
}

agentfense::Status SupervisorControl::Stop(bool destroy, std::chrono::milliseconds wait) const {
  AF_RETURN_IF_ERROR(Call(json({{"op", "stop"}, {"destroy", destroy}}).dump()));
  auto deadline = Clock::now() + wait;
  const std::string control = run_dir_ + "/" + kControlSocket;
  while (::access(control.c_str(), F_OK) == 0) {
    if (Clock::now() > deadline) {
      return Error(ErrorCode::kDeadlineExceeded, "the supervisor did not stop in time");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return OkStatus();
}

Result<fs::ChangeSet> SupervisorControl::Changes() const {
  AF_ASSIGN_OR_RETURN(std::string reply, Call(R"({"op":"changes"})", std::chrono::minutes(5)));
  json j = json::parse(reply, nullptr, false);
  fs::ChangeSet set;
  set.changes = ChangesFromJson(j, "changes");
  set.delta_bytes = j.value("delta_bytes", static_cast<int64_t>(0));
  set.delta_inodes = j.value("delta_inodes", static_cast<int64_t>(0));
  return set;
}

Result<fs::CommitReport> SupervisorControl::Commit() const {
  // A commit of a large delta copies data; it is bounded by the delta's size, not by a short RPC.
  AF_ASSIGN_OR_RETURN(std::string reply, Call(R"({"op":"commit"})", std::chrono::minutes(30)));
  json j = json::parse(reply, nullptr, false);
  fs::CommitReport report;
  report.applied = ChangesFromJson(j, "applied");
  if (j.contains("errors") && j["errors"].is_array()) {
    for (const auto& e : j["errors"]) {
      if (!e.is_object()) continue;
      report.errors.push_back({e.value("path", ""), e.value("message", "")});
    }
  }
  return report;
}

Result<int64_t> SupervisorControl::Discard() const {
  AF_ASSIGN_OR_RETURN(std::string reply, Call(R"({"op":"discard"})", std::chrono::minutes(5)));
  json j = json::parse(reply, nullptr, false);
  return j.value("discarded", static_cast<int64_t>(0));
}

namespace {

fs::CheckpointInfo CheckpointFromJson(const json& j) {
  fs::CheckpointInfo c;
  if (!j.is_object()) return c;
  c.name = j.value("name", std::string());
  c.created_ns = j.value("created_ns", int64_t{0});
  c.files = j.value("files", int64_t{0});
  c.dirs = j.value("dirs", int64_t{0});
  c.bytes = j.value("bytes", int64_t{0});
  c.deletions = j.value("deletions", int64_t{0});
  return c;
}

}  // namespace

Result<fs::CheckpointInfo> SupervisorControl::CreateCheckpoint(const std::string& name) const {
  AF_ASSIGN_OR_RETURN(std::string reply, Call(json({{"op", "checkpoint"}, {"name", name}}).dump(),
                                              std::chrono::minutes(5)));
  return CheckpointFromJson(json::parse(reply, nullptr, false)["checkpoint"]);
}

Result<std::vector<fs::CheckpointInfo>> SupervisorControl::ListCheckpoints() const {
  AF_ASSIGN_OR_RETURN(std::string reply, Call(R"({"op":"checkpoints"})", std::chrono::minutes(1)));
  json j = json::parse(reply, nullptr, false);
  std::vector<fs::CheckpointInfo> out;
  if (j.contains("checkpoints") && j["checkpoints"].is_array()) {
    for (const auto& c : j["checkpoints"]) out.push_back(CheckpointFromJson(c));
  }
  return out;
}

Result<fs::CheckpointInfo> SupervisorControl::RestoreCheckpoint(const std::string& name) const {
  AF_ASSIGN_OR_RETURN(std::string reply, Call(json({{"op", "restore"}, {"name", name}}).dump(),
                                              std::chrono::minutes(10)));
  return CheckpointFromJson(json::parse(reply, nullptr, false)["checkpoint"]);
}

Result<std::vector<fs::Change>> SupervisorControl::DiffCheckpoint(
    const std::string& name, const std::string& against) const {
  AF_ASSIGN_OR_RETURN(std::string reply,
                      Call(json({{"op", "checkpoint_diff"}, {"name", name}, {"against", against}})
                               .dump(),
                           std::chrono::minutes(5)));
  return ChangesFromJson(json::parse(reply, nullptr, false), "changes");
}

agentfense::Status SupervisorControl::DeleteCheckpoint(const std::string& name) const {
  AF_RETURN_IF_ERROR(
      Call(json({{"op", "checkpoint_delete"}, {"name", name}}).dump(), std::chrono::minutes(5)));
  return OkStatus();
}

Result<std::vector<fs::AccessRequest>> SupervisorControl::Approvals() const {
  AF_ASSIGN_OR_RETURN(std::string reply, Call(R"({"op":"approvals"})", std::chrono::seconds(10)));
  json j = json::parse(reply, nullptr, false);
  std::vector<fs::AccessRequest> out;
  if (j.contains("approvals") && j["approvals"].is_array()) {
    for (const auto& a : j["approvals"]) {
      auto e = AskEventFromJson(a.dump());
      if (e.ok()) out.push_back(std::move(e->request));
    }
  }
  return out;
}

agentfense::Status SupervisorControl::Answer(const std::string& id,
                                             const fs::AskAnswer& answer) const {
  json req = {{"op", "answer"},
              {"id", id},
              {"grant", std::string(policy::LevelName(answer.grant))},
              {"by", answer.by},
              {"remember", answer.remember}};
  AF_RETURN_IF_ERROR(
      Call(req.dump(-1, ' ', false, json::error_handler_t::replace), std::chrono::seconds(10)));
  return OkStatus();
}

Result<ApprovalWatch> SupervisorControl::WatchApprovals() const {
  AF_ASSIGN_OR_RETURN(UniqueFd sock, ConnectUnix(run_dir_ + "/" + kControlSocket));
  const std::string line = "{\"op\":\"watch_approvals\"}\n";
  if (::send(sock.get(), line.data(), line.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(line.size())) {
    return Error(ErrorCode::kUnavailable, "supervisor control: send failed", errno);
  }
  // The first line acknowledges the stream (or says why not); events follow it.
  std::string buf;
  auto deadline = Clock::now() + std::chrono::seconds(10);
  while (buf.find('\n') == std::string::npos) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return Error(ErrorCode::kDeadlineExceeded, "watch_approvals: no reply");
    pollfd p{sock.get(), POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) continue;
    char chunk[4096];
    ssize_t got = ::recv(sock.get(), chunk, sizeof(chunk), 0);
    if (got <= 0) return Error(ErrorCode::kUnavailable, "supervisor closed the control connection");
    buf.append(chunk, static_cast<size_t>(got));
  }
  json ack = json::parse(buf.substr(0, buf.find('\n')), nullptr, false);
  if (!ack.is_object() || !ack.value("ok", false)) {
    return Error(ErrorCode::kUnavailable, "watch_approvals refused");
  }
  return ApprovalWatch(std::move(sock), buf.substr(buf.find('\n') + 1));
}

Result<std::optional<fs::AskEvent>> ApprovalWatch::Next(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (true) {
    if (size_t nl = buf_.find('\n'); nl != std::string::npos) {
      std::string line = buf_.substr(0, nl);
      buf_.erase(0, nl + 1);
      auto e = AskEventFromJson(line);
      if (!e.ok()) continue;
      return std::optional<fs::AskEvent>(std::move(*e));
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() < 0) return std::optional<fs::AskEvent>();
    pollfd p{sock_.get(), POLLIN, 0};
    int n = ::poll(&p, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return std::optional<fs::AskEvent>();
    char chunk[4096];
    ssize_t got = ::recv(sock_.get(), chunk, sizeof(chunk), 0);
    if (got <= 0) return Error(ErrorCode::kUnavailable, "the sandbox stopped: no more approvals");
    buf_.append(chunk, static_cast<size_t>(got));
    if (buf_.size() > (16u << 20)) return Error(ErrorCode::kInternal, "approval event too long");
  }
}

}  // namespace agentfense::supervisor
