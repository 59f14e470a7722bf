#include "cli/sandbox_commands.h"

#include <fmt/format.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <optional>
#include <nlohmann/json.hpp>

#include "base/path.h"
#include "base/units.h"
#include "cli/ask_prompt.h"
#include "cli/embedded.h"
#include "cli/exit_codes.h"
#include "cli/interrupts.h"
#include "cli/local_sandbox.h"
#include "fs/changes.h"
#include "policy/egress.h"

namespace agentfense::cli {
namespace {

namespace stdfs = std::filesystem;
using Json = nlohmann::ordered_json;

Error Invalid(std::string message) {
  return Error(ErrorCode::kInvalidArgument, std::move(message));
}

bool ValidEnvName(std::string_view name) {
  if (name.empty() || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  for (char c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return true;
}

// A path the user named: must exist and be a directory. Returns its canonical form.
Result<std::string> ExistingDir(const std::string& path, const std::string& what) {
  if (path.empty()) return Invalid("missing " + what);
  char resolved[PATH_MAX];
  if (::realpath(path.c_str(), resolved) == nullptr) {
    return Invalid(what + " " + path + ": " + std::strerror(errno));
  }
  struct stat st {};
  if (::stat(resolved, &st) != 0 || !S_ISDIR(st.st_mode)) {
    return Invalid(what + " " + path + " is not a directory");
  }
  return std::string(resolved);
}

// --keep-delta DIR: created when missing; an existing one must be empty (a delta is never merged
// into another), and it must not lie inside the source (the sandbox would see its own delta).
Result<std::string> PrepareKeepDelta(const std::string& path, const std::string& source) {
  // Checked before mkdir too, so that refused input creates nothing inside the source.
  std::error_code wc;
  std::string planned = stdfs::weakly_canonical(path, wc).string();
  if (!wc && PathIsWithin(planned, source))
    return Invalid("--keep-delta " + path + " is inside " + source);
  if (::mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
    return Error(ErrorCode::kInvalidArgument, "--keep-delta " + path + ": " + std::strerror(errno),
                 errno);
  }
  AF_ASSIGN_OR_RETURN(std::string dir, ExistingDir(path, "--keep-delta directory"));
  std::error_code ec;
  if (!stdfs::is_empty(dir, ec) || ec) return Invalid("--keep-delta " + path + " is not empty");
  if (PathIsWithin(dir, source)) return Invalid("--keep-delta " + path + " is inside " + source);
  return dir;
}

}  // namespace

Result<Prepared> Prepare(const SandboxFlags& f) {
  Prepared p;
  AF_ASSIGN_OR_RETURN(p.sandbox.source_dir, ExistingDir(f.dir, "DIR"));

  RuleSources sources = f.sources;
  // No policy flag at all: the recommended preset, never an implicit full access.
  if (!sources.preset && !sources.rules_file && sources.rule_specs.empty()) {
    sources.preset = "agent-safe";
  }
  AF_ASSIGN_OR_RETURN(auto rules, CollectRules(sources));
  AF_RETURN_IF_ERROR(CompileSourced(rules));
  for (const auto& r : rules) {
    p.sandbox.rules.push_back(r.rule);
    p.has_ask = p.has_ask || r.rule.level == policy::Level::kAsk;
  }
  if (!f.ask.empty()) {
    AF_ASSIGN_OR_RETURN(p.ask, ParseAskMode(f.ask));
  }

  if (f.runtime == "bwrap") {
    p.sandbox.runtime = supervisor::RuntimeKind::kBwrap;
    if (!f.image.empty()) return Invalid("--image needs --runtime docker");
    if (!f.docker_host.empty()) return Invalid("--docker-host needs --runtime docker");
  } else if (f.runtime == "docker") {
    p.sandbox.runtime = supervisor::RuntimeKind::kDocker;
  } else {
    return Invalid("--runtime " + f.runtime + ": unknown runtime (bwrap or docker)");
  }
  p.sandbox.image = f.image;
  {
    // With --network, --allow-net adds exceptions (private ranges) to "every public destination".
    auto mode = policy::ResolveEgressMode(false, f.network, f.allow_net.size());
    auto egress = policy::EgressPolicy::Create(mode.any_public, f.allow_net, f.public_cidrs);
    if (!egress.ok()) return Invalid("--allow-net: " + egress.error().ToString());
    for (const auto& d : f.dns_servers) {
      auto server = policy::ParseSocketAddress(d, 53);
      if (!server.ok()) return Invalid("--dns-server: " + server.error().message());
    }
    p.sandbox.network = mode.network;
    p.sandbox.egress.any_public = mode.any_public;
    p.sandbox.egress.allow = egress->RuleTexts();
    p.sandbox.egress.dns_servers = f.dns_servers;
    p.sandbox.egress.public_cidrs = f.public_cidrs;
  }
  if (!f.memory.empty()) {
    auto size = ParseSize(f.memory);
    if (!size.ok()) return Invalid("--memory " + f.memory + ": " + size.error().message());
    if (*size < (4u << 20)) return Invalid("--memory " + f.memory + ": below the 4M minimum");
    p.sandbox.limits.memory_bytes = *size;
  }
  if (f.pids < 0) return Invalid("--pids must be positive");
  p.sandbox.limits.pids_limit = static_cast<uint64_t>(f.pids);
  if (!(f.cpus >= 0) || f.cpus > 1024) return Invalid("--cpus must be between 0 and 1024");
  p.sandbox.limits.cpu_quota_us = std::llround(f.cpus * 100000);  // µs per 100 ms period
  if (f.cpus > 0 && p.sandbox.limits.cpu_quota_us < 1000) {
    return Invalid("--cpus must be at least 0.01");
  }
  if (!f.bwrap_path.empty()) {
    if (f.bwrap_path[0] != '/') return Invalid("--bwrap-path must be an absolute path");
    p.sandbox.bwrap_path = f.bwrap_path;
  }
  p.sandbox.docker_host = f.docker_host;

  for (const std::string& kv : f.env) {
    size_t eq = kv.find('=');
    if (eq == std::string::npos || !ValidEnvName(std::string_view(kv).substr(0, eq))) {
      return Invalid("--env " + kv + ": expected NAME=VALUE with NAME [A-Za-z_][A-Za-z0-9_]*");
    }
    p.env.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
  }
  auto workdir = SandboxWorkdir(f.workdir);
  if (!workdir.ok()) return Invalid("--workdir " + f.workdir + ": " + workdir.error().message());
  p.workdir = std::move(*workdir);
  if (f.sync == SyncMode::kKeepDelta) {
    AF_ASSIGN_OR_RETURN(p.sandbox.keep_delta_dir,
                        PrepareKeepDelta(f.keep_delta_dir, p.sandbox.source_dir));
  }
  return p;
}

namespace {

// Output goes straight to our fds, unbuffered: the command's output must appear as it is produced.
void WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // our stdout is gone (closed pipe): nothing useful left to do
    data.remove_prefix(static_cast<size_t>(n));
  }
}

void StreamOutput(runtime::proto::Stream stream, std::string_view data) {
  WriteAll(stream == runtime::proto::Stream::kStderr ? 2 : 1, data);
}

std::string SignalName(int signo) {
  const char* abbrev = ::sigabbrev_np(signo);
  return abbrev != nullptr ? fmt::format("SIG{}", abbrev) : fmt::format("signal {}", signo);
}

Json ChangeJson(const fs::Change& c) {
  return Json{{"path", c.path},
              {"kind", std::string(fs::ChangeKindName(c.kind))},
              {"size", c.size},
              {"is_dir", c.is_dir}};
}

struct Counts {
  int added = 0, modified = 0, deleted = 0;
};
Counts Count(const std::vector<fs::Change>& changes) {
  Counts c;
  for (const auto& ch : changes) {
    if (ch.kind == fs::ChangeKind::kAdded) ++c.added;
    if (ch.kind == fs::ChangeKind::kModified) ++c.modified;
    if (ch.kind == fs::ChangeKind::kDeleted) ++c.deleted;
  }
  return c;
}

void PrintChangeList(const std::vector<fs::Change>& changes, std::ostream& err) {
  constexpr size_t kMaxListed = 50;
  for (size_t i = 0; i < changes.size() && i < kMaxListed; ++i) {
    const auto& ch = changes[i];
    char tag = ch.kind == fs::ChangeKind::kAdded     ? 'A'
               : ch.kind == fs::ChangeKind::kDeleted ? 'D'
                                                     : 'M';
    err << "  " << tag << " " << ch.path << (ch.is_dir ? "/" : "") << "\n";
  }
  if (changes.size() > kMaxListed) err << "  ... and " << changes.size() - kMaxListed << " more\n";
}

}  // namespace

int Finish(LocalSandbox& sb, const SandboxFlags& flags, const std::string& source,
           const Outcome& outcome, std::ostream& out, std::ostream& err) {
  int code = outcome.ran                ? outcome.result.exit_code
             : outcome.failure_is_usage ? kExitRunUsage
                                        : kExitRunSandbox;
  if (outcome.ran && outcome.result.timed_out) code = kExitRunTimeout;
  if (outcome.interrupted_by != 0) code = 128 + outcome.interrupted_by;

  Json summary;
  summary["exit_code"] = outcome.ran ? Json(outcome.result.exit_code) : Json();
  summary["signal"] = outcome.ran ? outcome.result.signal : 0;
  summary["timed_out"] = outcome.ran && outcome.result.timed_out;
  summary["oom"] = outcome.ran && outcome.result.oom;
  summary["interrupted"] = outcome.interrupted_by != 0;

  bool keep = false;  // keep the private delta: its changes were not (all) applied
  SyncMode mode = flags.sync;
  // An interrupted run is neither applied half-way nor thrown away: its delta is kept.
  if (outcome.interrupted_by != 0 || !outcome.failure.empty()) {
    if (mode == SyncMode::kSync) mode = SyncMode::kKeepDelta;
  }
  if (mode == SyncMode::kSync) {
    auto report = sb.control().Commit();
    if (!report.ok()) {
      err << "agentfense: error: syncing the changes back failed: " << report.error().ToString()
          << "; they are kept in " << sb.delta_dir() << "\n";
      keep = true;
      code = kExitRunSync;
      summary["sync"] = {
          {"mode", "sync"}, {"error", report.error().ToString()}, {"delta_dir", sb.delta_dir()}};
    } else {
      Counts c = Count(report->applied);
      if (report->applied.empty() && !flags.quiet && !flags.json) {
        err << "agentfense: no changes to sync\n";
      } else if (!flags.quiet && !flags.json) {
        err << fmt::format(
            "agentfense: synced {} change(s) to {}: {} added, {} modified, {} deleted\n",
            report->applied.size(), source, c.added, c.modified, c.deleted);
        PrintChangeList(report->applied, err);
      }
      Json applied = Json::array();
      for (const auto& ch : report->applied) applied.push_back(ChangeJson(ch));
      Json errors = Json::array();
      for (const auto& e : report->errors) {
        errors.push_back({{"path", e.path}, {"message", e.message}});
        err << "agentfense: error: not synced: " << e.path << ": " << e.message << "\n";
      }
      summary["sync"] = {{"mode", "sync"},       {"added", c.added},   {"modified", c.modified},
                         {"deleted", c.deleted}, {"changes", applied}, {"errors", errors}};
      if (!report->errors.empty()) {
        keep = true;
        code = kExitRunSync;
        err << "agentfense: " << report->errors.size()
            << " change(s) could not be synced; they are kept in " << sb.delta_dir() << "\n";
        summary["sync"]["delta_dir"] = sb.delta_dir();
      }
    }
  } else if (mode == SyncMode::kDiscard) {
    auto n = sb.control().Discard();
    if (!n.ok()) {
      err << "agentfense: warning: discarding the changes failed: " << n.error().ToString()
          << " (they are dropped with the sandbox anyway)\n";
      summary["sync"] = {{"mode", "discard"}, {"error", n.error().ToString()}};
    } else {
      if (!flags.quiet && !flags.json) {
        err << "agentfense: discarded " << *n << " change(s); " << source << " is unchanged\n";
      }
      summary["sync"] = {{"mode", "discard"}, {"discarded", *n}};
    }
  } else {
    auto changes = sb.control().Changes();
    size_t n = changes.ok() ? changes->changes.size() : 0;
    bool private_delta = flags.sync != SyncMode::kKeepDelta;
    keep = private_delta && n > 0;
    if (!changes.ok()) keep = private_delta;  // unknown: keep rather than lose
    std::string why = outcome.interrupted_by != 0 ? "interrupted: "
                      : !outcome.failure.empty()  ? "sandbox failed: "
                                                  : "";
    if (!flags.json && (n > 0 || !private_delta || !changes.ok())) {
      err << "agentfense: " << why << (changes.ok() ? std::to_string(n) : "the")
          << " change(s) not applied to " << source << "; the delta is kept in " << sb.delta_dir()
          << "\n";
      if (changes.ok() && !flags.quiet) PrintChangeList(changes->changes, err);
    }
    Json list = Json::array();
    if (changes.ok()) {
      for (const auto& ch : changes->changes) list.push_back(ChangeJson(ch));
    }
    summary["sync"] = {{"mode", "keep-delta"}, {"delta_dir", sb.delta_dir()}, {"changes", list}};
  }

  Status closed = sb.Close(keep);
  if (!closed.ok()) {
    err << "agentfense: error: stopping the sandbox: " << closed.error().ToString() << "\n";
    if (code == 0) code = kExitRunSandbox;
  }
  summary["status"] = code;
  if (flags.json) out << summary.dump(-1, ' ', false, Json::error_handler_t::replace) << "\n";
  out.flush();
  return code;
}

Result<uint32_t> TimeoutFlag(const std::string& text, uint32_t fallback) {
  if (text.empty()) return fallback;
  auto d = ParseDuration(text);
  if (!d.ok()) {
    return Error(ErrorCode::kInvalidArgument, "--timeout " + text + ": " + d.error().message());
  }
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(*d).count();
  if (ms <= 0 || ms > UINT32_MAX) {
    return Error(ErrorCode::kInvalidArgument,
                 "--timeout " + text + ": must be between 1ms and 49 days");
  }
  return static_cast<uint32_t>(ms);
}

int StartError(const Error& e, std::ostream& err) {
  err << "agentfense: error: cannot start the sandbox: " << e.ToString() << "\n";
  return e.code() == ErrorCode::kInvalidArgument ? kExitRunUsage : kExitRunSandbox;
}

namespace {

void ReportCommandEnd(const runtime::ExecResult& r, const std::string& timeout, std::ostream& err) {
  if (r.timed_out) {
    err << "agentfense: the command timed out after " << timeout << " and was killed\n";
  } else if (r.oom) {
    err << "agentfense: the command ran out of memory (" << SignalName(r.signal) << ")\n";
  } else if (r.signal != 0) {
    err << "agentfense: the command was killed by " << SignalName(r.signal) << "\n";
  }
}

Result<std::string> ReadStdin() {
  std::string data;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(0, buf, sizeof(buf));
    if (n < 0 && errno == EINTR) {
      if (InterruptGuard::interrupted()) return Error(ErrorCode::kCancelled, "interrupted");
      continue;
    }
    if (n < 0) return Error::FromErrno(errno, "reading stdin");
    if (n == 0) return data;
    data.append(buf, static_cast<size_t>(n));
    // The agent protocol feeds stdin in one frame.
    if (data.size() > runtime::proto::kMaxPayload / 2) {
      return Invalid("--stdin: input larger than 512 KiB is not supported");
    }
  }
}

}  // namespace

int RunRun(const RunOptions& options, std::ostream& out, std::ostream& err) {
  auto prepared = Prepare(options.sandbox);
  if (!prepared.ok()) {
    err << "agentfense: error: " << prepared.error().ToString() << "\n";
    return kExitRunUsage;
  }
  if (options.command.empty()) {
    err << "agentfense: error: missing COMMAND after -- (agentfense run [flags] DIR -- COMMAND "
           "[ARG...])\n";
    return kExitRunUsage;
  }
  runtime::proto::Exec exec;
  exec.argv = options.command;
  exec.env = prepared->env;
  exec.workdir = prepared->workdir;
  exec.output_cap = UINT64_MAX;  // streamed, never collected: nothing to bound
  auto timeout = TimeoutFlag(options.timeout, 0);
  if (!timeout.ok()) {
    err << "agentfense: error: " << timeout.error().message() << "\n";
    return kExitRunUsage;
  }
  exec.timeout_ms = *timeout;

  InterruptGuard guard;
  if (options.forward_stdin) {
    auto data = ReadStdin();
    if (!data.ok()) {
      err << "agentfense: error: " << data.error().ToString() << "\n";
      return InterruptGuard::interrupted() ? 128 + InterruptGuard::signal_number() : kExitRunUsage;
    }
    exec.stdin_data = std::move(*data);
  }
  auto sandbox = LocalSandbox::Start(prepared->sandbox);
  if (!sandbox.ok()) return StartError(sandbox.error(), err);
  LocalSandbox& sb = **sandbox;

  Outcome outcome;
  std::unique_ptr<AskPrompter> asker;
  if (prepared->has_ask) {
    auto a = AskPrompter::Start(sb.control(), prepared->ask, prepared->sandbox.rules, false,
                                "agentfense run (terminal)");
    if (!a.ok()) {
      outcome.failure = a.error().ToString();
      outcome.failure_is_usage = a.error().code() == ErrorCode::kFailedPrecondition;
      err << "agentfense: error: " << outcome.failure << "\n";
      return Finish(sb, options.sandbox, prepared->sandbox.source_dir, outcome, out, err);
    }
    asker = std::move(*a);
  }
  if (!InterruptGuard::interrupted()) {
    runtime::CallOptions call;
    call.cancel = InterruptGuard::flag();
    auto result = sb.agent().Exec(exec, StreamOutput, call);
    if (result.ok()) {
      outcome.ran = true;
      outcome.result = *result;
      ReportCommandEnd(*result, options.timeout, err);
    } else if (!InterruptGuard::interrupted()) {
      outcome.failure = result.error().ToString();
      outcome.failure_is_usage = result.error().code() == ErrorCode::kInvalidArgument;
      err << "agentfense: error: running the command: " << outcome.failure << "\n";
    }
  }
  if (InterruptGuard::interrupted()) outcome.interrupted_by = InterruptGuard::signal_number();
  return Finish(sb, options.sandbox, prepared->sandbox.source_dir, outcome, out, err);
}

namespace {

// Reads stdin line by line with read(2), so that a signal interrupts a waiting prompt (EINTR)
// instead of being retried inside a buffered stream.
class LineReader {
 public:
  enum class Got { kLine, kEof, kInterrupted };
  Got Next(std::string& line) {
    for (;;) {
      if (size_t nl = buf_.find('\n'); nl != std::string::npos) {
        line = buf_.substr(0, nl);
        buf_.erase(0, nl + 1);
        return Got::kLine;
      }
      char chunk[4096];
      ssize_t n = ::read(0, chunk, sizeof(chunk));
      if (n < 0 && errno == EINTR) {
        if (InterruptGuard::interrupted()) return Got::kInterrupted;
        continue;
      }
      if (n <= 0) {
        if (buf_.empty()) return Got::kEof;
        line = std::move(buf_);
        buf_.clear();
        return Got::kLine;
      }
      buf_.append(chunk, static_cast<size_t>(n));
    }
  }
  void Drop() { buf_.clear(); }

 private:
  std::string buf_;
};

}  // namespace

namespace {

// --- terminal mode ----------------------------------------------------------------------------
//
// The user's terminal goes raw (as under ssh): every key, Ctrl-C and Ctrl-Z included, is a byte
// for the terminal inside the sandbox, which does the line editing, echo and job control. The
// sandbox never gets a descriptor of this terminal: its bytes reach ours only as output we write.

// The state to restore, reachable from signal handlers (tcsetattr is async-signal-safe).
struct termios g_saved_termios;
std::atomic<bool> g_raw{false};
int g_winch_pipe[2] = {-1, -1};

void RestoreTerminal() {
  if (g_raw.exchange(false)) ::tcsetattr(0, TCSADRAIN, &g_saved_termios);
}

// Signals whose default action ends the process: restore the terminal first, then die as asked.
// (SIGINT/SIGTERM/SIGHUP are the InterruptGuard's: they end the loop and the normal path
// restores.)
constexpr int kFatalSignals[] = {SIGQUIT, SIGUSR1, SIGUSR2, SIGALRM, SIGPIPE, SIGABRT};

void OnFatalSignal(int signo) {
  RestoreTerminal();
  (void)::signal(signo, SIG_DFL);  // async-signal-safe; nothing to do if either fails
  (void)::raise(signo);
}

void OnWinch(int) {
  int saved = errno;
  if (g_winch_pipe[1] >= 0) (void)!::write(g_winch_pipe[1], "w", 1);
  errno = saved;
}

// Raw mode and the handlers above for one scope.
class RawTerminal {
 public:
  RawTerminal() = default;
  Status Enter() {
    if (::tcgetattr(0, &g_saved_termios) != 0) return Error::FromErrno(errno, "tcgetattr");
    if (::pipe2(g_winch_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return Error::FromErrno(errno, "pipe");
    struct sigaction sa {};
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = OnFatalSignal;
    for (size_t i = 0; i < std::size(kFatalSignals); ++i) {
      ::sigaction(kFatalSignals[i], &sa, &previous_[i]);
    }
    sa.sa_handler = OnWinch;
    sa.sa_flags = SA_RESTART;
    ::sigaction(SIGWINCH, &sa, &previous_winch_);
    handlers_ = true;
    struct termios raw = g_saved_termios;
    ::cfmakeraw(&raw);
    raw.c_cc[VMIN] = 1;
    raw.c_cc[VTIME] = 0;
    g_raw = true;
    if (::tcsetattr(0, TCSADRAIN, &raw) != 0) {
      int e = errno;
      g_raw = false;
      return Error::FromErrno(e, "tcsetattr");
    }
    return OkStatus();
  }
  ~RawTerminal() {
    RestoreTerminal();
    if (handlers_) {
      for (size_t i = 0; i < std::size(kFatalSignals); ++i) {
        ::sigaction(kFatalSignals[i], &previous_[i], nullptr);
      }
      ::sigaction(SIGWINCH, &previous_winch_, nullptr);
    }
    for (int& fd : g_winch_pipe) {
      if (fd >= 0) ::close(fd);
      fd = -1;
    }
  }
  RawTerminal(const RawTerminal&) = delete;
  RawTerminal& operator=(const RawTerminal&) = delete;

 private:
  struct sigaction previous_[std::size(kFatalSignals)] {};
  struct sigaction previous_winch_ {};
  bool handlers_ = false;
};

// The window size of our terminal, clamped to what the protocol carries (80x24 when unknown).
std::pair<uint16_t, uint16_t> WindowSize() {
  struct winsize ws {};
  if (::ioctl(1, TIOCGWINSZ, &ws) != 0 && ::ioctl(0, TIOCGWINSZ, &ws) != 0) return {24, 80};
  auto clamp = [](unsigned v, uint16_t fallback) -> uint16_t {
    if (v == 0) return fallback;
    return static_cast<uint16_t>(std::min<unsigned>(v, runtime::proto::kMaxPtyDimension));
  };
  return {clamp(ws.ws_row, 24), clamp(ws.ws_col, 80)};
}

// TERM is passed on when it is a plain terminal name (it selects terminfo entries in the sandbox).
std::optional<std::string> HostTerm() {
  const char* t = std::getenv("TERM");
  if (t == nullptr || *t == '\0' || std::strlen(t) > 64) return std::nullopt;
  for (const char* c = t; *c; ++c) {
    if (!std::isalnum(static_cast<unsigned char>(*c)) && std::strchr("-_.+", *c) == nullptr) {
      return std::nullopt;
    }
  }
  return std::string(t);
}

enum class TerminalEnd { kDone, kUnavailable };

// Runs the interactive shell on a terminal inside the sandbox, relaying our (raw) terminal to it.
// kUnavailable: no terminal could be opened there (the caller falls back to line mode).
TerminalEnd RunTerminal(LocalSandbox& sb, const Prepared& prepared, const SandboxFlags& flags,
                        Outcome& outcome, std::ostream& err) {
  // Accesses to `ask` paths: questions on this (raw) terminal, answered with the next key typed.
  std::unique_ptr<AskPrompter> asker;
  if (prepared.has_ask) {
    auto a = AskPrompter::Start(sb.control(), prepared.ask, prepared.sandbox.rules, true,
                                "agentfense shell (terminal)");
    if (!a.ok()) {
      outcome.failure = a.error().ToString();
      err << "agentfense: error: " << outcome.failure << "\n";
      return TerminalEnd::kDone;
    }
    asker = std::move(*a);
  }
  runtime::proto::PtyOpen open;
  open.env = prepared.env;
  if (auto term = HostTerm(); term) {
    bool user_set = std::any_of(open.env.begin(), open.env.end(),
                                [](const auto& kv) { return kv.first == "TERM"; });
    if (!user_set) open.env.emplace_back("TERM", *term);
  }
  open.workdir = prepared.workdir;
  std::tie(open.rows, open.cols) = WindowSize();
  auto pty = sb.agent().OpenPty(open);
  if (!pty.ok()) {
    if (pty.error().code() == ErrorCode::kUnimplemented ||
        pty.error().code() == ErrorCode::kFailedPrecondition) {
      err << "agentfense: warning: no terminal in the sandbox (" << pty.error().ToString()
          << "); falling back to line mode\n";
      return TerminalEnd::kUnavailable;
    }
    outcome.failure = pty.error().ToString();
    outcome.failure_is_usage = pty.error().code() == ErrorCode::kInvalidArgument;
    err << "agentfense: error: opening the shell: " << outcome.failure << "\n";
    return TerminalEnd::kDone;
  }
  runtime::PtyCall& call = **pty;
  if (!flags.quiet) {
    err << "agentfense shell: a terminal in the sandbox at /workspace; `exit` or Ctrl-D leaves, "
           "then the changes are handled as with `run`.\n";
    err.flush();
  }
  std::string failure;
  {
    RawTerminal raw;
    if (Status st = raw.Enter(); !st.ok()) {
      outcome.failure = st.error().ToString();
      err << "agentfense: error: cannot put the terminal in raw mode: " << outcome.failure << "\n";
      return TerminalEnd::kDone;
    }
    auto to_stdout = [](runtime::proto::Stream, std::string_view data) { WriteAll(1, data); };
    bool stdin_open = true;
    std::optional<runtime::ExecResult> exited;
    char buf[16384];
    while (!exited) {
      if (InterruptGuard::interrupted()) {
        // Ctrl-C is a byte in raw mode: a SIGINT can only come from outside (kill -INT), and
        // interrupting the shell is its own business. SIGTERM / SIGHUP end the session.
        if (InterruptGuard::signal_number() != SIGINT) break;
        InterruptGuard::Reset();
      }
      pollfd pfds[3] = {{call.wait_fd(), POLLIN, 0},
                        {g_winch_pipe[0], POLLIN, 0},
                        {stdin_open ? 0 : -1, POLLIN, 0}};
      int n = ::poll(pfds, 3, 200);
      if (n < 0 && errno != EINTR) {
        failure = std::string("poll: ") + std::strerror(errno);
        break;
      }
      if (n > 0 && pfds[1].revents != 0) {
        char drop[64];
        while (::read(g_winch_pipe[0], drop, sizeof(drop)) > 0) {
        }
        auto [rows, cols] = WindowSize();
        if (Status st = call.Resize(rows, cols); !st.ok()) {
          failure = st.error().ToString();
          break;
        }
      }
      if (n > 0 && pfds[2].revents != 0) {
        ssize_t r = ::read(0, buf, sizeof(buf));
        if (r < 0 && (errno == EINTR || errno == EAGAIN)) {
          // retry on the next round
        } else if (r <= 0) {
          // Our terminal is gone (hangup): nobody can type into the shell any more.
          stdin_open = false;
          (void)call.Kill();
        } else if (asker && asker->Active()) {
          asker->Feed(std::string_view(buf, static_cast<size_t>(r)));  // an answer, not input
        } else if (Status st = call.Write(std::string_view(buf, static_cast<size_t>(r)));
                   !st.ok()) {
          failure = st.error().ToString();
          break;
        }
      }
      auto polled = call.Poll(to_stdout, std::chrono::milliseconds(0));
      if (!polled.ok()) {
        failure = polled.error().ToString();
        break;
      }
      exited = *polled;
    }
    if (exited) {
      outcome.ran = true;
      outcome.result = *exited;
    }
  }  // the terminal is restored here, before anything else is printed
  if (outcome.ran) {
    if (outcome.result.signal != 0) ReportCommandEnd(outcome.result, "", err);
  } else if (!failure.empty() && !InterruptGuard::interrupted()) {
    outcome.failure = failure;
    err << "agentfense: error: the shell failed: " << failure << "\n";
  }
  return TerminalEnd::kDone;
}

}  // namespace

int RunShell(const SandboxFlags& flags, std::ostream& out, std::ostream& err) {
  auto prepared = Prepare(flags);
  if (!prepared.ok()) {
    err << "agentfense: error: " << prepared.error().ToString() << "\n";
    return kExitRunUsage;
  }
  InterruptGuard guard;
  auto sandbox = LocalSandbox::Start(prepared->sandbox);
  if (!sandbox.ok()) return StartError(sandbox.error(), err);
  LocalSandbox& sb = **sandbox;

  Outcome outcome;
  // A terminal on both ends: a real one in the sandbox. Otherwise (a script on stdin, output to a
  // pipe) the line mode below, whose output is exactly the commands' output.
  if (::isatty(0) == 1 && ::isatty(1) == 1) {
    if (RunTerminal(sb, *prepared, flags, outcome, err) == TerminalEnd::kDone) {
      if (InterruptGuard::interrupted()) outcome.interrupted_by = InterruptGuard::signal_number();
      return Finish(sb, flags, prepared->sandbox.source_dir, outcome, out, err);
    }
  }
  std::unique_ptr<AskPrompter> asker;
  if (prepared->has_ask) {
    auto a = AskPrompter::Start(sb.control(), prepared->ask, prepared->sandbox.rules, false,
                                "agentfense shell (terminal)");
    if (!a.ok()) {
      outcome.failure = a.error().ToString();
      err << "agentfense: error: " << outcome.failure << "\n";
      return Finish(sb, flags, prepared->sandbox.source_dir, outcome, out, err);
    }
    asker = std::move(*a);
  }
  runtime::proto::SessionOpen open;
  open.env = prepared->env;
  open.workdir = prepared->workdir;
  auto session = sb.agent().OpenSession(open);
  if (!session.ok()) {
    outcome.failure = session.error().ToString();
    outcome.failure_is_usage = session.error().code() == ErrorCode::kInvalidArgument;
    err << "agentfense: error: opening the shell: " << outcome.failure << "\n";
    return Finish(sb, flags, prepared->sandbox.source_dir, outcome, out, err);
  }
  const bool tty = ::isatty(0) == 1;
  if (tty) {
    err << "agentfense shell: line mode (no terminal on both ends): each line runs in one "
           "persistent shell at /workspace; programs that need a terminal or read stdin do not "
           "work. Ctrl-C cancels the running command; Ctrl-D or `exit` leaves.\n";
    err.flush();
  }
  outcome.ran = true;
  LineReader reader;
  std::string command;
  for (;;) {
    if (tty) WriteAll(2, command.empty() ? "agentfense$ " : "> ");
    std::string line;
    LineReader::Got got = reader.Next(line);
    if (got == LineReader::Got::kInterrupted) {
      if (InterruptGuard::signal_number() != SIGINT) break;
      InterruptGuard::Reset();  // Ctrl-C at the prompt: drop the pending input, new prompt
      command.clear();
      reader.Drop();
      if (tty) WriteAll(2, "\n");
      continue;
    }
    if (got == LineReader::Got::kEof) {
      if (tty) WriteAll(2, "\n");
      break;
    }
    // A trailing backslash continues the command on the next line, as in a real shell.
    if (!line.empty() && line.back() == '\\') {
      line.pop_back();
      command += line;  // backslash-newline vanishes, as in sh
      continue;
    }
    command += line;
    runtime::proto::SessionExec exec;
    exec.session_id = *session;
    exec.command = std::move(command);
    command.clear();
    exec.timeout_ms = 0;
    exec.output_cap = UINT64_MAX;
    runtime::CallOptions call;
    call.cancel = InterruptGuard::flag();
    auto result = sb.agent().SessionExec(exec, StreamOutput, call);
    if (result.ok()) {
      outcome.result = *result;
      if (result->signal != 0 && tty) ReportCommandEnd(*result, "", err);
      continue;
    }
    if (result.error().code() == ErrorCode::kCancelled &&
        InterruptGuard::signal_number() == SIGINT) {
      InterruptGuard::Reset();  // Ctrl-C cancels the command, not the shell
      outcome.result = runtime::ExecResult{};
      outcome.result.exit_code = 128 + SIGINT;
      outcome.result.signal = SIGINT;
      if (tty) WriteAll(2, "\n");
      continue;
    }
    if (result.error().code() == ErrorCode::kFailedPrecondition) break;  // `exit`: shell gone
    if (!InterruptGuard::interrupted()) {
      outcome.ran = false;
      outcome.failure = result.error().ToString();
      err << "agentfense: error: the shell failed: " << outcome.failure << "\n";
    }
    break;
  }
  if (InterruptGuard::interrupted()) outcome.interrupted_by = InterruptGuard::signal_number();
  return Finish(sb, flags, prepared->sandbox.source_dir, outcome, out, err);
}

}  // namespace agentfense::cli
