// The protocol and the tools over an in-memory workspace (a test double: the real one is a
// sandbox, exercised end to end by tests/mcp with the official SDK clients).
#include "mcp/protocol.h"

#include <gtest/gtest.h>

#include <map>
#include <thread>

#include "mcp/schema.h"
#include "mcp/tools.h"

namespace agentfense::mcp {
namespace {
// NOLINTBEGIN(bugprone-unchecked-optional-access): every optional read here follows an
// ASSERT_TRUE on it, which ends the test when it is empty; the check does not model gtest.

using Json = nlohmann::json;
namespace proto = runtime::proto;

class MemoryWorkspace : public Workspace {
 public:
  std::map<std::string, std::string> files;  // relative path → content
  std::vector<policy::Rule> rules = {{"**/*", policy::PatternType::kGlob, policy::Level::kRead, 0},
                                     {"/secret", policy::PatternType::kGlob, policy::Level::kNone,
                                      10}};
  std::atomic<int> runs{0};

  Result<runtime::ExecResult> Run(const CommandRequest& req, const runtime::OutputCallback& out,
                                  const std::atomic<bool>* cancel) override {
    ++runs;
    if (req.command == "block") {
      while (cancel == nullptr || !cancel->load()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      return Error(ErrorCode::kCancelled, "command cancelled");
    }
    out(proto::Stream::kStdout, "out:" + req.command);
    out(proto::Stream::kStderr, std::string("\xff", 1));
    runtime::ExecResult r;
    r.exit_code = 3;
    r.duration_us = 1500;
    return r;
  }
  Result<proto::FileResult> File(const proto::FileOp& op) override {
    proto::FileResult r;
    auto it = files.find(op.path);
    switch (op.op) {
      case proto::FileOpKind::kRead: {
        if (it == files.end()) return Error::FromErrno(ENOENT, "/workspace/" + op.path);
        r.data = it->second.substr(std::min<size_t>(op.offset, it->second.size()), op.limit);
        r.eof = op.offset + r.data.size() >= it->second.size();
        r.stat.size = it->second.size();
        return r;
      }
      case proto::FileOpKind::kWrite: {
        std::string& f = files[op.path];
        if (op.flags & proto::kFileWriteTruncate) f.clear();
        f.resize(std::max<size_t>(f.size(), op.offset + op.data.size()));
        f.replace(op.offset, op.data.size(), op.data);
        r.stat.size = f.size();
        return r;
      }
      case proto::FileOpKind::kStat:
        if (op.path == "dir") {
          r.stat.type = proto::FileType::kDirectory;
          return r;
        }
        if (it == files.end()) return Error::FromErrno(ENOENT, "/workspace/" + op.path);
        r.stat.type = proto::FileType::kFile;
        return r;
      case proto::FileOpKind::kList:
        for (const auto& [p, c] : files) {
          r.entries.push_back(proto::FileEntry{p, proto::FileType::kFile, c.size(), 0644, 0});
        }
        r.entries.push_back(proto::FileEntry{"dir", proto::FileType::kDirectory, 0, 0755, 0});
        return r;
      case proto::FileOpKind::kEdit: {
        if (it == files.end()) return Error::FromErrno(ENOENT, "/workspace/" + op.path);
        size_t at = it->second.find(op.data);
        if (at == std::string::npos) return Error(ErrorCode::kFailedPrecondition, "no match");
        it->second.replace(at, op.data.size(), op.replacement);
        r.count = 1;
        r.stat.size = it->second.size();
        return r;
      }
    }
    return Error(ErrorCode::kInternal, "unreachable");
  }
  Result<std::vector<policy::Rule>> Rules() override { return rules; }
  Result<fs::ChangeSet> Changes() override {
    fs::ChangeSet cs;
    cs.changes.push_back(fs::Change{"/a.txt", fs::ChangeKind::kAdded, 3, false});
    cs.delta_bytes = 3;
    return cs;
  }
};

class ProtocolTest : public ::testing::Test {
 protected:
  Server server_{ServerInfo{"agentfense", "AgentFense sandbox", "test", "a sandbox"}};
  MemoryWorkspace ws_;
  LegacySession session_;
  std::mutex session_mu_;
  InFlight in_flight_;
  std::vector<std::string> notes_;
  std::mutex notes_mu_;

  RequestContext Ctx(const std::atomic<bool>* cancel = nullptr) {
    RequestContext c;
    c.workspace = &ws_;
    c.session = &session_;
    c.session_mu = &session_mu_;
    c.in_flight = &in_flight_;
    c.cancel = cancel;
    c.notify = [this](const std::string& m) {
      std::lock_guard lock(notes_mu_);
      notes_.push_back(m);
    };
    return c;
  }
  Reply Send(const Json& msg, const std::atomic<bool>* cancel = nullptr) {
    auto d = jsonrpc::Decode(msg.dump());
    EXPECT_TRUE(d.message) << d.error.message;
    return server_.Handle(*d.message, Ctx(cancel));
  }
  Json Call(const Json& msg) {
    Reply r = Send(msg);
    EXPECT_TRUE(r.message);
    return r.message ? Json::parse(*r.message) : Json();
  }
  void Initialize(const std::string& version) {
    Json r = Call({{"jsonrpc", "2.0"},
                   {"id", 0},
                   {"method", "initialize"},
                   {"params",
                    {{"protocolVersion", version},
                     {"capabilities", Json::object()},
                     {"clientInfo", {{"name", "t"}, {"version", "1"}}}}}});
    ASSERT_EQ(r["result"]["protocolVersion"], version);
    Send({{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}});
  }
  Json Tool(const std::string& name, const Json& args) {
    return Call({{"jsonrpc", "2.0"},
                 {"id", 9},
                 {"method", "tools/call"},
                 {"params", {{"name", name}, {"arguments", args}}}})["result"];
  }
  static Json Modern(Json msg, const std::string& version = "2026-07-28") {
    msg["params"]["_meta"] = {{"io.modelcontextprotocol/protocolVersion", version},
                              {"io.modelcontextprotocol/clientCapabilities", Json::object()}};
    return msg;
  }
};

TEST_F(ProtocolTest, LegacyHandshakeNegotiatesAVersion) {
  // Before initialize only ping works.
  Json early = Call({{"jsonrpc", "2.0"}, {"id", 1}, {"method", "tools/list"}});
  EXPECT_EQ(early["error"]["code"], jsonrpc::kInvalidRequest);
  EXPECT_TRUE(Call({{"jsonrpc", "2.0"}, {"id", 2}, {"method", "ping"}})["result"].is_object());
  // An unknown version is answered with our newest legacy one.
  Json r = Call({{"jsonrpc", "2.0"},
                 {"id", 3},
                 {"method", "initialize"},
                 {"params", {{"protocolVersion", "1999-01-01"}, {"capabilities", Json::object()}}}});
  EXPECT_EQ(r["result"]["protocolVersion"], LegacyVersions().front());
  EXPECT_EQ(r["result"]["serverInfo"]["name"], "agentfense");
  EXPECT_TRUE(r["result"]["capabilities"].contains("tools"));
  EXPECT_EQ(r["result"]["instructions"], "a sandbox");
  // A second initialize is refused.
  Json again = Call({{"jsonrpc", "2.0"},
                     {"id", 4},
                     {"method", "initialize"},
                     {"params", {{"protocolVersion", "2025-06-18"}}}});
  EXPECT_EQ(again["error"]["code"], jsonrpc::kInvalidRequest);
  Json unknown = Call({{"jsonrpc", "2.0"}, {"id", 5}, {"method", "resources/list"}});
  EXPECT_EQ(unknown["error"]["code"], jsonrpc::kMethodNotFound);
}

TEST_F(ProtocolTest, OutputSchemasOnlyFromTheirRevision) {
  Initialize("2024-11-05");
  Json tools = Call({{"jsonrpc", "2.0"}, {"id", 1}, {"method", "tools/list"}})["result"]["tools"];
  ASSERT_EQ(tools.size(), 7u);
  for (const auto& t : tools) {
    EXPECT_FALSE(t.contains("outputSchema")) << t["name"];
    EXPECT_EQ(t["inputSchema"]["type"], "object");
  }
  Json r = Tool("run_command", {{"command", "x"}});
  EXPECT_FALSE(r.contains("structuredContent"));
  EXPECT_EQ(Json::parse(r["content"][0]["text"].get<std::string>())["exit_code"], 3);
}

TEST_F(ProtocolTest, EveryToolsStructuredResultMatchesItsOutputSchema) {
  Initialize("2025-11-25");
  Json tools = Call({{"jsonrpc", "2.0"}, {"id", 1}, {"method", "tools/list"}})["result"]["tools"];
  std::map<std::string, Json> schema;
  for (const auto& t : tools) schema[t["name"]] = t["outputSchema"];
  const std::vector<std::pair<std::string, Json>> calls = {
      {"write_file", {{"path", "/a.txt"}, {"content", "hello world"}}},
      {"read_file", {{"path", "a.txt"}}},
      {"edit_file", {{"path", "/workspace/a.txt"}, {"old_string", "world"}, {"new_string", "you"}}},
      {"list_files", Json::object()},
      {"explain_permission", {{"path", "/secret"}}},
      {"explain_permission", {{"path", "dir"}}},
      {"changes", Json::object()},
      {"run_command", {{"command", "echo"}, {"timeout", 2.5}}},
  };
  for (const auto& [name, args] : calls) {
    Json r = Tool(name, args);
    ASSERT_FALSE(r["isError"].get<bool>()) << name << ": " << r.dump();
    ASSERT_TRUE(r.contains("structuredContent")) << name;
    Status valid = ValidateJson(schema[name], r["structuredContent"], name);
    EXPECT_TRUE(valid.ok()) << valid.error().ToString() << " in " << r.dump();
  }
  EXPECT_EQ(ws_.files["a.txt"], "hello you");
  Json read = Tool("read_file", {{"path", "a.txt"}});
  EXPECT_EQ(read["content"][0]["text"], "hello you");  // the bytes travel once, as the text block
  EXPECT_FALSE(read["structuredContent"].contains("content"));
  EXPECT_EQ(read["structuredContent"]["encoding"], "utf-8");
  EXPECT_TRUE(read["structuredContent"]["eof"].get<bool>());
  Json ex = Tool("explain_permission", {{"path", "/secret"}})["structuredContent"];
  EXPECT_EQ(ex["level"], "none");
  EXPECT_EQ(ex["deciding_rule"]["pattern"], "/secret");
  EXPECT_EQ(ex["deciding_rule"]["index"], 1);
  Json run = Tool("run_command", {{"command", "echo"}})["structuredContent"];
  EXPECT_EQ(run["stdout"], "out:echo");
  EXPECT_EQ(run["stderr"], "\xEF\xBF\xBD");  // bytes that are not UTF-8 arrive replaced
}

TEST_F(ProtocolTest, BadArgumentsAndFailuresAreToolErrors) {
  Initialize("2025-06-18");
  for (const Json& args : {Json::object(), Json{{"path", 5}}, Json{{"path", "a"}, {"extra", 1}},
                           Json{{"path", "../etc/passwd"}}, Json{{"path", "a"}, {"limit", 0}}}) {
    Json r = Tool("read_file", args);
    EXPECT_TRUE(r["isError"].get<bool>()) << args.dump();
    EXPECT_FALSE(r.contains("structuredContent"));
  }
  Json missing = Tool("read_file", {{"path", "nope"}});
  ASSERT_TRUE(missing["isError"].get<bool>());
  std::string text = missing["content"][0]["text"];
  EXPECT_NE(text.find("ENOENT"), std::string::npos) << text;
  EXPECT_NE(text.find("No such file or directory"), std::string::npos) << text;
  // base64 content must be strict base64.
  EXPECT_TRUE(Tool("write_file", {{"path", "b"}, {"content", "!!"}, {"encoding", "base64"}})
                  ["isError"].get<bool>());
  Json ok = Tool("write_file", {{"path", "b"}, {"content", "AAEC"}, {"encoding", "base64"}});
  EXPECT_FALSE(ok["isError"].get<bool>());
  EXPECT_EQ(ws_.files["b"], std::string("\0\1\2", 3));
  Json bin = Tool("read_file", {{"path", "b"}});
  EXPECT_EQ(bin["structuredContent"]["encoding"], "base64");
  EXPECT_EQ(bin["content"][0]["type"], "resource");
  EXPECT_EQ(bin["content"][0]["resource"]["blob"], "AAEC");
  EXPECT_EQ(bin["content"][0]["resource"]["uri"], "file:///workspace/b");
  // An unknown tool is a protocol error.
  Json r = Call({{"jsonrpc", "2.0"},
                 {"id", 3},
                 {"method", "tools/call"},
                 {"params", {{"name", "rm_rf"}, {"arguments", Json::object()}}}});
  EXPECT_EQ(r["error"]["code"], jsonrpc::kInvalidParams);
}

TEST_F(ProtocolTest, ModernRequestsAreStatelessAndVersioned) {
  // No initialize: each request carries its version and capabilities.
  Reply d = Send(Modern({{"jsonrpc", "2.0"}, {"id", 1}, {"method", "server/discover"}}));
  ASSERT_TRUE(d.message);
  EXPECT_TRUE(d.modern);
  Json disc = Json::parse(*d.message)["result"];
  EXPECT_EQ(disc["resultType"], "complete");
  EXPECT_EQ(disc["supportedVersions"][0], "2026-07-28");
  EXPECT_EQ(disc["_meta"]["io.modelcontextprotocol/serverInfo"]["name"], "agentfense");

  Json list = Call(Modern({{"jsonrpc", "2.0"}, {"id", 2}, {"method", "tools/list"}}))["result"];
  EXPECT_EQ(list["resultType"], "complete");
  EXPECT_TRUE(list["tools"][0].contains("outputSchema"));
  Json call = Call(Modern({{"jsonrpc", "2.0"},
                           {"id", 3},
                           {"method", "tools/call"},
                           {"params", {{"name", "changes"}}}}))["result"];
  EXPECT_EQ(call["resultType"], "complete");
  EXPECT_EQ(call["structuredContent"]["changes"][0]["path"], "/a.txt");

  Reply bad = Send(Modern({{"jsonrpc", "2.0"}, {"id", 4}, {"method", "tools/list"}}, "1900-01-01"));
  EXPECT_EQ(bad.http_status, 400);
  Json e = Json::parse(*bad.message)["error"];
  EXPECT_EQ(e["code"], jsonrpc::kUnsupportedProtocolVersion);
  EXPECT_EQ(e["data"]["requested"], "1900-01-01");
  EXPECT_EQ(e["data"]["supported"][0], "2026-07-28");

  Json nocaps = {{"jsonrpc", "2.0"},
                 {"id", 5},
                 {"method", "tools/list"},
                 {"params", {{"_meta", {{"io.modelcontextprotocol/protocolVersion", "2026-07-28"}}}}}};
  Reply r = Send(nocaps);
  EXPECT_EQ(r.http_status, 400);
  EXPECT_EQ(Json::parse(*r.message)["error"]["code"], jsonrpc::kInvalidParams);
  Reply unknown = Send(Modern({{"jsonrpc", "2.0"}, {"id", 6}, {"method", "nope"}}));
  EXPECT_EQ(unknown.http_status, 404);
  // Legacy state was never touched.
  EXPECT_TRUE(session_.version.empty());
}

TEST_F(ProtocolTest, CancelledCallsStopAndGetNoAnswer) {
  Initialize("2025-11-25");
  auto flag = std::make_shared<std::atomic<bool>>(false);
  ASSERT_TRUE(in_flight_.Add(jsonrpc::Id::From(Json(77))->Key(), flag));
  EXPECT_FALSE(in_flight_.Add(jsonrpc::Id::From(Json(77))->Key(), flag));  // already in flight
  Reply reply;
  std::thread t([&] {
    reply = Send({{"jsonrpc", "2.0"},
                  {"id", 77},
                  {"method", "tools/call"},
                  {"params", {{"name", "run_command"}, {"arguments", {{"command", "block"}}}}}},
                 flag.get());
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  Send({{"jsonrpc", "2.0"},
        {"method", "notifications/cancelled"},
        {"params", {{"requestId", 77}, {"reason", "user"}}}});
  t.join();
  EXPECT_TRUE(flag->load());
  EXPECT_FALSE(reply.message);
}

TEST_F(ProtocolTest, ProgressIsReportedWhileACommandRuns) {
  Initialize("2025-11-25");
  auto flag = std::make_shared<std::atomic<bool>>(false);
  std::thread t([&] {
    Send({{"jsonrpc", "2.0"},
          {"id", 8},
          {"method", "tools/call"},
          {"params",
           {{"name", "run_command"},
            {"arguments", {{"command", "block"}, {"timeout", 60}}},
            {"_meta", {{"progressToken", "tok"}}}}}},
         flag.get());
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(2300));
  flag->store(true);
  t.join();
  std::lock_guard lock(notes_mu_);
  ASSERT_GE(notes_.size(), 2u);
  Json p = Json::parse(notes_[0]);
  EXPECT_EQ(p["method"], "notifications/progress");
  EXPECT_EQ(p["params"]["progressToken"], "tok");
  EXPECT_EQ(p["params"]["total"], 60);
  EXPECT_LT(p["params"]["progress"].get<double>(),
            Json::parse(notes_[1])["params"]["progress"].get<double>());
}

TEST(Tools, PathsAreWorkspaceRelative) {
  EXPECT_EQ(*ToolPath("src/a.py"), "src/a.py");
  EXPECT_EQ(*ToolPath("/src/a.py"), "src/a.py");
  EXPECT_EQ(*ToolPath("/workspace/src/a.py"), "src/a.py");
  EXPECT_EQ(*ToolPath("/workspace"), "");
  EXPECT_EQ(*ToolPath("/"), "");
  EXPECT_EQ(*ToolPath(""), "");
  EXPECT_EQ(*ToolPath("./a//b/"), "a/b");
  EXPECT_EQ(*ToolPath("/workspaces/x"), "workspaces/x");
  EXPECT_FALSE(ToolPath("../x").ok());
  EXPECT_FALSE(ToolPath("/workspace/../etc/passwd").ok());
  EXPECT_FALSE(ToolPath(std::string("a\0b", 3)).ok());
}

TEST(Schema, EnforcesTheSupportedKeywords) {
  Json s = Json::parse(R"({"type": "object", "additionalProperties": false, "required": ["a"],
    "properties": {"a": {"type": "integer", "minimum": 1, "maximum": 3},
                   "b": {"type": ["string", "null"], "maxLength": 2},
                   "c": {"type": "array", "items": {"enum": ["x", "y"]}}}})");
  EXPECT_TRUE(ValidateJson(s, Json{{"a", 2}}, "v").ok());
  EXPECT_TRUE(ValidateJson(s, Json{{"a", 2.0}, {"b", nullptr}, {"c", {"x"}}}, "v").ok());
  EXPECT_TRUE(ValidateJson(s, Json{{"a", 1}, {"b", "éé"}}, "v").ok());  // characters, not bytes
  EXPECT_FALSE(ValidateJson(s, Json{{"a", 2.5}}, "v").ok());
  EXPECT_FALSE(ValidateJson(s, Json{{"a", 4}}, "v").ok());
  EXPECT_FALSE(ValidateJson(s, Json::object(), "v").ok());
  EXPECT_FALSE(ValidateJson(s, Json{{"a", 1}, {"z", 1}}, "v").ok());
  EXPECT_FALSE(ValidateJson(s, Json{{"a", 1}, {"b", "abc"}}, "v").ok());
  EXPECT_FALSE(ValidateJson(s, Json{{"a", 1}, {"c", {"z"}}}, "v").ok());
  EXPECT_FALSE(ValidateJson(s, Json{{"a", 1e300}}, "v").ok());
  auto e = ValidateJson(s, Json{{"a", "1"}}, "arguments");
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.error().message(), "arguments.a: must be of type integer");
  EXPECT_EQ(ValidateJson(Json{{"pattern", "x"}}, Json(1), "v").error().code(), ErrorCode::kInternal);
}

// NOLINTEND(bugprone-unchecked-optional-access)
}  // namespace
}  // namespace agentfense::mcp
