// UploadArchive over gRPC and PUT /v1/codebases/{id}/archive over REST, against a real server and a
// real store: both transports give the same result, refuse the same hostile archives, leave nothing
// behind when an archive is cut off, and stream (the server never holds the archive).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "store/test_tar.h"
#include "test_server.h"

namespace agentfense::testing {
namespace {

using nlohmann::json;
using store::testing::Tar;

class ArchiveTransportTest : public ::testing::Test {
 protected:
  std::string Create(const std::string& name) {
    v1::CreateCodebaseRequest req;
    req.set_name(name);
    req.set_owner_id("u");
    v1::Codebase cb;
    EXPECT_TRUE(stub_->CreateCodebase(server_.Ctx().get(), req, &cb).ok());
    return cb.id();
  }
  grpc::Status UploadGrpc(const std::string& cb, const std::string& tar,
                          v1::UploadArchiveResult* out, int64_t total_size = 0) {
    auto ctx = server_.Ctx();
    auto w = stub_->UploadArchive(ctx.get(), out);
    v1::ArchiveChunk meta;
    meta.mutable_metadata()->set_codebase_id(cb);
    meta.mutable_metadata()->set_total_size(total_size);
    w->Write(meta);
    for (size_t off = 0; off < tar.size(); off += 1 << 20) {
      v1::ArchiveChunk c;
      c.set_data(tar.substr(off, 1 << 20));
      if (!w->Write(c)) break;
    }
    w->WritesDone();
    return w->Finish();
  }
  httplib::Result PutRest(const std::string& cb, const std::string& tar) {
    return http_->Put("/v1/codebases/" + cb + "/archive", tar, "application/x-tar");
  }
  std::vector<std::string> Listing(const std::string& cb) {
    v1::ListFilesRequest req;
    req.set_codebase_id(cb);
    req.set_recursive(true);
    v1::ListFilesResponse resp;
    EXPECT_TRUE(stub_->ListFiles(server_.Ctx().get(), req, &resp).ok());
    std::vector<std::string> out;
    for (const auto& f : resp.files()) out.push_back(f.path() + (f.is_dir() ? "/" : ""));
    return out;
  }
  // The staging area empties once the server has dropped an abandoned archive.
  bool StagingEmptyWithin(std::chrono::seconds limit) {
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      if (std::filesystem::is_empty(server_.codebase_root() + "/.staging")) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return false;
  }

  TestServer server_;
  std::unique_ptr<v1::CodebaseService::Stub> stub_ = server_.CodebaseStub();
  std::unique_ptr<httplib::Client> http_ = server_.Http();
};

TEST_F(ArchiveTransportTest, SameResultOnBothTransports) {
  std::string tar = Tar()
                        .Dir("./src/")
                        .File("./src/main.py", "print('hi')\n")
                        .File("./run.sh", "#!/bin/sh\necho ok\n", 0755)
                        .Dir("./empty/")
                        .End();
  std::string a = Create("via-grpc"), b = Create("via-rest");
  v1::UploadArchiveResult out;
  auto st = UploadGrpc(a, tar, &out, static_cast<int64_t>(tar.size()));
  ASSERT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(out.files(), 2);
  EXPECT_EQ(out.directories(), 2);
  EXPECT_EQ(out.codebase().file_count(), 2);
  EXPECT_EQ(out.codebase().size(), 12 + 18);
  auto res = PutRest(b, tar);
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  json j = json::parse(res->body);
  EXPECT_EQ(j["files"], "2");  // int64 as a JSON string
  EXPECT_EQ(j["directories"], "2");
  EXPECT_EQ(j["codebase"]["fileCount"], 2);
  EXPECT_EQ(j["codebase"]["size"], "30");
  EXPECT_EQ(Listing(a), (std::vector<std::string>{"empty/", "run.sh", "src/", "src/main.py"}));
  EXPECT_EQ(Listing(a), Listing(b));
  // Downloads give the bytes back, with the exec bit kept.
  auto dl = http_->Get("/v1/codebases/" + b + "/files/run.sh");
  ASSERT_TRUE(dl);
  EXPECT_EQ(dl->body, "#!/bin/sh\necho ok\n");
  EXPECT_EQ(dl->get_header_value("X-File-Mode"), "0755");
}

TEST_F(ArchiveTransportTest, HostileArchivesRefusedOnBothTransports) {
  std::string cb = Create("hostile");
  for (const std::string& tar :
       {Tar().File("ok", "x").File("../escape", "x").End(), Tar().File("/abs", "x").End(),
        Tar().Symlink("l", "/etc").End(), Tar().HardLink("h", "../../etc/passwd").End(),
        Tar().Special("null", '3').End()}) {
    v1::UploadArchiveResult out;
    auto st = UploadGrpc(cb, tar, &out);
    EXPECT_EQ(st.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << st.error_message();
    auto res = PutRest(cb, tar);
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, 400) << res->body;
    EXPECT_EQ(json::parse(res->body)["code"], 3);
  }
  // Not a tar at all.
  auto res = PutRest(cb, std::string(2048, 'x'));
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 400);
  EXPECT_TRUE(Listing(cb).empty());
  EXPECT_TRUE(StagingEmptyWithin(std::chrono::seconds(5)));
  // Unknown codebase: NOT_FOUND on both.
  v1::UploadArchiveResult out;
  EXPECT_EQ(UploadGrpc("cb_00000000000000ff", Tar().End(), &out).error_code(),
            grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(PutRest("cb_00000000000000ff", Tar().End())->status, 404);
}

TEST_F(ArchiveTransportTest, CutOffArchivesLeaveNothing) {
  std::string cb = Create("cut");
  std::string tar = Tar().File("first.txt", "1").File("big.bin", std::string(3 << 20, 'b')).End();
  // gRPC: the client cancels after the first file is complete on the server's side.
  {
    auto ctx = server_.Ctx();
    v1::UploadArchiveResult out;
    auto w = stub_->UploadArchive(ctx.get(), &out);
    v1::ArchiveChunk meta;
    meta.mutable_metadata()->set_codebase_id(cb);
    w->Write(meta);
    v1::ArchiveChunk c;
    c.set_data(tar.substr(0, 1 << 20));
    w->Write(c);
    ctx->TryCancel();
    EXPECT_FALSE(w->Finish().ok());
  }
  // gRPC: a clean half-close before the end marker, and a stream shorter than announced.
  v1::UploadArchiveResult out;
  EXPECT_EQ(UploadGrpc(cb, tar.substr(0, tar.size() - 1024), &out).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(
      UploadGrpc(cb, tar.substr(0, 2048), &out, static_cast<int64_t>(tar.size())).error_code(),
      grpc::StatusCode::INVALID_ARGUMENT);
  // REST: the connection drops before Content-Length bytes arrived.
  {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(server_.http_port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    std::string head = "PUT /v1/codebases/" + cb + "/archive HTTP/1.1\r\nHost: localhost\r\n" +
                       "Content-Length: " + std::to_string(tar.size()) + "\r\n\r\n" +
                       tar.substr(0, 100000);
    ASSERT_GT(::send(fd, head.data(), head.size(), MSG_NOSIGNAL), 0);
    ::close(fd);
  }
  EXPECT_TRUE(StagingEmptyWithin(std::chrono::seconds(10)));
  EXPECT_TRUE(Listing(cb).empty());
  v1::GetCodebaseRequest g;
  g.set_codebase_id(cb);
  v1::Codebase after;
  ASSERT_TRUE(stub_->GetCodebase(server_.Ctx().get(), g, &after).ok());
  EXPECT_EQ(after.file_count(), 0);
  EXPECT_EQ(after.size(), 0);
}

TEST_F(ArchiveTransportTest, BigArchiveIsStreamed) {
  std::string cb = Create("big");
  constexpr size_t kFile = 96u << 20;
  const std::string header = store::testing::Header("big.bin", '0', kFile);
  const std::string trailer = std::string(1024, '\0');
  std::string block(1 << 20, 'z');
  long before = RssKiB();
  // REST: the tar is produced on the fly (header, 96 MiB, end marker) as a chunked body.
  auto res = http_->Put(
      "/v1/codebases/" + cb + "/archive",
      [&](size_t offset, httplib::DataSink& sink) {
        if (offset == 0) return sink.write(header.data(), header.size());
        if (offset < header.size() + kFile) return sink.write(block.data(), block.size());
        sink.write(trailer.data(), trailer.size());
        sink.done();
        return true;
      },
      "application/x-tar");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(json::parse(res->body)["bytes"], std::to_string(kFile));
  long after_rest = RssKiB();
  // gRPC: 1 MiB messages.
  {
    auto ctx = server_.Ctx();
    v1::UploadArchiveResult out;
    auto w = stub_->UploadArchive(ctx.get(), &out);
    v1::ArchiveChunk m;
    m.mutable_metadata()->set_codebase_id(cb);
    ASSERT_TRUE(w->Write(m));
    v1::ArchiveChunk c;
    c.set_data(store::testing::Header("big2.bin", '0', kFile));
    ASSERT_TRUE(w->Write(c));
    c.set_data(block);
    for (size_t sent = 0; sent < kFile; sent += block.size()) ASSERT_TRUE(w->Write(c));
    c.set_data(trailer);
    ASSERT_TRUE(w->Write(c));
    w->WritesDone();
    ASSERT_TRUE(w->Finish().ok());
    EXPECT_EQ(out.codebase().size(), static_cast<int64_t>(2 * kFile));
  }
  long after_grpc = RssKiB();
  // The test process holds client and server: neither may hold the archive.
  EXPECT_LT(after_rest - before, 40 * 1024) << "RSS grew by " << (after_rest - before) << " KiB";
  EXPECT_LT(after_grpc - before, 40 * 1024) << "RSS grew by " << (after_grpc - before) << " KiB";
}

}  // namespace
}  // namespace agentfense::testing
