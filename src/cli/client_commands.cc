#include "cli/client_commands.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <google/protobuf/util/time_util.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "base/units.h"
#include "cli/client_conn.h"
#include "cli/exit_codes.h"
#include "cli/rules_input.h"

namespace agentfense::cli {
namespace {

namespace v1 = ::sandbox::v1;
namespace stdfs = std::filesystem;
using google::protobuf::util::TimeUtil;

constexpr char kClientFooter[] =
    "Server: --endpoint HOST:PORT or $AGENTFENSE_ENDPOINT (default 127.0.0.1:9000); token: "
    "--token\n"
    "or $AGENTFENSE_TOKEN. Exit status: 0 ok; 1 failure; 2 invalid input; 3 not found; 4 server\n"
    "unreachable or timed out; 5 unauthenticated or denied; 6 wrong state (not running, exists,\n"
    "quota). `exec` commands exit with the command's status instead. Errors go to stderr.";

// State of one invocation shared by all client leaves (only the parsed leaf's options are set).
struct Ctx {
  ClientFlags flags;
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
  const std::vector<std::string>* trailing = nullptr;
  bool dashdash = false;
};

void AddClientFlags(CLI::App* app, Ctx& c) {
  app->add_option("--endpoint", c.flags.endpoint, "Server gRPC address (host:port)");
  app->add_option("--token", c.flags.token, "Bearer token");
  app->add_flag("--json", c.flags.json, "Print JSON (the API's JSON form)");
  app->footer(kClientFooter);
}

int Usage(Ctx& c, const std::string& message) {
  *c.err << "agentfense: error: " << message << "\n";
  return kExitUsage;
}

std::string Ts(const google::protobuf::Timestamp& t) {
  if (t.seconds() == 0 && t.nanos() == 0) return "-";
  return TimeUtil::ToString(t);
}

std::string StatusName(v1::SandboxStatus s) {
  std::string n = v1::SandboxStatus_Name(s);
  return n.rfind("SANDBOX_STATUS_", 0) == 0 ? fmt::format("{}", n.substr(15)) : n;
}

std::string LevelOf(v1::Permission p) {
  switch (p) {
    case v1::PERMISSION_NONE:
      return "none";
    case v1::PERMISSION_VIEW:
      return "view";
    case v1::PERMISSION_READ:
      return "read";
    case v1::PERMISSION_WRITE:
      return "write";
    default:
      return "?";
  }
}

v1::PermissionRule ToProto(const policy::Rule& r) {
  v1::PermissionRule p;
  p.set_pattern(r.pattern);
  p.set_type(r.type == policy::PatternType::kDirectory ? v1::PATTERN_TYPE_DIRECTORY
             : r.type == policy::PatternType::kFile    ? v1::PATTERN_TYPE_FILE
                                                       : v1::PATTERN_TYPE_GLOB);
  p.set_permission(r.level == policy::Level::kWrite  ? v1::PERMISSION_WRITE
                   : r.level == policy::Level::kRead ? v1::PERMISSION_READ
                   : r.level == policy::Level::kView ? v1::PERMISSION_VIEW
                                                     : v1::PERMISSION_NONE);
  p.set_priority(r.priority);
  return p;
}

void PrintSandbox(Ctx& c, const v1::Sandbox& s) {
  if (c.flags.json) {
    *c.out << ToJson(s) << "\n";
    return;
  }
  std::ostream& o = *c.out;
  o << "id:        " << s.id() << "\n"
    << "status:    " << StatusName(s.status())
    << (s.status_message().empty() ? "" : " (" + s.status_message() + ")") << "\n"
    << "codebase:  " << s.codebase_id() << "\n"
    << "runtime:   " << (s.runtime() == v1::RUNTIME_TYPE_DOCKER ? "docker" : "bwrap")
    << (s.image().empty() ? "" : " " + s.image()) << "\n"
    << "network:   " << (s.network() ? "yes" : "no") << "\n"
    << "created:   " << Ts(s.created_at()) << "\n";
  o << "rules:\n";
  for (const auto& r : s.permissions()) {
    o << "  " << r.pattern() << "=" << LevelOf(r.permission()) << "@" << r.priority() << "\n";
  }
}

// Joins COMMAND [ARG...] as ssh does: the server runs the text with /bin/sh -c.
Result<std::string> CommandText(Ctx& c) {
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

// Streams an exec's output to our stdout/stderr; returns the command's exit status.
template <typename Reader>
int StreamExec(Ctx& c, Client& client, Reader& reader, grpc::ClientContext& /*ctx*/) {
  v1::ExecOutput msg;
  int code = -1;
  while (reader->Read(&msg)) {
    if (!msg.data().empty()) {
      WriteAll(msg.type() == v1::ExecOutput::OUTPUT_TYPE_STDERR ? 2 : 1, msg.data());
    }
    if (msg.has_exit_code()) code = msg.exit_code();
  }
  grpc::Status st = reader->Finish();
  if (!st.ok()) return GrpcFail(st, "exec", client.endpoint(), *c.err);
  if (code < 0) {
    *c.err << "agentfense: error: exec: the server ended the stream without an exit code\n";
    return kExitFailure;
  }
  if (c.flags.json) *c.out << nlohmann::json{{"exit_code", code}}.dump() << "\n";
  return code;
}

// ---- upload --------------------------------------------------------------------------------

struct UploadItem {
  std::string local;
  std::string remote;
  uint64_t size = 0;
};

class Progress {
 public:
  Progress(uint64_t total, size_t files, bool enabled)
      : total_(total), files_(files), enabled_(enabled) {}
  void Add(uint64_t bytes) {
    done_ += bytes;
    Draw();
  }
  void FileDone() {
    ++files_done_;
    Draw();
  }
  void End() {
    if (enabled_) WriteAll(2, "\n");
  }

 private:
  void Draw() {
    if (!enabled_) return;
    constexpr int kWidth = 30;
    double frac = total_ == 0 ? 1.0 : static_cast<double>(done_) / static_cast<double>(total_);
    int filled = static_cast<int>(frac * kWidth);
    std::string bar(static_cast<size_t>(filled), '#');
    bar.resize(kWidth, ' ');
    WriteAll(2, fmt::format("\r[{}] {:3.0f}% {:.1f}/{:.1f} MiB  {}/{} files", bar, frac * 100,
                            static_cast<double>(done_) / 1048576.0,
                            static_cast<double>(total_) / 1048576.0, files_done_, files_));
  }
  uint64_t total_, done_ = 0;
  size_t files_, files_done_ = 0;
  bool enabled_;
};

Result<std::vector<UploadItem>> PlanUpload(const std::vector<std::string>& locals,
                                           const std::string& to, std::ostream& err) {
  std::vector<UploadItem> items;
  std::string prefix = to;
  while (!prefix.empty() && prefix.front() == '/') prefix.erase(0, 1);
  if (!prefix.empty() && prefix.back() != '/') prefix += '/';
  for (const auto& local : locals) {
    std::error_code ec;
    auto st = stdfs::symlink_status(local, ec);
    if (ec || !stdfs::exists(st)) {
      return Error(ErrorCode::kInvalidArgument, local + ": no such file or directory");
    }
    if (stdfs::is_regular_file(st)) {
      items.push_back({local, prefix + stdfs::path(local).filename().string(),
                       static_cast<uint64_t>(stdfs::file_size(local, ec))});
    } else if (stdfs::is_directory(st)) {
      // The directory's contents land under --to (like `rsync dir/`).
      for (auto it = stdfs::recursive_directory_iterator(local, ec);
           !ec && it != stdfs::recursive_directory_iterator(); it.increment(ec)) {
        auto s = it->symlink_status(ec);
        if (stdfs::is_symlink(s)) {
          err << "agentfense: warning: skipping symlink " << it->path().string() << "\n";
          continue;
        }
        if (!stdfs::is_regular_file(s)) continue;
        items.push_back({it->path().string(),
                         prefix + stdfs::relative(it->path(), local, ec).generic_string(),
                         static_cast<uint64_t>(it->file_size(ec))});
      }
      if (ec) return Error(ErrorCode::kInvalidArgument, local + ": " + ec.message());
    } else {
      return Error(ErrorCode::kInvalidArgument, local + " is not a regular file or directory");
    }
  }
  return items;
}

}  // namespace

void AddClientCommands(CLI::App& app, CommandSet& commands,
                       const std::vector<std::string>& trailing, bool dashdash, std::ostream& out,
                       std::ostream& err) {
  auto c = std::make_shared<Ctx>();
  c->out = &out;
  c->err = &err;
  c->trailing = &trailing;
  c->dashdash = dashdash;
  // Also accepted before the command: `agentfense --endpoint H:P sandbox ls`.
  app.add_option("--endpoint", c->flags.endpoint, "Server gRPC address for client commands");
  app.add_option("--token", c->flags.token, "Bearer token for client commands");
  auto leaf = [&commands, c](CLI::App* parent, const std::string& name, const std::string& desc) {
    CLI::App* sub = commands.Sub(parent, name, desc, kClientFooter);
    AddClientFlags(sub, *c);
    return sub;
  };
  auto fail = [c](const Error& e) {
    *c->err << "agentfense: error: " << e.ToString() << "\n";
    return ExitCodeFor(e);
  };

  // ---------------------------------------------------------------------------- codebase ----
  CLI::App* codebase =
      commands.Sub(&app, "codebase", "Codebases on a server (client mode)", kClientFooter);
  codebase->require_subcommand(1);
  {
    auto name = std::make_shared<std::string>();
    auto owner = std::make_shared<std::string>();
    CLI::App* create = leaf(codebase, "create", "Create a codebase; prints its id");
    create->add_option("NAME", *name, "Codebase name")->required();
    create->add_option("--owner", *owner, "Owner id (default: $USER, else \"cli\")");
    commands.On(create, [c, name, owner] {
      Client client(c->flags);
      v1::CreateCodebaseRequest req;
      req.set_name(*name);
      const char* user = std::getenv("USER");  // NOLINT(concurrency-mt-unsafe): no setenv
      req.set_owner_id(!owner->empty() ? *owner : user != nullptr && *user ? user : "cli");
      v1::Codebase cb;
      auto st = client.codebases().CreateCodebase(client.Context().get(), req, &cb);
      if (!st.ok()) return GrpcFail(st, "codebase create", client.endpoint(), *c->err);
      *c->out << (c->flags.json ? ToJson(cb) : cb.id()) << "\n";
      return kExitOk;
    });

    auto lowner = std::make_shared<std::string>();
    CLI::App* ls = leaf(codebase, "ls", "List codebases");
    ls->add_option("--owner", *lowner, "Only this owner's codebases");
    commands.On(ls, [c, lowner] {
      Client client(c->flags);
      v1::ListCodebasesResponse all;
      v1::ListCodebasesRequest req;
      req.set_owner_id(*lowner);
      do {
        v1::ListCodebasesResponse page;
        auto st = client.codebases().ListCodebases(client.Context().get(), req, &page);
        if (!st.ok()) return GrpcFail(st, "codebase ls", client.endpoint(), *c->err);
        for (auto& cb : *page.mutable_codebases()) *all.add_codebases() = std::move(cb);
        req.set_page_token(page.next_page_token());
      } while (!req.page_token().empty());
      if (c->flags.json) {
        *c->out << ToJson(all) << "\n";
        return kExitOk;
      }
      *c->out << fmt::format("{:<24} {:<24} {:>8} {:>12}\n", "ID", "NAME", "FILES", "BYTES");
      for (const auto& cb : all.codebases()) {
        *c->out << fmt::format("{:<24} {:<24} {:>8} {:>12}\n", cb.id(), cb.name(), cb.file_count(),
                               cb.size());
      }
      return kExitOk;
    });

    auto fid = std::make_shared<std::string>();
    auto fpath = std::make_shared<std::string>();
    auto recursive = std::make_shared<bool>(false);
    CLI::App* files = leaf(codebase, "files", "List the files of a codebase");
    files->add_option("CODEBASE", *fid, "Codebase id")->required();
    files->add_option("PATH", *fpath, "Directory in the codebase (default: root)");
    files->add_flag("-r,--recursive", *recursive, "Recurse into directories");
    commands.On(files, [c, fid, fpath, recursive] {
      Client client(c->flags);
      v1::ListFilesRequest req;
      req.set_codebase_id(*fid);
      req.set_path(*fpath);
      req.set_recursive(*recursive);
      v1::ListFilesResponse resp;
      auto st = client.codebases().ListFiles(client.Context().get(), req, &resp);
      if (!st.ok()) return GrpcFail(st, "codebase files", client.endpoint(), *c->err);
      if (c->flags.json) {
        *c->out << ToJson(resp) << "\n";
        return kExitOk;
      }
      for (const auto& f : resp.files()) {
        *c->out << fmt::format("{:>12} {}{}\n", f.is_dir() ? "-" : std::to_string(f.size()),
                               f.path(), f.is_dir() ? "/" : "");
      }
      return kExitOk;
    });

    auto uid = std::make_shared<std::string>();
    auto locals = std::make_shared<std::vector<std::string>>();
    auto to = std::make_shared<std::string>();
    auto no_progress = std::make_shared<bool>(false);
    CLI::App* upload = leaf(codebase, "upload",
                            "Upload files or directory trees (a directory's contents land under "
                            "--to); a progress bar shows on a terminal");
    upload->add_option("CODEBASE", *uid, "Codebase id")->required();
    upload->add_option("LOCAL", *locals, "Files or directories")->required();
    upload->add_option("--to", *to, "Destination directory in the codebase (default: root)");
    upload->add_flag("--no-progress", *no_progress, "No progress bar");
    commands.On(upload, [c, uid, locals, to, no_progress, fail] {
      auto plan = PlanUpload(*locals, *to, *c->err);
      if (!plan.ok()) return fail(plan.error());
      uint64_t total = 0;
      for (const auto& it : *plan) total += it.size;
      Progress progress(total, plan->size(), !c->flags.json && !*no_progress && ::isatty(2) == 1);
      Client client(c->flags);
      nlohmann::ordered_json results = nlohmann::ordered_json::array();
      for (const auto& item : *plan) {
        std::ifstream in(item.local, std::ios::binary);
        if (!in) {
          progress.End();
          return fail(Error(ErrorCode::kInvalidArgument, "cannot read " + item.local));
        }
        auto ctx = client.Context(3600);
        v1::UploadResult result;
        auto writer = client.codebases().UploadFiles(ctx.get(), &result);
        v1::UploadChunk meta;
        meta.mutable_metadata()->set_codebase_id(*uid);
        meta.mutable_metadata()->set_file_path(item.remote);
        meta.mutable_metadata()->set_total_size(static_cast<int64_t>(item.size));
        bool ok = writer->Write(meta);
        std::string buf(256 * 1024, '\0');
        while (ok && in) {
          in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
          std::streamsize n = in.gcount();
          if (n <= 0) break;
          v1::UploadChunk chunk;
          chunk.set_data(buf.data(), static_cast<size_t>(n));
          ok = writer->Write(chunk);
          progress.Add(static_cast<uint64_t>(n));
        }
        writer->WritesDone();
        auto st = writer->Finish();
        if (!st.ok()) {
          progress.End();
          return GrpcFail(st, "upload " + item.remote, client.endpoint(), *c->err);
        }
        progress.FileDone();
        results.push_back({{"localPath", item.local},
                           {"filePath", result.file_path()},
                           {"size", result.size()},
                           {"checksum", result.checksum()}});
      }
      progress.End();
      if (c->flags.json) {
        *c->out << results.dump() << "\n";
      } else {
        *c->out << "uploaded " << plan->size() << " file(s), " << total << " bytes to " << *uid
                << "\n";
      }
      return kExitOk;
    });

    auto did = std::make_shared<std::string>();
    auto dfile = std::make_shared<std::string>();
    auto dout = std::make_shared<std::string>();
    CLI::App* download = leaf(codebase, "download", "Download one file (-o - for stdout)");
    download->add_option("CODEBASE", *did, "Codebase id")->required();
    download->add_option("FILE", *dfile, "File path in the codebase")->required();
    download->add_option("-o,--output", *dout, "Local file (default: the file's name here)");
    commands.On(download, [c, did, dfile, dout, fail] {
      std::string target = dout->empty() ? stdfs::path(*dfile).filename().string() : *dout;
      if (target.empty()) return fail(Error(ErrorCode::kInvalidArgument, "no output file name"));
      Client client(c->flags);
      v1::DownloadFileRequest req;
      req.set_codebase_id(*did);
      req.set_file_path(*dfile);
      auto ctx = client.Context(3600);
      auto reader = client.codebases().DownloadFile(ctx.get(), req);
      // Written beside the target, renamed at the end: a failed download leaves no partial file.
      std::string tmp = target == "-" ? "" : target + ".agentfense-partial";
      int fd = 1;
      if (!tmp.empty()) {
        fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0) return fail(Error::FromErrno(errno, "open " + tmp));
      }
      v1::FileChunk chunk;
      uint64_t bytes = 0;
      while (reader->Read(&chunk)) {
        WriteAll(fd, chunk.data());
        bytes += chunk.data().size();
      }
      auto st = reader->Finish();
      if (fd != 1) ::close(fd);
      if (!st.ok()) {
        if (!tmp.empty()) ::unlink(tmp.c_str());
        return GrpcFail(st, "download " + *dfile, client.endpoint(), *c->err);
      }
      if (!tmp.empty() && ::rename(tmp.c_str(), target.c_str()) != 0) {
        return fail(Error::FromErrno(errno, "rename to " + target));
      }
      if (c->flags.json && target != "-") {
        *c->out << nlohmann::json{{"path", target}, {"size", bytes}}.dump() << "\n";
      } else if (target != "-") {
        *c->err << "downloaded " << *dfile << " (" << bytes << " bytes) to " << target << "\n";
      }
      return kExitOk;
    });

    auto rid = std::make_shared<std::string>();
    auto rfiles = std::make_shared<std::vector<std::string>>();
    CLI::App* rm = leaf(codebase, "rm", "Delete a codebase, or only the FILEs given");
    rm->add_option("CODEBASE", *rid, "Codebase id")->required();
    rm->add_option("FILE", *rfiles, "Files to delete (none: the whole codebase)");
    commands.On(rm, [c, rid, rfiles] {
      Client client(c->flags);
      v1::Empty empty;
      if (rfiles->empty()) {
        v1::DeleteCodebaseRequest req;
        req.set_codebase_id(*rid);
        auto st = client.codebases().DeleteCodebase(client.Context().get(), req, &empty);
        if (!st.ok()) return GrpcFail(st, "codebase rm", client.endpoint(), *c->err);
      }
      for (const auto& f : *rfiles) {
        v1::DeleteFileRequest req;
        req.set_codebase_id(*rid);
        req.set_file_path(f);
        auto st = client.codebases().DeleteFile(client.Context().get(), req, &empty);
        if (!st.ok()) return GrpcFail(st, "rm " + f, client.endpoint(), *c->err);
      }
      if (c->flags.json) *c->out << "{}\n";
      return kExitOk;
    });
  }

  // ----------------------------------------------------------------------------- sandbox ----
  CLI::App* sandbox =
      commands.Sub(&app, "sandbox", "Sandboxes on a server (client mode)", kClientFooter);
  sandbox->require_subcommand(1);
  {
    struct CreateArgs {
      std::string codebase, preset, rules_file, runtime, image, memory, expires, sync_mode;
      std::vector<std::string> rules, labels, env;
      double cpus = 0;
      int64_t pids = 0;
      bool network = false, start = false;
    };
    auto a = std::make_shared<CreateArgs>();
    CLI::App* create = leaf(sandbox, "create", "Create a sandbox over a codebase; prints its id");
    create->add_option("CODEBASE", a->codebase, "Codebase id")->required();
    auto* preset = create->add_option("--preset", a->preset, "Start from a preset");
    create->add_option("--rule", a->rules, "Add a rule PATTERN=LEVEL[@PRIORITY] (repeatable)")
        ->allow_extra_args(false);
    auto* rules_file = create->add_option("--rules-file", a->rules_file, "Add the rules of FILE");
    create->add_option("--runtime", a->runtime, "bwrap or docker (default: the server's)");
    create->add_option("--image", a->image, "Container image (docker)");
    create->add_option("--memory", a->memory, "Memory limit, e.g. 512M");
    create->add_option("--cpus", a->cpus, "CPU limit in CPUs");
    create->add_option("--pids", a->pids, "Maximum number of processes");
    create->add_flag("--network", a->network, "Network access");
    create->add_option("--expires", a->expires, "Destroy after DUR (e.g. 1h)");
    create->add_option("--label", a->labels, "KEY=VALUE label (repeatable)")
        ->allow_extra_args(false);
    create->add_option("--env", a->env, "NAME=VALUE for every exec (repeatable)")
        ->allow_extra_args(false);
    create->add_option("--sync-mode", a->sync_mode, "on-exec, on-stop, manual or never");
    create->add_flag("--start", a->start, "Start it right away");
    commands.On(create, [c, a, preset, rules_file, fail] {
      v1::CreateSandboxRequest req;
      req.set_codebase_id(a->codebase);
      RuleSources sources;
      if (preset->count() > 0) sources.preset = a->preset;
      if (rules_file->count() > 0) sources.rules_file = a->rules_file;
      sources.rule_specs = a->rules;
      if (sources.preset || sources.rules_file || !sources.rule_specs.empty()) {
        auto rules = CollectRules(sources);
        if (!rules.ok()) return fail(rules.error());
        for (const auto& r : *rules) *req.add_permissions() = ToProto(r.rule);
      }
      if (a->runtime == "bwrap")
        req.set_runtime(v1::RUNTIME_TYPE_BWRAP);
      else if (a->runtime == "docker")
        req.set_runtime(v1::RUNTIME_TYPE_DOCKER);
      else if (!a->runtime.empty())
        return Usage(*c, "--runtime " + a->runtime + ": bwrap or docker");
      req.set_image(a->image);
      if (!a->memory.empty()) {
        auto size = ParseSize(a->memory);
        if (!size.ok()) return Usage(*c, "--memory " + a->memory + ": " + size.error().message());
        req.mutable_resources()->set_memory_bytes(static_cast<int64_t>(*size));
      }
      if (a->cpus < 0 || a->pids < 0) return Usage(*c, "--cpus and --pids must be positive");
      req.mutable_resources()->set_cpu_quota(static_cast<int64_t>(a->cpus * 100000));
      req.mutable_resources()->set_pids_limit(a->pids);
      req.set_network(a->network);
      if (!a->expires.empty()) {
        auto d = ToDuration(a->expires, "--expires");
        if (!d.ok()) return fail(d.error());
        *req.mutable_expires_in() = *d;
      }
      auto labels = KeyValues(a->labels, "--label");
      if (!labels.ok()) return fail(labels.error());
      for (auto& [k, v] : *labels) (*req.mutable_labels())[k] = v;
      auto env = KeyValues(a->env, "--env");
      if (!env.ok()) return fail(env.error());
      for (auto& [k, v] : *env) (*req.mutable_env())[k] = v;
      static const std::map<std::string, v1::SyncMode> kModes = {{"on-exec", v1::SYNC_MODE_ON_EXEC},
                                                                 {"on-stop", v1::SYNC_MODE_ON_STOP},
                                                                 {"manual", v1::SYNC_MODE_MANUAL},
                                                                 {"never", v1::SYNC_MODE_NEVER}};
      if (!a->sync_mode.empty()) {
        auto it = kModes.find(a->sync_mode);
        if (it == kModes.end()) {
          return Usage(*c, "--sync-mode " + a->sync_mode + ": on-exec, on-stop, manual or never");
        }
        req.set_sync_mode(it->second);
      }
      Client client(c->flags);
      v1::Sandbox sb;
      auto st = client.sandboxes().CreateSandbox(client.Context().get(), req, &sb);
      if (!st.ok()) return GrpcFail(st, "sandbox create", client.endpoint(), *c->err);
      if (a->start) {
        v1::StartSandboxRequest sreq;
        sreq.set_sandbox_id(sb.id());
        st = client.sandboxes().StartSandbox(client.Context(120).get(), sreq, &sb);
        if (!st.ok()) return GrpcFail(st, "sandbox start " + sb.id(), client.endpoint(), *c->err);
      }
      *c->out << (c->flags.json ? ToJson(sb) : sb.id()) << "\n";
      return kExitOk;
    });

    // start / stop / get / rm: one id, one RPC.
    auto simple = [&leaf, &commands, c](CLI::App* parent, const std::string& name,
                                        const std::string& desc, auto call) {
      auto id = std::make_shared<std::string>();
      CLI::App* sub = leaf(parent, name, desc);
      sub->add_option("SANDBOX", *id, "Sandbox id")->required();
      commands.On(sub, [c, id, call, name] {
        Client client(c->flags);
        return call(*c, client, *id, name);
      });
    };
    auto lifecycle = [](auto rpc) {
      return [rpc](Ctx& cx, Client& client, const std::string& id, const std::string& name) {
        typename decltype(rpc)::Request req;
        req.set_sandbox_id(id);
        v1::Sandbox sb;
        auto st = (client.sandboxes().*(rpc.method))(client.Context(120).get(), req, &sb);
        if (!st.ok()) return GrpcFail(st, "sandbox " + name + " " + id, client.endpoint(), *cx.err);
        if (cx.flags.json) {
          *cx.out << ToJson(sb) << "\n";
        } else if (name == "get") {
          PrintSandbox(cx, sb);
        } else {
          *cx.out << sb.id() << " " << StatusName(sb.status()) << "\n";
        }
        return kExitOk;
      };
    };
    struct StartRpc {
      using Request = v1::StartSandboxRequest;
      grpc::Status (v1::SandboxService::Stub::*method)(grpc::ClientContext*, const Request&,
                                                       v1::Sandbox*) =
          &v1::SandboxService::Stub::StartSandbox;
    };
    struct StopRpc {
      using Request = v1::StopSandboxRequest;
      grpc::Status (v1::SandboxService::Stub::*method)(grpc::ClientContext*, const Request&,
                                                       v1::Sandbox*) =
          &v1::SandboxService::Stub::StopSandbox;
    };
    struct GetRpc {
      using Request = v1::GetSandboxRequest;
      grpc::Status (v1::SandboxService::Stub::*method)(grpc::ClientContext*, const Request&,
                                                       v1::Sandbox*) =
          &v1::SandboxService::Stub::GetSandbox;
    };
    simple(sandbox, "start", "Start a sandbox (mount + runtime)", lifecycle(StartRpc{}));
    simple(sandbox, "stop", "Stop a sandbox", lifecycle(StopRpc{}));
    simple(sandbox, "get", "Show a sandbox", lifecycle(GetRpc{}));
    simple(sandbox, "rm", "Destroy a sandbox",
           [](Ctx& cx, Client& client, const std::string& id, const std::string&) {
             v1::DestroySandboxRequest req;
             req.set_sandbox_id(id);
             v1::Empty empty;
             auto st = client.sandboxes().DestroySandbox(client.Context(120).get(), req, &empty);
             if (!st.ok()) return GrpcFail(st, "sandbox rm " + id, client.endpoint(), *cx.err);
             if (cx.flags.json) *cx.out << "{}\n";
             return kExitOk;
           });

    auto lcb = std::make_shared<std::string>();
    CLI::App* ls = leaf(sandbox, "ls", "List sandboxes");
    ls->add_option("--codebase", *lcb, "Only the sandboxes of this codebase");
    commands.On(ls, [c, lcb] {
      Client client(c->flags);
      v1::ListSandboxesRequest req;
      req.set_codebase_id(*lcb);
      v1::ListSandboxesResponse all;
      do {
        v1::ListSandboxesResponse page;
        auto st = client.sandboxes().ListSandboxes(client.Context().get(), req, &page);
        if (!st.ok()) return GrpcFail(st, "sandbox ls", client.endpoint(), *c->err);
        for (auto& s : *page.mutable_sandboxes()) *all.add_sandboxes() = std::move(s);
        req.set_page_token(page.next_page_token());
      } while (!req.page_token().empty());
      if (c->flags.json) {
        *c->out << ToJson(all) << "\n";
        return kExitOk;
      }
      *c->out << fmt::format("{:<20} {:<8} {:<24} {:<7} {}\n", "ID", "STATUS", "CODEBASE",
                             "RUNTIME", "CREATED");
      for (const auto& s : all.sandboxes()) {
        *c->out << fmt::format(
            "{:<20} {:<8} {:<24} {:<7} {}\n", s.id(), StatusName(s.status()), s.codebase_id(),
            s.runtime() == v1::RUNTIME_TYPE_DOCKER ? "docker" : "bwrap", Ts(s.created_at()));
      }
      return kExitOk;
    });

    struct ExecArgs {
      std::string id, timeout, workdir;
      std::vector<std::string> env;
      bool stdin_data = false;
    };
    auto e = std::make_shared<ExecArgs>();
    CLI::App* exec = leaf(sandbox, "exec",
                          "Run a command in a running sandbox, streaming its output; exits with "
                          "its status. Usage: sandbox exec ID -- COMMAND [ARG...] (joined with "
                          "spaces and run by /bin/sh -c, like ssh)");
    exec->add_option("SANDBOX", e->id, "Sandbox id")->required();
    exec->add_option("--timeout", e->timeout, "Kill the command after DUR");
    exec->add_option("--workdir", e->workdir, "Working directory (default /workspace)");
    exec->add_option("--env", e->env, "NAME=VALUE (repeatable)")->allow_extra_args(false);
    exec->add_flag("-i,--stdin", e->stdin_data, "Feed our stdin (read to EOF) to the command");
    commands.On(
        exec,
        [c, e, fail] {
          auto text = CommandText(*c);
          if (!text.ok()) return fail(text.error());
          v1::ExecRequest req;
          req.set_sandbox_id(e->id);
          req.set_command(*text);
          req.set_workdir(e->workdir);
          auto env = KeyValues(e->env, "--env");
          if (!env.ok()) return fail(env.error());
          for (auto& [k, v] : *env) (*req.mutable_env())[k] = v;
          if (!e->timeout.empty()) {
            auto d = ToDuration(e->timeout, "--timeout");
            if (!d.ok()) return fail(d.error());
            *req.mutable_timeout() = *d;
          }
          if (e->stdin_data) {
            std::string data((std::istreambuf_iterator<char>(std::cin)),
                             std::istreambuf_iterator<char>());
            req.set_stdin(std::move(data));
          }
          Client client(c->flags);
          auto ctx = client.Context(0);
          auto reader = client.sandboxes().ExecStream(ctx.get(), req);
          return StreamExec(*c, client, reader, *ctx);
        },
        /*takes_command=*/true);

    auto shid = std::make_shared<std::string>();
    CLI::App* shell =
        leaf(sandbox, "shell", "A line-mode shell in a running sandbox (a server session; no TTY)");
    shell->add_option("SANDBOX", *shid, "Sandbox id")->required();
    commands.On(shell, [c, shid] {
      Client client(c->flags);
      v1::CreateSessionRequest creq;
      creq.set_sandbox_id(*shid);
      v1::Session session;
      auto st = client.sandboxes().CreateSession(client.Context().get(), creq, &session);
      if (!st.ok()) return GrpcFail(st, "sandbox shell", client.endpoint(), *c->err);
      const bool tty = ::isatty(0) == 1;
      if (tty) {
        *c->err << "agentfense: session " << session.id()
                << " (line mode, no TTY; Ctrl-D or `exit` leaves)\n";
      }
      int last = 0;
      std::string line;
      for (;;) {
        if (tty) WriteAll(2, "agentfense$ ");
        if (!std::getline(std::cin, line)) break;
        v1::SessionExecRequest req;
        req.set_session_id(session.id());
        req.set_command(line);
        auto ctx = client.Context(0);
        auto reader = client.sandboxes().SessionExecStream(ctx.get(), req);
        v1::ExecOutput msg;
        while (reader->Read(&msg)) {
          if (!msg.data().empty()) {
            WriteAll(msg.type() == v1::ExecOutput::OUTPUT_TYPE_STDERR ? 2 : 1, msg.data());
          }
          if (msg.has_exit_code()) last = msg.exit_code();
        }
        st = reader->Finish();
        if (!st.ok()) {
          if (st.error_code() == grpc::StatusCode::FAILED_PRECONDITION) break;  // shell exited
          GrpcFail(st, "session exec", client.endpoint(), *c->err);
          break;
        }
      }
      v1::DestroySessionRequest dreq;
      dreq.set_session_id(session.id());
      v1::Empty empty;
      (void)client.sandboxes().DestroySession(client.Context().get(), dreq, &empty);
      return last;
    });
  }

  // ----------------------------------------------------------------------------- session ----
  CLI::App* session =
      commands.Sub(&app, "session", "Persistent shell sessions (client mode)", kClientFooter);
  session->require_subcommand(1);
  {
    auto sbid = std::make_shared<std::string>();
    auto shell = std::make_shared<std::string>();
    auto env = std::make_shared<std::vector<std::string>>();
    CLI::App* create = leaf(session, "create", "Open a session in a sandbox; prints its id");
    create->add_option("SANDBOX", *sbid, "Sandbox id")->required();
    create->add_option("--shell", *shell, "Shell (default bash, else sh)");
    create->add_option("--env", *env, "NAME=VALUE (repeatable)")->allow_extra_args(false);
    commands.On(create, [c, sbid, shell, env, fail] {
      v1::CreateSessionRequest req;
      req.set_sandbox_id(*sbid);
      req.set_shell(*shell);
      auto kv = KeyValues(*env, "--env");
      if (!kv.ok()) return fail(kv.error());
      for (auto& [k, v] : *kv) (*req.mutable_env())[k] = v;
      Client client(c->flags);
      v1::Session s;
      auto st = client.sandboxes().CreateSession(client.Context().get(), req, &s);
      if (!st.ok()) return GrpcFail(st, "session create", client.endpoint(), *c->err);
      *c->out << (c->flags.json ? ToJson(s) : s.id()) << "\n";
      return kExitOk;
    });

    auto sid = std::make_shared<std::string>();
    auto timeout = std::make_shared<std::string>();
    CLI::App* exec = leaf(session, "exec",
                          "Run shell text in a session (state persists); exits with its status. "
                          "Usage: session exec SESSION -- COMMAND...");
    exec->add_option("SESSION", *sid, "Session id")->required();
    exec->add_option("--timeout", *timeout, "Kill the command after DUR");
    commands.On(
        exec,
        [c, sid, timeout, fail] {
          auto text = CommandText(*c);
          if (!text.ok()) return fail(text.error());
          v1::SessionExecRequest req;
          req.set_session_id(*sid);
          req.set_command(*text);
          if (!timeout->empty()) {
            auto d = ToDuration(*timeout, "--timeout");
            if (!d.ok()) return fail(d.error());
            *req.mutable_timeout() = *d;
          }
          Client client(c->flags);
          auto ctx = client.Context(0);
          auto reader = client.sandboxes().SessionExecStream(ctx.get(), req);
          return StreamExec(*c, client, reader, *ctx);
        },
        /*takes_command=*/true);

    auto rmid = std::make_shared<std::string>();
    CLI::App* rm = leaf(session, "rm", "Close a session (kills its processes)");
    rm->add_option("SESSION", *rmid, "Session id")->required();
    commands.On(rm, [c, rmid] {
      Client client(c->flags);
      v1::DestroySessionRequest req;
      req.set_session_id(*rmid);
      v1::Empty empty;
      auto st = client.sandboxes().DestroySession(client.Context().get(), req, &empty);
      if (!st.ok()) return GrpcFail(st, "session rm", client.endpoint(), *c->err);
      if (c->flags.json) *c->out << "{}\n";
      return kExitOk;
    });

    auto lsid = std::make_shared<std::string>();
    CLI::App* ls = leaf(session, "ls", "List the sessions of a sandbox");
    ls->add_option("SANDBOX", *lsid, "Sandbox id")->required();
    commands.On(ls, [c, lsid] {
      Client client(c->flags);
      v1::ListSessionsRequest req;
      req.set_sandbox_id(*lsid);
      v1::ListSessionsResponse resp;
      auto st = client.sandboxes().ListSessions(client.Context().get(), req, &resp);
      if (!st.ok()) return GrpcFail(st, "session ls", client.endpoint(), *c->err);
      if (c->flags.json) {
        *c->out << ToJson(resp) << "\n";
        return kExitOk;
      }
      for (const auto& s : resp.sessions()) {
        std::string status = v1::SessionStatus_Name(s.status());
        if (status.rfind("SESSION_STATUS_", 0) == 0) status = status.substr(15);
        *c->out << fmt::format("{:<24} {:<7} {:<10} {}\n", s.id(), status, s.shell(),
                               Ts(s.created_at()));
      }
      return kExitOk;
    });
  }

  // ------------------------------------------------------ changes / commit / discard / audit ----
  {
    auto chid = std::make_shared<std::string>();
    CLI::App* changes = leaf(&app, "changes", "List a sandbox's pending changes (its delta)");
    changes->add_option("SANDBOX", *chid, "Sandbox id")->required();
    commands.On(changes, [c, chid] {
      Client client(c->flags);
      v1::ListChangesRequest req;
      req.set_sandbox_id(*chid);
      v1::ListChangesResponse resp;
      auto st = client.sandboxes().ListChanges(client.Context().get(), req, &resp);
      if (!st.ok()) return GrpcFail(st, "changes", client.endpoint(), *c->err);
      if (c->flags.json) {
        *c->out << ToJson(resp) << "\n";
        return kExitOk;
      }
      for (const auto& ch : resp.changes()) {
        char tag = ch.kind() == v1::CHANGE_KIND_ADDED     ? 'A'
                   : ch.kind() == v1::CHANGE_KIND_DELETED ? 'D'
                                                          : 'M';
        *c->out << tag << " " << ch.path() << (ch.is_dir() ? "/" : "") << "\n";
      }
      *c->err << resp.changes_size() << " change(s), " << resp.delta_bytes()
              << " bytes in the delta\n";
      return kExitOk;
    });

    auto cmid = std::make_shared<std::string>();
    CLI::App* commit = leaf(&app, "commit", "Apply a sandbox's pending changes to its codebase");
    commit->add_option("SANDBOX", *cmid, "Sandbox id")->required();
    commands.On(commit, [c, cmid] {
      Client client(c->flags);
      v1::CommitChangesRequest req;
      req.set_sandbox_id(*cmid);
      v1::CommitChangesResponse resp;
      auto st = client.sandboxes().CommitChanges(client.Context(1800).get(), req, &resp);
      if (!st.ok()) return GrpcFail(st, "commit", client.endpoint(), *c->err);
      if (c->flags.json) {
        *c->out << ToJson(resp) << "\n";
      } else {
        *c->out << "committed " << resp.applied_size() << " change(s)\n";
        for (const auto& e : resp.errors()) {
          *c->err << "agentfense: error: not committed: " << e.path() << ": " << e.message()
                  << "\n";
        }
      }
      return resp.errors_size() > 0 ? kExitFailure : kExitOk;
    });

    auto dcid = std::make_shared<std::string>();
    CLI::App* discard = leaf(&app, "discard", "Drop a sandbox's pending changes");
    discard->add_option("SANDBOX", *dcid, "Sandbox id")->required();
    commands.On(discard, [c, dcid] {
      Client client(c->flags);
      v1::DiscardChangesRequest req;
      req.set_sandbox_id(*dcid);
      v1::DiscardChangesResponse resp;
      auto st = client.sandboxes().DiscardChanges(client.Context().get(), req, &resp);
      if (!st.ok()) return GrpcFail(st, "discard", client.endpoint(), *c->err);
      *c->out << (c->flags.json ? ToJson(resp)
                                : "discarded " + std::to_string(resp.discarded()) + " change(s)")
              << "\n";
      return kExitOk;
    });

    struct AuditArgs {
      std::string sandbox, kind, prefix, since;
      int limit = 100;
    };
    auto au = std::make_shared<AuditArgs>();
    CLI::App* audit = leaf(&app, "audit", "Show audit events (denied operations, lifecycle)");
    audit->add_option("--sandbox", au->sandbox, "Only this sandbox");
    audit->add_option("--kind", au->kind, "denied or lifecycle");
    audit->add_option("--path-prefix", au->prefix, "Only paths under this prefix");
    audit->add_option("--since", au->since, "Only events newer than DUR ago (e.g. 1h)");
    audit->add_option("--limit", au->limit, "At most N events (default 100)");
    commands.On(audit, [c, au, fail] {
      v1::GetAuditLogRequest req;
      req.set_sandbox_id(au->sandbox);
      req.set_kind(au->kind);
      req.set_path_prefix(au->prefix);
      if (!au->since.empty()) {
        auto d = ParseDuration(au->since);
        if (!d.ok()) return Usage(*c, "--since " + au->since + ": " + d.error().message());
        *req.mutable_since() = TimeUtil::NanosecondsToTimestamp(
            TimeUtil::TimestampToNanoseconds(TimeUtil::GetCurrentTime()) - d->count());
      }
      if (au->limit <= 0) return Usage(*c, "--limit must be positive");
      Client client(c->flags);
      v1::GetAuditLogResponse all;
      do {
        req.set_page_size(std::min(au->limit - all.events_size(), 1000));
        v1::GetAuditLogResponse page;
        auto st = client.sandboxes().GetAuditLog(client.Context().get(), req, &page);
        if (!st.ok()) return GrpcFail(st, "audit", client.endpoint(), *c->err);
        for (auto& ev : *page.mutable_events()) {
          if (all.events_size() < au->limit) *all.add_events() = std::move(ev);
        }
        req.set_page_token(page.next_page_token());
      } while (!req.page_token().empty() && all.events_size() < au->limit);
      if (c->flags.json) {
        *c->out << ToJson(all) << "\n";
        return kExitOk;
      }
      for (const auto& ev : all.events()) {
        *c->out << fmt::format("{} {} {:<9} {:<9} {}{}{}\n", Ts(ev.time()), ev.sandbox_id(),
                               ev.kind(), ev.operation(), ev.path(),
                               ev.rule().empty() ? "" : "  rule " + ev.rule(),
                               ev.detail().empty() ? "" : "  " + ev.detail());
      }
      return kExitOk;
    });
  }
}

}  // namespace agentfense::cli
