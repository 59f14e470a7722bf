// Client mode: `codebase create|ls|files|upload|download|rm`.
#include <fcntl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/client_common.h"
#include "cli/exit_codes.h"

namespace agentfense::cli {
namespace {

namespace stdfs = std::filesystem;

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

void AddCodebaseCommands(CLI::App& app, const ClientRegistrar& r) {
  const auto& c = r.c;
  CLI::App* codebase = r.Group(&app, "codebase", "Codebases on a server (client mode)");
  auto name = std::make_shared<std::string>();
  auto owner = std::make_shared<std::string>();
  CLI::App* create = r.Leaf(codebase, "create", "Create a codebase; prints its id");
  create->add_option("NAME", *name, "Codebase name")->required();
  create->add_option("--owner", *owner, "Owner id (default: $USER, else \"cli\")");
  r.commands.On(create, [c, name, owner] {
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
  CLI::App* ls = r.Leaf(codebase, "ls", "List codebases");
  ls->add_option("--owner", *lowner, "Only this owner's codebases");
  r.commands.On(ls, [c, lowner] {
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
  CLI::App* files = r.Leaf(codebase, "files", "List the files of a codebase");
  files->add_option("CODEBASE", *fid, "Codebase id")->required();
  files->add_option("PATH", *fpath, "Directory in the codebase (default: root)");
  files->add_flag("-r,--recursive", *recursive, "Recurse into directories");
  r.commands.On(files, [c, fid, fpath, recursive] {
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
      *c->out << fmt::format("{:>12} {}{}\n", f.is_dir() ? "-" : std::to_string(f.size()), f.path(),
                             f.is_dir() ? "/" : "");
    }
    return kExitOk;
  });

  auto uid = std::make_shared<std::string>();
  auto locals = std::make_shared<std::vector<std::string>>();
  auto to = std::make_shared<std::string>();
  auto no_progress = std::make_shared<bool>(false);
  CLI::App* upload = r.Leaf(codebase, "upload",
                            "Upload files or directory trees (a directory's contents land under "
                            "--to); a progress bar shows on a terminal");
  upload->add_option("CODEBASE", *uid, "Codebase id")->required();
  upload->add_option("LOCAL", *locals, "Files or directories")->required();
  upload->add_option("--to", *to, "Destination directory in the codebase (default: root)");
  upload->add_flag("--no-progress", *no_progress, "No progress bar");
  r.commands.On(upload, [c, uid, locals, to, no_progress] {
    auto plan = PlanUpload(*locals, *to, *c->err);
    if (!plan.ok()) return Fail(*c, plan.error());
    uint64_t total = 0;
    for (const auto& it : *plan) total += it.size;
    Progress progress(total, plan->size(), !c->flags.json && !*no_progress && ::isatty(2) == 1);
    Client client(c->flags);
    nlohmann::ordered_json results = nlohmann::ordered_json::array();
    for (const auto& item : *plan) {
      std::ifstream in(item.local, std::ios::binary);
      if (!in) {
        progress.End();
        return Fail(*c, Error(ErrorCode::kInvalidArgument, "cannot read " + item.local));
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
  CLI::App* download = r.Leaf(codebase, "download", "Download one file (-o - for stdout)");
  download->add_option("CODEBASE", *did, "Codebase id")->required();
  download->add_option("FILE", *dfile, "File path in the codebase")->required();
  download->add_option("-o,--output", *dout, "Local file (default: the file's name here)");
  r.commands.On(download, [c, did, dfile, dout] {
    std::string target = dout->empty() ? stdfs::path(*dfile).filename().string() : *dout;
    if (target.empty()) return Fail(*c, Error(ErrorCode::kInvalidArgument, "no output file name"));
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
      if (fd < 0) return Fail(*c, Error::FromErrno(errno, "open " + tmp));
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
      return Fail(*c, Error::FromErrno(errno, "rename to " + target));
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
  CLI::App* rm = r.Leaf(codebase, "rm", "Delete a codebase, or only the FILEs given");
  rm->add_option("CODEBASE", *rid, "Codebase id")->required();
  rm->add_option("FILE", *rfiles, "Files to delete (none: the whole codebase)");
  r.commands.On(rm, [c, rid, rfiles] {
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

}  // namespace agentfense::cli
