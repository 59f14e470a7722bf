#include "mcp/tools.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <future>
#include <mutex>
#include <thread>
#include <vector>

#include "base/base64.h"
#include "base/path.h"
#include "base/utf8.h"
#include "mcp/jsonrpc.h"
#include "mcp/schema.h"

namespace agentfense::mcp {
namespace {

using Json = nlohmann::json;
namespace proto = runtime::proto;

// Bounds of what one call moves. read_file's default covers a 1 MiB file in one call (its
// maximum, 8 MiB, is in its input schema).
constexpr uint64_t kReadDefault = 1 << 20;
constexpr uint64_t kReadChunk = 256 << 10;  // one file operation: pipelined (ReadFile)
constexpr uint64_t kOutputCap = 1 << 20;  // per stream of run_command
constexpr int kListDefaultLimit = 1000;
constexpr auto kProgressEvery = std::chrono::seconds(1);

// ---- results ---------------------------------------------------------------------------------

Json TextBlock(std::string text) { return Json{{"type", "text"}, {"text", std::move(text)}}; }

Json ToolError(const std::string& text) {
  return Json{{"content", Json::array({TextBlock(text)})}, {"isError", true}};
}

// A successful result: the structured value, and its text rendering for clients (and models)
// that read only `content` (the serialized JSON, as the specification recommends), unless the
// tool gives a content block of its own (read_file: the file's bytes, which then travel once).
Json Success(Json structured, const ToolCall& call, Json block = Json()) {
  if (block.is_null()) block = TextBlock(jsonrpc::Dump(structured));
  Json r = {{"content", Json::array({std::move(block)})}, {"isError", false}};
  if (call.structured) r["structuredContent"] = std::move(structured);
  return r;
}

// Numbers arrive as JSON integers or as floats with no fraction (schema.h accepts both).
int64_t Int(const Json& v) {
  return v.is_number_integer() ? v.get<int64_t>() : std::llround(v.get<double>());
}

std::string Rfc3339(int64_t ns) {
  time_t secs = static_cast<time_t>(ns / 1'000'000'000);
  struct tm tm {};
  if (::gmtime_r(&secs, &tm) == nullptr) return "";
  char buf[32];
  if (std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) return "";
  return buf;
}

std::string_view TypeName(proto::FileType t) {
  switch (t) {
    case proto::FileType::kFile: return "file";
    case proto::FileType::kDirectory: return "directory";
    case proto::FileType::kSymlink: return "symlink";
    case proto::FileType::kOther: break;
  }
  return "other";
}

std::string Workspaced(const std::string& rel) {
  return rel.empty() ? "/workspace" : "/workspace/" + rel;
}

// ---- the tools -------------------------------------------------------------------------------

struct Args {
  const Json& j;
  std::string Str(const char* k, std::string d = {}) const {
    return j.contains(k) ? j[k].get<std::string>() : std::move(d);
  }
  int64_t Num(const char* k, int64_t d) const { return j.contains(k) ? Int(j[k]) : d; }
  bool Bool(const char* k, bool d) const { return j.contains(k) ? j[k].get<bool>() : d; }
};

// Emits a progress notification every second while a command runs.
class ProgressTicker {
 public:
  ProgressTicker(const ProgressFn& fn, double total_seconds) {
    if (!fn) return;
    thread_ = std::thread([this, fn, total_seconds] {
      auto start = std::chrono::steady_clock::now();
      std::unique_lock lock(mu_);
      while (!cv_.wait_for(lock, kProgressEvery, [this] { return done_; })) {
        double secs =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        uint64_t bytes = bytes_;
        lock.unlock();
        fn(std::floor(secs), total_seconds,
           fmt::format("running for {:.0f} s, {} bytes of output so far", secs, bytes));
        lock.lock();
      }
    });
  }
  ~ProgressTicker() {
    {
      std::lock_guard lock(mu_);
      done_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  void Count(size_t n) {
    std::lock_guard lock(mu_);
    bytes_ += n;
  }

 private:
  std::mutex mu_;  // guards done_ and bytes_; leaf lock (released while reporting)
  std::condition_variable cv_;
  bool done_ = false;
  uint64_t bytes_ = 0;
  std::thread thread_;
};

Result<Json> RunCommand(const Args& a, const ToolCall& call) {
  CommandRequest req;
  req.command = a.Str("command");
  AF_ASSIGN_OR_RETURN(req.workdir, SandboxWorkdir(a.Str("workdir")));
  double timeout = a.j.contains("timeout") ? a.j["timeout"].get<double>() : 0;
  req.timeout = std::chrono::milliseconds(static_cast<int64_t>(std::ceil(timeout * 1000)));
  req.output_cap = kOutputCap;
  std::string out[2];
  bool truncated = false;
  ProgressTicker ticker(call.progress, timeout);
  auto on_output = [&](proto::Stream stream, std::string_view data) {
    std::string& s = out[stream == proto::Stream::kStderr ? 1 : 0];
    size_t room = kOutputCap - std::min<size_t>(kOutputCap, s.size());
    if (data.size() > room) truncated = true;
    s.append(data.substr(0, room));
    ticker.Count(data.size());
  };
  auto r = call.workspace->Run(req, on_output, call.cancel);
  if (!r.ok()) {
    if (r.error().code() == ErrorCode::kCancelled) return std::move(r).error();
    return ToolError("run_command: " + ToolErrorText(r.error()));
  }
  Json s = {{"stdout", ToValidUtf8(out[0])},
            {"stderr", ToValidUtf8(out[1])},
            {"exit_code", r->exit_code},
            {"timed_out", r->timed_out},
            {"signal", r->signal},
            {"duration_ms", static_cast<double>(r->duration_us) / 1000.0},
            {"truncated", truncated || r->truncated}};
  return Success(std::move(s), call);
}

Result<Json> ReadFile(const Args& a, const ToolCall& call) {
  AF_ASSIGN_OR_RETURN(std::string path, ToolPath(a.Str("path")));
  const uint64_t offset = static_cast<uint64_t>(a.Num("offset", 0));
  const uint64_t limit = static_cast<uint64_t>(a.Num("limit", kReadDefault));
  auto read_at = [&](uint64_t at, uint64_t n) {
    proto::FileOp op;
    op.op = proto::FileOpKind::kRead;
    op.path = path;
    op.offset = at;
    op.limit = n;
    return call.workspace->File(op);
  };
  // The first chunk says how large the file is; the rest are asked for at once, so that the
  // sandbox reads one chunk while the previous one travels (one big read would do the two in
  // turn: read all, then send all).
  auto first = read_at(offset, std::min<uint64_t>(limit, kReadChunk));
  if (!first.ok()) return ToolError("read_file: " + ToolErrorText(first.error()));
  std::string data = std::move(first->data);
  proto::FileResult last = std::move(*first);
  if (!last.eof && data.size() < limit) {
    const uint64_t end = std::min<uint64_t>(offset + limit, std::max(last.stat.size, offset));
    std::vector<std::future<Result<proto::FileResult>>> rest;
    for (uint64_t at = offset + data.size(); at < end; at += kReadChunk) {
      // (Deferred when no thread can be made: libstdc++ falls back instead of throwing.)
      rest.push_back(std::async(std::launch::async | std::launch::deferred, read_at, at,
                                std::min(kReadChunk, end - at)));
    }
    bool short_read = false;
    for (auto& f : rest) {
      auto r = f.get();  // every future is waited for, also after a failure
      if (short_read) continue;
      if (!r.ok()) return ToolError("read_file: " + ToolErrorText(r.error()));
      short_read = r->data.size() < std::min(kReadChunk, end - offset - data.size());
      data += r->data;
      last = std::move(*r);
    }
    // The file grew meanwhile: what lies beyond its first size comes one chunk at a time.
    while (!short_read && !last.eof && data.size() < limit) {
      auto r = read_at(offset + data.size(), std::min<uint64_t>(limit - data.size(), kReadChunk));
      if (!r.ok()) return ToolError("read_file: " + ToolErrorText(r.error()));
      short_read = r->data.empty();
      data += r->data;
      last = std::move(*r);
    }
  }
  bool eof = last.eof && offset + data.size() >= last.stat.size;
  // A limit may cut a multi-byte character: hand back the whole characters only (the next read
  // starts at offset + bytes), rather than turning the whole text into base64.
  if (!eof && !IsValidUtf8(data)) {
    for (size_t cut = 1; cut <= 3 && cut < data.size(); ++cut) {
      if (IsValidUtf8(std::string_view(data).substr(0, data.size() - cut))) {
        data.resize(data.size() - cut);
        break;
      }
    }
  }
  // Text is what a model can read: valid UTF-8 without NUL bytes (a NUL says "binary"). The
  // bytes travel once, as the content block (a text block, or an embedded resource's base64 blob);
  // structuredContent describes them. Duplicating a file in both would double every read.
  const bool text = IsValidUtf8(data) && data.find('\0') == std::string::npos;
  Json s = {{"path", Workspaced(path)},
            {"encoding", text ? "utf-8" : "base64"},
            {"offset", offset},
            {"bytes", data.size()},
            {"size", last.stat.size},
            {"eof", eof}};
  Json block;
  if (text) {
    block = TextBlock(std::move(data));
  } else {
    block = Json{{"type", "resource"},
                 {"resource",
                  {{"uri", "file://" + Workspaced(path)},
                   {"mimeType", "application/octet-stream"},
                   {"blob", Base64Encode(data)}}}};
  }
  return Success(std::move(s), call, std::move(block));
}

Result<Json> WriteFile(const Args& a, const ToolCall& call) {
  AF_ASSIGN_OR_RETURN(std::string path, ToolPath(a.Str("path")));
  if (path.empty()) return ToolError("write_file: EISDIR: /workspace is a directory");
  std::string data = a.Str("content");
  if (a.Str("encoding", "utf-8") == "base64") {
    auto decoded = Base64Decode(data);
    if (!decoded.ok()) return ToolError("write_file: content: " + decoded.error().message());
    data = std::move(*decoded);
  }
  const bool parents = a.Bool("create_dirs", true);
  proto::FileResult last;
  size_t done = 0;
  do {
    proto::FileOp op;
    op.op = proto::FileOpKind::kWrite;
    op.path = path;
    op.offset = done;
    op.data = data.substr(done, proto::kMaxFileChunk);
    if (done == 0) op.flags = proto::kFileWriteTruncate | (parents ? proto::kFileWriteMakeParents : 0);
    auto r = call.workspace->File(op);
    if (!r.ok()) return ToolError("write_file: " + ToolErrorText(r.error()));
    done += op.data.size();
    last = std::move(*r);
  } while (done < data.size());
  Json s = {{"path", Workspaced(path)}, {"bytes_written", data.size()}, {"size", last.stat.size}};
  return Success(std::move(s), call);
}

Result<Json> EditFile(const Args& a, const ToolCall& call) {
  AF_ASSIGN_OR_RETURN(std::string path, ToolPath(a.Str("path")));
  proto::FileOp op;
  op.op = proto::FileOpKind::kEdit;
  op.path = path;
  op.data = a.Str("old_string");
  op.replacement = a.Str("new_string");
  if (op.data.size() + op.replacement.size() > proto::kMaxFileChunk) {
    return ToolError("edit_file: old_string and new_string together exceed 960 KiB");
  }
  if (a.Bool("replace_all", false)) op.flags = proto::kFileEditAll;
  auto r = call.workspace->File(op);
  if (!r.ok()) return ToolError("edit_file: " + ToolErrorText(r.error()));
  Json s = {{"path", Workspaced(path)}, {"replacements", r->count}, {"size", r->stat.size}};
  return Success(std::move(s), call);
}

Result<Json> ListFiles(const Args& a, const ToolCall& call) {
  AF_ASSIGN_OR_RETURN(std::string path, ToolPath(a.Str("path")));
  proto::FileOp op;
  op.op = proto::FileOpKind::kList;
  op.path = path;
  op.depth = static_cast<uint32_t>(a.Num("depth", 1));
  op.limit = static_cast<uint64_t>(a.Num("limit", kListDefaultLimit));
  auto r = call.workspace->File(op);
  if (!r.ok()) return ToolError("list_files: " + ToolErrorText(r.error()));
  Json entries = Json::array();
  for (const auto& e : r->entries) {
    std::string p = path.empty() ? e.path : path + "/" + e.path;
    Json j = {{"path", p}, {"type", TypeName(e.type)}, {"mode", fmt::format("{:04o}", e.mode)},
              {"modified", Rfc3339(e.mtime_ns)}};
    // A directory's size says nothing useful (and the filesystem keeps it meaningless).
    if (e.type != proto::FileType::kDirectory) j["size"] = e.size;
    entries.push_back(std::move(j));
  }
  Json s = {{"path", Workspaced(path)}, {"entries", std::move(entries)}, {"truncated", r->truncated}};
  return Success(std::move(s), call);
}

Json RuleJson(const policy::Rule& r, int index) {
  return Json{{"index", index},
              {"pattern", r.pattern},
              {"type", policy::PatternTypeName(r.type)},
              {"permission", policy::LevelName(r.level)},
              {"priority", r.priority}};
}

Result<Json> ExplainPermission(const Args& a, const ToolCall& call) {
  AF_ASSIGN_OR_RETURN(std::string path, ToolPath(a.Str("path")));
  auto rules = call.workspace->Rules();
  if (!rules.ok()) return ToolError("explain_permission: " + ToolErrorText(rules.error()));
  auto pol = policy::Policy::Compile(*rules);
  if (!pol.ok()) return ToolError("explain_permission: " + ToolErrorText(pol.error()));
  const std::string policy_path = "/" + path;
  policy::Explanation ex = pol->Explain(policy_path);
  // Whether it is a directory, as the sandbox sees it (ancestor visibility applies to
  // directories, SPEC §3.4). A path the sandbox cannot see counts as a file.
  bool is_dir = path.empty();
  if (!is_dir) {
    proto::FileOp op;
    op.op = proto::FileOpKind::kStat;
    op.path = path;
    auto st = call.workspace->File(op);
    is_dir = st.ok() && st->stat.type == proto::FileType::kDirectory;
  }
  const policy::Decision& d = is_dir ? ex.as_directory : ex.as_file;
  const auto& rs = *rules;
  auto rule_at = [&](int i) -> Json {
    if (i < 0 || static_cast<size_t>(i) >= rs.size()) return Json();
    return RuleJson(rs[static_cast<size_t>(i)], i);
  };
  Json matches = Json::array();
  for (const auto& m : ex.matches) {
    Json j = rule_at(m.rule);
    if (j.is_null()) continue;
    j["winner"] = m.winner;
    matches.push_back(std::move(j));
  }
  std::string reason = ex.reason;
  if (reason.empty()) {
    reason = d.rule < 0 ? "no rule matches: the default is none" : fmt::format("rule {} decides", d.rule);
  }
  Json s = {{"path", policy_path},
            {"level", policy::LevelName(d.level)},
            {"is_directory", is_dir},
            {"deciding_rule", rule_at(d.rule)},
            {"via_descendant", d.via_descendant},
            {"hidden_ancestor", d.hidden_ancestor},
            {"matching_rules", std::move(matches)},
            {"reason", reason}};
  return Success(std::move(s), call);
}

Result<Json> Changes(const Args&, const ToolCall& call) {
  auto cs = call.workspace->Changes();
  if (!cs.ok()) return ToolError("changes: " + ToolErrorText(cs.error()));
  Json list = Json::array();
  for (const auto& c : cs->changes) {
    list.push_back(Json{{"path", c.path},
                        {"kind", fs::ChangeKindName(c.kind)},
                        {"size", c.size},
                        {"is_dir", c.is_dir}});
  }
  Json s = {{"changes", std::move(list)},
            {"delta_bytes", cs->delta_bytes},
            {"delta_inodes", cs->delta_inodes}};
  return Success(std::move(s), call);
}

// ---- the catalogue ---------------------------------------------------------------------------

struct ToolDef {
  const char* name;
  const char* title;
  const char* description;
  const char* input_schema;
  const char* output_schema;
  bool read_only;
  Result<Json> (*run)(const Args&, const ToolCall&);
};

struct Tool {
  ToolDef def;
  Json input;   // parsed input_schema
  Json output;  // parsed output_schema
};

// The tools, their schemas parsed once (immutable afterwards; C++ makes the first call's
// initialization thread-safe). A malformed schema is a mistake the unit tests catch.
const std::vector<Tool>& Catalogue() {
  static const ToolDef defs[] = {
      {"run_command", "Run a shell command",
       "Runs a command with /bin/sh -c in the sandbox, in /workspace (or workdir), and returns "
       "its stdout, stderr and exit code. Every file access is decided by the sandbox's "
       "permission policy. Output beyond 1 MiB per stream is dropped (truncated: true). A command "
       "that outlives its timeout is killed with its whole process tree (timed_out: true).",
       R"js({"type": "object", "additionalProperties": false, "required": ["command"],
           "properties": {
             "command": {"type": "string", "minLength": 1, "maxLength": 1048576,
                         "description": "The shell command line"},
             "timeout": {"type": "number", "minimum": 0.001, "maximum": 86400,
                         "description": "Seconds before the command is killed (default: the sandbox's, 30 s unless configured)"},
             "workdir": {"type": "string", "maxLength": 4096,
                         "description": "Directory to run in: relative to /workspace, or absolute in the sandbox"}}})js",
       R"js({"type": "object", "required": ["stdout", "stderr", "exit_code", "timed_out", "signal", "duration_ms", "truncated"],
           "properties": {
             "stdout": {"type": "string"}, "stderr": {"type": "string"},
             "exit_code": {"type": "integer", "description": "Exit status, or 128+N when killed by signal N"},
             "timed_out": {"type": "boolean"}, "signal": {"type": "integer"},
             "duration_ms": {"type": "number"}, "truncated": {"type": "boolean"}}})js",
       false, RunCommand},
      {"read_file", "Read a file",
       "Reads a file of the workspace as the sandbox sees it: a file the policy hides does not "
       "exist, a `view` file can be listed but not read. The content is the result's text block "
       "(or, for binary content, an embedded resource with a base64 blob); structuredContent "
       "describes it. Use offset and limit (bytes) for large files.",
       R"js({"type": "object", "additionalProperties": false, "required": ["path"],
           "properties": {
             "path": {"type": "string", "minLength": 1, "maxLength": 4096, "description": "A workspace path"},
             "offset": {"type": "integer", "minimum": 0, "description": "Byte offset to start at (default 0)"},
             "limit": {"type": "integer", "minimum": 1, "maximum": 8388608, "description": "Bytes to read at most (default 1048576)"}}})js",
       R"js({"type": "object", "required": ["path", "encoding", "offset", "bytes", "size", "eof"],
           "properties": {
             "path": {"type": "string"},
             "encoding": {"type": "string", "enum": ["utf-8", "base64"], "description": "utf-8: the content is the text block; base64: an embedded resource's blob"},
             "offset": {"type": "integer"}, "bytes": {"type": "integer"},
             "size": {"type": "integer", "description": "The file's size"},
             "eof": {"type": "boolean", "description": "Nothing lies beyond what was returned"}}})js",
       true, ReadFile},
      {"write_file", "Write a file",
       "Creates or replaces a file of the workspace with the given content, where the policy "
       "allows writing it. Missing parent directories are created unless create_dirs is false. "
       "Changes land in the sandbox's copy-on-write delta (see the changes tool).",
       R"js({"type": "object", "additionalProperties": false, "required": ["path", "content"],
           "properties": {
             "path": {"type": "string", "minLength": 1, "maxLength": 4096, "description": "A workspace path"},
             "content": {"type": "string"},
             "encoding": {"type": "string", "enum": ["utf-8", "base64"], "description": "How content is written (default utf-8)"},
             "create_dirs": {"type": "boolean", "description": "Create missing parent directories (default true)"}}})js",
       R"js({"type": "object", "required": ["path", "bytes_written", "size"],
           "properties": {"path": {"type": "string"}, "bytes_written": {"type": "integer"},
                          "size": {"type": "integer"}}})js",
       false, WriteFile},
      {"edit_file", "Edit a file",
       "Replaces old_string by new_string in a file of the workspace. old_string must occur "
       "exactly once (include surrounding lines to make it unique), or set replace_all. Fails "
       "when it does not occur, or occurs several times without replace_all.",
       R"js({"type": "object", "additionalProperties": false, "required": ["path", "old_string", "new_string"],
           "properties": {
             "path": {"type": "string", "minLength": 1, "maxLength": 4096, "description": "A workspace path"},
             "old_string": {"type": "string", "minLength": 1, "description": "The exact text to replace"},
             "new_string": {"type": "string", "description": "The text to put in its place"},
             "replace_all": {"type": "boolean", "description": "Replace every occurrence (default false)"}}})js",
       R"js({"type": "object", "required": ["path", "replacements", "size"],
           "properties": {"path": {"type": "string"}, "replacements": {"type": "integer"},
                          "size": {"type": "integer"}}})js",
       false, EditFile},
      {"list_files", "List files",
       "Lists a directory of the workspace as the sandbox sees it (hidden paths are absent), "
       "depth levels deep. Symlinks are listed, never followed.",
       R"js({"type": "object", "additionalProperties": false,
           "properties": {
             "path": {"type": "string", "maxLength": 4096, "description": "A workspace directory (default: the workspace root)"},
             "depth": {"type": "integer", "minimum": 1, "maximum": 16, "description": "Levels to descend (default 1: the directory's own entries)"},
             "limit": {"type": "integer", "minimum": 1, "maximum": 10000, "description": "Entries to return at most (default 1000)"}}})js",
       R"js({"type": "object", "required": ["path", "entries", "truncated"],
           "properties": {
             "path": {"type": "string"},
             "entries": {"type": "array", "items": {"type": "object", "required": ["path", "type", "mode", "modified"],
               "properties": {"path": {"type": "string"},
                              "type": {"type": "string", "enum": ["file", "directory", "symlink", "other"]},
                              "size": {"type": "integer"}, "mode": {"type": "string"},
                              "modified": {"type": "string"}}}},
             "truncated": {"type": "boolean"}}})js",
       true, ListFiles},
      {"explain_permission", "Explain a permission",
       "Says what the sandbox's policy grants on a path (none, view, read, write) and which rule "
       "decided it, and why.",
       R"js({"type": "object", "additionalProperties": false, "required": ["path"],
           "properties": {"path": {"type": "string", "minLength": 1, "maxLength": 4096, "description": "A workspace path"}}})js",
       R"js({"type": "object", "required": ["path", "level", "is_directory", "deciding_rule", "via_descendant", "hidden_ancestor", "matching_rules", "reason"],
           "properties": {
             "path": {"type": "string"},
             "level": {"type": "string", "enum": ["none", "view", "read", "write"]},
             "is_directory": {"type": "boolean"},
             "deciding_rule": {"type": ["object", "null"]},
             "via_descendant": {"type": "boolean"}, "hidden_ancestor": {"type": "boolean"},
             "matching_rules": {"type": "array", "items": {"type": "object"}},
             "reason": {"type": "string"}}})js",
       true, ExplainPermission},
      {"changes", "Pending changes",
       "Lists the changes the sandbox made that are still pending in its copy-on-write delta "
       "(added, modified, deleted), with the delta's size.",
       R"js({"type": "object", "additionalProperties": false, "properties": {}})js",
       R"js({"type": "object", "required": ["changes", "delta_bytes", "delta_inodes"],
           "properties": {
             "changes": {"type": "array", "items": {"type": "object", "required": ["path", "kind", "size", "is_dir"],
               "properties": {"path": {"type": "string"},
                              "kind": {"type": "string", "enum": ["added", "modified", "deleted"]},
                              "size": {"type": "integer"}, "is_dir": {"type": "boolean"}}}},
             "delta_bytes": {"type": "integer"}, "delta_inodes": {"type": "integer"}}})js",
       true, Changes},
  };
  static const std::vector<Tool> tools = [] {
    std::vector<Tool> out;
    for (const ToolDef& d : defs) {
      out.push_back(Tool{d, Json::parse(d.input_schema, nullptr, /*allow_exceptions=*/false),
                         Json::parse(d.output_schema, nullptr, /*allow_exceptions=*/false)});
    }
    return out;
  }();
  return tools;
}

}  // namespace

Result<std::string> ToolPath(std::string_view path) {
  if (path == "/workspace" || path.rfind("/workspace/", 0) == 0) path.remove_prefix(10);
  auto normalized = NormalizeWorkspacePath(path);
  if (!normalized.ok()) {
    return Error(ErrorCode::kInvalidArgument, "path: " + normalized.error().message());
  }
  return *normalized == "/" ? std::string() : normalized->substr(1);
}

std::string ToolErrorText(const Error& error) {
  std::string text = error.ToString();
  if (text.rfind("agent: ", 0) == 0) text.erase(0, 7);
  if (error.sys_errno() != 0) {
    const char* name = ::strerrorname_np(error.sys_errno());
    if (name != nullptr) text = std::string(name) + ": " + text;
  }
  return text;
}

Json ListTools(bool with_output_schema) {
  Json list = Json::array();
  for (const Tool& t : Catalogue()) {
    Json j = {{"name", t.def.name},
              {"title", t.def.title},
              {"description", t.def.description},
              {"inputSchema", t.input},
              {"annotations",
               {{"title", t.def.title},
                {"readOnlyHint", t.def.read_only},
                {"destructiveHint", !t.def.read_only},
                {"idempotentHint", t.def.read_only},
                {"openWorldHint", false}}}};
    if (with_output_schema) j["outputSchema"] = t.output;
    list.push_back(std::move(j));
  }
  return list;
}

Result<Json> CallTool(std::string_view name, const Json& arguments, const ToolCall& call) {
  for (const Tool& t : Catalogue()) {
    if (name != t.def.name) continue;
    const Json args = arguments.is_null() ? Json::object() : arguments;
    // Bad arguments are a tool error (the model can read it and retry), not a protocol error.
    if (Status valid = ValidateJson(t.input, args, "arguments"); !valid.ok()) {
      return ToolError(std::string(t.def.name) + ": " + valid.error().message());
    }
    auto result = t.def.run(Args{args}, call);
    if (!result.ok() && result.error().code() != ErrorCode::kCancelled) {
      return ToolError(std::string(t.def.name) + ": " + ToolErrorText(result.error()));
    }
    return result;
  }
  return Error(ErrorCode::kNotFound, "unknown tool: " + std::string(name.substr(0, 128)));
}

}  // namespace agentfense::mcp
