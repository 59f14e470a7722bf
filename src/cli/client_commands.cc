// Client mode: registers the command groups and holds the helpers they share (client_common.h).
#include "cli/client_commands.h"

#include <fmt/format.h>
#include <google/protobuf/util/time_util.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "base/units.h"
#include "cli/client_common.h"
#include "cli/exit_codes.h"
#include "cli/interrupts.h"

namespace agentfense::cli {

using google::protobuf::util::TimeUtil;

const char kClientFooter[] =
    "Server: --endpoint HOST:PORT or $AGENTFENSE_ENDPOINT (default 127.0.0.1:9000); token: "
    "--token\n"
    "or $AGENTFENSE_TOKEN. Exit status: 0 ok; 1 failure; 2 invalid input; 3 not found; 4 server\n"
    "unreachable or timed out; 5 unauthenticated or denied; 6 wrong state (not running, exists,\n"
    "quota). `exec` commands exit with the command's status instead, or 130/143/129 when\n"
    "Ctrl-C/SIGTERM/SIGHUP interrupted them (the command is cancelled on the server). Errors go "
    "to\n"
    "stderr.";

CLI::App* ClientRegistrar::Group(CLI::App* parent, const std::string& name,
                                 const std::string& desc) const {
  CLI::App* group = commands.Sub(parent, name, desc, kClientFooter);
  group->require_subcommand(1);
  return group;
}

CLI::App* ClientRegistrar::Leaf(CLI::App* parent, const std::string& name,
                                const std::string& desc) const {
  CLI::App* sub = commands.Sub(parent, name, desc, kClientFooter);
  sub->add_option("--endpoint", c->flags.endpoint, "Server gRPC address (host:port)");
  sub->add_option("--token", c->flags.token, "Bearer token");
  sub->add_flag("--json", c->flags.json, "Print JSON (the API's JSON form)");
  return sub;
}

int Usage(ClientCtx& c, const std::string& message) {
  *c.err << "agentfense: error: " << message << "\n";
  return kExitUsage;
}

int Fail(ClientCtx& c, const Error& e) {
  *c.err << "agentfense: error: " << e.ToString() << "\n";
  return ExitCodeFor(e);
}

std::string Ts(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "-";
  return TimeUtil::ToString(t);
}

std::string StatusName(v1::SandboxStatus s) {
  std::string n = v1::SandboxStatus_Name(s);
  return n.rfind("SANDBOX_STATUS_", 0) == 0 ? n.substr(15) : n;
}

Result<std::string> CommandText(const ClientCtx& c) {
  if (!c.dashdash || c.trailing->empty()) {
    return Error(ErrorCode::kInvalidArgument, "missing -- COMMAND [ARG...]");
  }
  std::string text;
  for (const auto& a : *c.trailing) text += (text.empty() ? "" : " ") + a;
  return text;
}

Result<google::protobuf::Duration> ToDuration(const std::string& text, const char* flag) {
  auto d = ParseDuration(text);
  if (!d.ok()) {
    return Error(ErrorCode::kInvalidArgument,
                 std::string(flag) + " " + text + ": " + d.error().message());
  }
  return TimeUtil::NanosecondsToDuration(d->count());
}

Result<std::map<std::string, std::string>> KeyValues(const std::vector<std::string>& kvs,
                                                     const char* flag) {
  std::map<std::string, std::string> m;
  for (const auto& kv : kvs) {
    size_t eq = kv.find('=');
    if (eq == 0 || eq == std::string::npos) {
      return Error(ErrorCode::kInvalidArgument,
                   std::string(flag) + " " + kv + ": expected KEY=VALUE");
    }
    m[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return m;
}

void WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    data.remove_prefix(static_cast<size_t>(n));
  }
}

namespace {

// Cancels a call once InterruptGuard saw a signal. The handler can only set a flag and the
// blocking Read of a sync stream does not return on EINTR, so a small thread watches the flag.
class CancelOnInterrupt {
 public:
  explicit CancelOnInterrupt(grpc::ClientContext* ctx)
      : thread_([this, ctx] {
          std::unique_lock lock(mu_);
          while (!done_) {
            if (InterruptGuard::interrupted()) {
              ctx->TryCancel();  // before the call starts too: it then starts cancelled
              return;
            }
            cv_.wait_for(lock, std::chrono::milliseconds(20));
          }
        }) {}
  ~CancelOnInterrupt() {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  CancelOnInterrupt(const CancelOnInterrupt&) = delete;
  CancelOnInterrupt& operator=(const CancelOnInterrupt&) = delete;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;  // last: starts once the fields above exist
};

template <typename Request>
int RunExec(ClientCtx& c, const Request& req, const char* what) {
  Client client(c.flags);
  ExecOutcome r;
  {
    InterruptGuard guard;
    r = StreamExecOutput(client, [&](grpc::ClientContext* ctx) {
      if constexpr (std::is_same_v<Request, v1::ExecRequest>) {
        return client.sandboxes().ExecStream(ctx, req);
      } else {
        return client.sandboxes().SessionExecStream(ctx, req);
      }
    });
  }
  if (r.signal != 0) {
    *c.err << "agentfense: interrupted; the command was cancelled on the server\n";
    return 128 + r.signal;
  }
  if (!r.status.ok()) return GrpcFail(r.status, what, client.endpoint(), *c.err);
  if (r.exit_code < 0) {
    *c.err << "agentfense: error: " << what
           << ": the server ended the stream without an exit code\n";
    return kExitFailure;
  }
  if (c.flags.json) *c.out << nlohmann::json{{"exit_code", r.exit_code}}.dump() << "\n";
  return r.exit_code;
}

}  // namespace

ExecOutcome StreamExecOutput(const Client& client,
                             const std::function<ExecReader(grpc::ClientContext*)>& start) {
  ExecOutcome r;
  auto ctx = client.Context(0);
  {
    CancelOnInterrupt cancel(ctx.get());
    ExecReader reader = start(ctx.get());
    v1::ExecOutput msg;
    while (reader->Read(&msg)) {
      if (!msg.data().empty()) {
        WriteAll(msg.type() == v1::ExecOutput::OUTPUT_TYPE_STDERR ? 2 : 1, msg.data());
      }
      if (msg.has_exit_code()) r.exit_code = msg.exit_code();
    }
    r.status = reader->Finish();
  }
  if (InterruptGuard::interrupted()) r.signal = InterruptGuard::signal_number();
  return r;
}

int RunExecStream(ClientCtx& c, const v1::ExecRequest& req) { return RunExec(c, req, "exec"); }
int RunExecStream(ClientCtx& c, const v1::SessionExecRequest& req) {
  return RunExec(c, req, "session exec");
}

void AddClientCommands(CLI::App& app, CommandSet& commands,
                       const std::vector<std::string>& trailing, bool dashdash, std::ostream& out,
                       std::ostream& err) {
  auto c = std::make_shared<ClientCtx>();
  c->out = &out;
  c->err = &err;
  c->trailing = &trailing;
  c->dashdash = dashdash;
  // Also accepted before the command: `agentfense --endpoint H:P sandbox ls`.
  app.add_option("--endpoint", c->flags.endpoint, "Server gRPC address for client commands");
  app.add_option("--token", c->flags.token, "Bearer token for client commands");
  ClientRegistrar r{commands, c};
  AddCodebaseCommands(app, r);
  AddSandboxCommands(app, r);
  AddSessionCommands(app, r);
  AddChangesCommands(app, r);
  AddCheckpointCommands(app, r);
}

}  // namespace agentfense::cli
