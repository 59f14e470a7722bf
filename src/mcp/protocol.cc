#include "mcp/protocol.h"

#include "mcp/tools.h"

namespace agentfense::mcp {
namespace {

using Json = jsonrpc::Json;
using jsonrpc::Message;

// The tool list never changes while a server runs: clients may cache it.
constexpr int64_t kListTtlMs = 300000;

Reply Answer(const Message& m, Json result) {
  Reply r;
  if (!m.id) return r;  // a notification is never answered
  r.message = jsonrpc::EncodeResult(*m.id, std::move(result));
  return r;
}

Reply Fail(const Message& m, int code, std::string_view message, int http_status = 200,
           const Json& data = Json()) {
  Reply r;
  r.message = jsonrpc::EncodeError(m.id, code, message, data);
  r.http_status = http_status;
  return r;
}

const Json* Meta(const Message& m) {
  if (!m.params.is_object()) return nullptr;
  auto it = m.params.find("_meta");
  return it != m.params.end() && it->is_object() ? &*it : nullptr;
}

Json AllVersions() {
  Json v = Json::array();
  for (const auto& s : ModernVersions()) v.push_back(s);
  for (const auto& s : LegacyVersions()) v.push_back(s);
  return v;
}

Json Capabilities() { return Json{{"tools", {{"listChanged", false}}}}; }

// notifications/cancelled, in both eras: the request's cancel flag is set; its tool stops.
void CancelRequest(const Message& m, const RequestContext& ctx) {
  if (ctx.in_flight == nullptr || !m.params.is_object()) return;
  auto id = m.params.find("requestId");
  if (id == m.params.end()) return;
  if (auto parsed = jsonrpc::Id::From(*id)) ctx.in_flight->Cancel(parsed->Key());
}

}  // namespace

const std::vector<std::string>& ModernVersions() {
  static const std::vector<std::string> v = {"2026-07-28"};
  return v;
}

const std::vector<std::string>& LegacyVersions() {
  static const std::vector<std::string> v = {"2025-11-25", "2025-06-18", "2025-03-26",
                                             "2024-11-05", "2024-10-07"};
  return v;
}

bool IsModernVersion(std::string_view v) {
  for (const auto& s : ModernVersions()) {
    if (s == v) return true;
  }
  return false;
}

bool IsLegacyVersion(std::string_view v) {
  for (const auto& s : LegacyVersions()) {
    if (s == v) return true;
  }
  return false;
}

bool InFlight::Add(const std::string& key, std::shared_ptr<std::atomic<bool>> flag) {
  std::lock_guard lock(mu_);
  return calls_.emplace(key, std::move(flag)).second;
}

void InFlight::Remove(const std::string& key) {
  std::lock_guard lock(mu_);
  calls_.erase(key);
}

void InFlight::Cancel(const std::string& key) {
  std::lock_guard lock(mu_);
  if (auto it = calls_.find(key); it != calls_.end()) it->second->store(true);
}

void InFlight::CancelAll() {
  std::lock_guard lock(mu_);
  for (auto& [key, flag] : calls_) flag->store(true);
}

size_t InFlight::size() const {
  std::lock_guard lock(mu_);
  return calls_.size();
}

Classified Classify(const Message& m) {
  Classified c;
  const Json* meta = Meta(m);
  if (meta == nullptr) return c;
  auto v = meta->find(kProtocolVersionMeta);
  if (v == meta->end()) return c;
  c.modern = true;
  c.version = v->is_string() ? v->get<std::string>() : std::string();
  auto caps = meta->find(kClientCapabilitiesMeta);
  c.acceptable = IsModernVersion(c.version) && caps != meta->end() && caps->is_object();
  return c;
}

Json Server::ServerInfoJson() const {
  return Json{{"name", info_.name}, {"title", info_.title}, {"version", info_.version}};
}

Reply Server::Handle(const Message& m, const RequestContext& ctx) const {
  if (m.kind == Message::Kind::kResponse) return Reply{};  // we never ask: nothing to match
  Classified c = Classify(m);
  if (c.modern) return HandleModern(m, ctx, c);
  return HandleLegacy(m, ctx);
}

Reply Server::CallTool(const Message& m, const RequestContext& ctx, bool structured,
                       const std::function<Json(Json)>& finish) const {
  auto name = m.params.find("name");
  if (!m.params.is_object() || name == m.params.end() || !name->is_string()) {
    return Fail(m, jsonrpc::kInvalidParams, "tools/call needs params.name (a string)", 400);
  }
  Json arguments;
  if (auto a = m.params.find("arguments"); a != m.params.end()) {
    if (!a->is_object()) {
      return Fail(m, jsonrpc::kInvalidParams, "tools/call params.arguments must be an object", 400);
    }
    arguments = *a;
  }
  if (ctx.workspace == nullptr) {
    return Fail(m, jsonrpc::kInternalError, "no sandbox to run the tool in");
  }
  ToolCall call;
  call.workspace = ctx.workspace;
  call.cancel = ctx.cancel;
  call.structured = structured;
  const Json* meta = Meta(m);
  if (meta != nullptr && ctx.notify) {
    auto token = meta->find("progressToken");
    if (token != meta->end() && jsonrpc::Id::From(*token)) {
      const Json& tok = *token;  // copied into the callback below
      NotifyFn notify = ctx.notify;
      call.progress = [tok, notify](double progress, double total, const std::string& message) {
        Json p = {{"progressToken", tok}, {"progress", progress}, {"message", message}};
        if (total > 0) p["total"] = total;
        notify(jsonrpc::EncodeNotification("notifications/progress", p));
      };
    }
  }
  auto result = mcp::CallTool(name->get<std::string>(), arguments, call);
  if (!result.ok()) {
    // A cancelled request gets no answer (MCP cancellation); the transport closes its stream.
    if (result.error().code() == ErrorCode::kCancelled) return Reply{};
    return Fail(m, jsonrpc::kInvalidParams, result.error().message(), 400);
  }
  return Answer(m, finish(std::move(*result)));
}

Reply Server::HandleModern(const Message& m, const RequestContext& ctx,
                           const Classified& c) const {
  if (m.kind == Message::Kind::kNotification) {
    if (m.method == "notifications/cancelled") CancelRequest(m, ctx);
    return Reply{};  // other notifications carry nothing this server acts on
  }
  if (!IsModernVersion(c.version)) {
    Reply r = Fail(m, jsonrpc::kUnsupportedProtocolVersion, "Unsupported protocol version", 400,
                   Json{{"supported", AllVersions()}, {"requested", c.version}});
    r.modern = true;
    return r;
  }
  if (!c.acceptable) {
    Reply r = Fail(m, jsonrpc::kInvalidParams,
                   "_meta lacks io.modelcontextprotocol/clientCapabilities (required with "
                   "io.modelcontextprotocol/protocolVersion)",
                   400);
    r.modern = true;
    return r;
  }
  // Every result of this revision says what it is and who answered.
  auto finish = [this](Json result) {
    result["resultType"] = "complete";
    result["_meta"][std::string(kServerInfoMeta)] = ServerInfoJson();
    return result;
  };
  Reply r;
  if (m.method == "server/discover") {
    Json d = {{"supportedVersions", Json(ModernVersions())},
              {"capabilities", Capabilities()},
              {"ttlMs", kListTtlMs},
              {"cacheScope", "public"}};
    if (!info_.instructions.empty()) d["instructions"] = info_.instructions;
    r = Answer(m, finish(std::move(d)));
  } else if (m.method == "ping") {
    r = Answer(m, finish(Json::object()));
  } else if (m.method == "tools/list") {
    r = Answer(m, finish(Json{{"tools", ListTools(true)},
                              {"ttlMs", kListTtlMs},
                              {"cacheScope", "public"}}));
  } else if (m.method == "tools/call") {
    r = CallTool(m, ctx, /*structured=*/true, finish);
  } else {
    r = Fail(m, jsonrpc::kMethodNotFound, "Method not found: " + m.method.substr(0, 64), 404);
  }
  r.modern = true;
  return r;
}

Reply Server::HandleLegacy(const Message& m, const RequestContext& ctx) const {
  std::unique_lock<std::mutex> lock;
  if (ctx.session_mu != nullptr) lock = std::unique_lock(*ctx.session_mu);
  LegacySession* s = ctx.session;
  if (m.kind == Message::Kind::kNotification) {
    if (m.method == "notifications/initialized" && s != nullptr && !s->version.empty()) {
      s->initialized = true;
    } else if (m.method == "notifications/cancelled") {
      CancelRequest(m, ctx);
    }
    return Reply{};
  }
  if (m.method == "initialize") {
    if (s == nullptr) return Fail(m, jsonrpc::kInvalidRequest, "no session for initialize", 400);
    if (!s->version.empty()) {
      return Fail(m, jsonrpc::kInvalidRequest, "already initialized", 400);
    }
    auto requested = m.params.is_object() ? m.params.find("protocolVersion") : m.params.end();
    if (!m.params.is_object() || requested == m.params.end() || !requested->is_string()) {
      return Fail(m, jsonrpc::kInvalidParams, "initialize needs params.protocolVersion", 400);
    }
    // The client's version when we speak it, else our newest legacy one: the client decides
    // whether it can live with that (MCP lifecycle, version negotiation).
    std::string version = requested->get<std::string>();
    if (!IsLegacyVersion(version)) version = LegacyVersions().front();
    s->version = version;
    Json result = {{"protocolVersion", version},
                   {"capabilities", Capabilities()},
                   {"serverInfo", ServerInfoJson()}};
    if (!info_.instructions.empty()) result["instructions"] = info_.instructions;
    Reply r = Answer(m, result);
    r.negotiated = version;
    return r;
  }
  if (m.method == "ping") return Answer(m, Json::object());
  if (s == nullptr || s->version.empty()) {
    return Fail(m, jsonrpc::kInvalidRequest,
                "not initialized: send initialize first, or use per-request _meta "
                "(io.modelcontextprotocol/protocolVersion 2026-07-28)",
                400);
  }
  // structuredContent and outputSchema came with 2025-06-18 (dates compare as strings).
  const bool structured = s->version >= "2025-06-18";
  if (lock.owns_lock()) lock.unlock();  // a tool may run for long: the session stays usable
  if (m.method == "tools/list") return Answer(m, Json{{"tools", ListTools(structured)}});
  if (m.method == "tools/call") {
    return CallTool(m, ctx, structured, [](Json result) { return result; });
  }
  return Fail(m, jsonrpc::kMethodNotFound, "Method not found: " + m.method.substr(0, 64));
}

}  // namespace agentfense::mcp
