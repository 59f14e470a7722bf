// libFuzzer target: hostile bytes into the MCP server's JSON-RPC decoder and protocol (what an MCP
// client, on stdio or on the HTTP endpoint, controls entirely). Beyond "never crash, never
// recurse without bound":
//   - a decoded message is well formed: a request has an id and a method, a notification no id;
//   - whatever the server answers is one line of valid JSON-RPC that decodes again, answering the
//     request's own id;
//   - the tools' argument validation (mcp/schema.h) holds for any arguments: a tool runs only on
//     arguments its input schema accepts.
// The workspace below refuses every operation: the protocol and the tools' validation are the
// surface under test, not a sandbox.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/path.h"
#include "mcp/jsonrpc.h"
#include "mcp/protocol.h"

namespace {

namespace jsonrpc = agentfense::mcp::jsonrpc;
namespace mcp = agentfense::mcp;
using agentfense::Error;
using agentfense::ErrorCode;
using agentfense::Result;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

class RefusingWorkspace final : public mcp::Workspace {
 public:
  Result<agentfense::runtime::ExecResult> Run(const mcp::CommandRequest& r,
                                              const agentfense::runtime::OutputCallback&,
                                              const std::atomic<bool>*) override {
    // Only arguments the input schema accepted get here.
    Check(!r.command.empty() && r.command.size() <= (1u << 20));
    return Error(ErrorCode::kUnavailable, "no sandbox");
  }
  Result<agentfense::runtime::proto::FileResult> File(
      const agentfense::runtime::proto::FileOp& op) override {
    // Only canonical workspace paths reach the sandbox: no "..", no leading '/', no "//".
    auto n = agentfense::NormalizeWorkspacePath(op.path);
    Check(n.ok() && (*n == "/" + op.path || (op.path.empty() && *n == "/")));
    return Error::FromErrno(ENOENT, "/workspace/" + op.path);
  }
  Result<std::vector<agentfense::policy::Rule>> Rules() override {
    return std::vector<agentfense::policy::Rule>{};
  }
  Result<agentfense::fs::ChangeSet> Changes() override { return agentfense::fs::ChangeSet{}; }
};

void CheckReply(const std::string& reply, const jsonrpc::Message& m) {
  Check(reply.find('\n') == std::string::npos);
  jsonrpc::Decoded back = jsonrpc::Decode(reply);
  Check(back.message.has_value());
  Check(back.message->kind == jsonrpc::Message::Kind::kResponse);
  if (m.id) Check(back.message->id && back.message->id->Key() == m.id->Key());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  jsonrpc::Decoded d = jsonrpc::Decode(text, 1 << 20);
  if (!d.message) {
    Check(!d.error.message.empty());
    CheckReply(jsonrpc::EncodeError(d.error.id, d.error.code, d.error.message), jsonrpc::Message{});
    return 0;
  }
  const jsonrpc::Message& m = *d.message;
  if (m.kind == jsonrpc::Message::Kind::kRequest) Check(m.id && !m.method.empty());
  if (m.kind == jsonrpc::Message::Kind::kNotification) Check(!m.id && !m.method.empty());
  Check(m.params.is_null() || m.params.is_object());

  static const mcp::Server server(mcp::ServerInfo{});
  RefusingWorkspace ws;
  mcp::LegacySession session;
  session.version = "2025-11-25";  // as after initialize: every method reachable
  std::mutex mu;
  mcp::InFlight in_flight;
  mcp::RequestContext ctx;
  ctx.workspace = &ws;
  ctx.session = &session;
  ctx.session_mu = &mu;
  ctx.in_flight = &in_flight;
  mcp::Reply r = server.Handle(m, ctx);
  if (r.message) {
    Check(m.kind == jsonrpc::Message::Kind::kRequest);
    CheckReply(*r.message, m);
  }
  return 0;
}
