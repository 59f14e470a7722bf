// Shared by the client-mode command groups (client_codebase.cc, client_sandbox.cc,
// client_session.cc, client_changes.cc; registered by client_commands.cc): the per-invocation
// state, leaf registration, and the small parsing and printing helpers they have in common.
// Internal to src/cli.
#pragma once

#include <google/protobuf/duration.pb.h>
#include <google/protobuf/timestamp.pb.h>

#include <functional>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "cli/client_conn.h"
#include "cli/command_set.h"

namespace agentfense::cli {

namespace v1 = ::sandbox::v1;

extern const char kClientFooter[];

// State of one invocation shared by all client leaves (only the parsed leaf's options are set).
struct ClientCtx {
  ClientFlags flags;
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
  const std::vector<std::string>* trailing = nullptr;
  bool dashdash = false;
};

// Registers the leaves of one command group.
struct ClientRegistrar {
  CommandSet& commands;
  std::shared_ptr<ClientCtx> c;

  // A command group (`codebase`, `sandbox`, `session`) under `parent`; needs a subcommand.
  CLI::App* Group(CLI::App* parent, const std::string& name, const std::string& desc) const;
  // A leaf with the client flags (--endpoint, --token, --json).
  CLI::App* Leaf(CLI::App* parent, const std::string& name, const std::string& desc) const;
};

void AddCodebaseCommands(CLI::App& app, const ClientRegistrar& r);
void AddSandboxCommands(CLI::App& app, const ClientRegistrar& r);
void AddSessionCommands(CLI::App& app, const ClientRegistrar& r);
void AddChangesCommands(CLI::App& app, const ClientRegistrar& r);
void AddCheckpointCommands(CLI::App& app, const ClientRegistrar& r);  // and `approval`

// "agentfense: error: <message>" on stderr; returns kExitUsage.
int Usage(ClientCtx& c, const std::string& message);
// "agentfense: error: <error>" on stderr; returns the exit status for it.
int Fail(ClientCtx& c, const Error& e);

// "-" for an unset timestamp, else RFC 3339.
std::string Ts(const google::protobuf::Timestamp& t);
// A sandbox status without its SANDBOX_STATUS_ prefix.
std::string StatusName(v1::SandboxStatus s);

// Joins COMMAND [ARG...] after "--" as ssh does: the server runs the text with /bin/sh -c.
Result<std::string> CommandText(const ClientCtx& c);
// Parses DUR (`30s`, `1h30m`) for `flag`.
Result<google::protobuf::Duration> ToDuration(const std::string& text, const char* flag);
// Parses repeated KEY=VALUE arguments of `flag`.
Result<std::map<std::string, std::string>> KeyValues(const std::vector<std::string>& kvs,
                                                     const char* flag);
// write(2) all of `data`, retrying on EINTR; gives up silently on other errors.
void WriteAll(int fd, std::string_view data);

// One streamed exec call, started by `start` with our context: its output goes to our stdout /
// stderr as it arrives. An installed InterruptGuard's signal (Ctrl-C, SIGTERM, SIGHUP) cancels the
// call, upon which the server kills the command (a session keeps its shell).
struct ExecOutcome {
  grpc::Status status;
  int exit_code = -1;  // -1: the stream carried none
  int signal = 0;      // the signal that cancelled the call, 0 if none did
};
using ExecReader = std::unique_ptr<grpc::ClientReader<v1::ExecOutput>>;
ExecOutcome StreamExecOutput(const Client& client,
                             const std::function<ExecReader(grpc::ClientContext*)>& start);

// `sandbox exec` / `session exec`: streams the command's output and returns its exit status, a
// client exit status when the call fails, or 128 + N when signal N interrupted us (the command is
// cancelled on the server).
int RunExecStream(ClientCtx& c, const v1::ExecRequest& req);
int RunExecStream(ClientCtx& c, const v1::SessionExecRequest& req);

}  // namespace agentfense::cli
