// Every CodebaseService RPC over gRPC and its REST twin, against a real server and a real store.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "test_server.h"

namespace agentfense::testing {
namespace {

using nlohmann::json;

class CodebaseTransportTest : public ::testing::Test {
 protected:
  v1::Codebase CreateGrpc(const std::string& name, const std::string& owner) {
    v1::CreateCodebaseRequest req;
    req.set_name(name);
    req.set_owner_id(owner);
    v1::Codebase cb;
    auto status = stub_->CreateCodebase(server_.Ctx().get(), req, &cb);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return cb;
  }
  grpc::Status UploadGrpc(const std::string& cb, const std::string& path, const std::string& data,
                          v1::UploadResult* out, int64_t total_size = -1) {
    auto ctx = server_.Ctx();
    auto writer = stub_->UploadFiles(ctx.get(), out);
    v1::UploadChunk meta;
    meta.mutable_metadata()->set_codebase_id(cb);
    meta.mutable_metadata()->set_file_path(path);
    meta.mutable_metadata()->set_total_size(total_size < 0 ? static_cast<int64_t>(data.size())
                                                           : total_size);
    writer->Write(meta);
    for (size_t off = 0; off < data.size(); off += 65536) {
      v1::UploadChunk c;
      c.set_data(data.substr(off, 65536));
      if (!writer->Write(c)) break;
    }
    writer->WritesDone();
    return writer->Finish();
  }
  grpc::Status DownloadGrpc(const std::string& cb, const std::string& path, std::string* out) {
    auto ctx = server_.Ctx();
    v1::DownloadFileRequest req;
    req.set_codebase_id(cb);
    req.set_file_path(path);
    auto reader = stub_->DownloadFile(ctx.get(), req);
    v1::FileChunk chunk;
    out->clear();
    while (reader->Read(&chunk)) {
      EXPECT_LE(chunk.data().size(), 65536u);
      *out += chunk.data();
    }
    return reader->Finish();
  }

  TestServer server_;
  std::unique_ptr<v1::CodebaseService::Stub> stub_ = server_.CodebaseStub();
  std::unique_ptr<httplib::Client> http_ = server_.Http();
};

TEST_F(CodebaseTransportTest, CreateGetListDeleteIdenticalOnBothTransports) {
  v1::Codebase a = CreateGrpc("alpha", "alice");
  auto res = http_->Post("/v1/codebases", R"({"name":"beta","owner_id":"alice"})",
                         "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  json b = json::parse(res->body);
  EXPECT_EQ(b["name"], "beta");
  EXPECT_EQ(b["ownerId"], "alice");  // camelCase out
  // Zero values are left out, as grpc-gateway's default marshaler does.
  EXPECT_FALSE(b.contains("size"));
  EXPECT_FALSE(b.contains("fileCount"));
  std::string b_id = b["id"];
  EXPECT_TRUE(b_id.rfind("cb_", 0) == 0 && b_id.size() == 19);

  // Get: the gRPC answer rendered as JSON equals the REST body, for both codebases.
  for (const std::string& id : {a.id(), b_id}) {
    v1::GetCodebaseRequest g;
    g.set_codebase_id(id);
    v1::Codebase via_grpc;
    ASSERT_TRUE(stub_->GetCodebase(server_.Ctx().get(), g, &via_grpc).ok());
    auto r = http_->Get("/v1/codebases/" + id);
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200);
    EXPECT_EQ(json::parse(r->body), json::parse(ToJson(via_grpc)));
    // Timestamps are RFC 3339 in UTC.
    std::string created = json::parse(r->body)["createdAt"];
    EXPECT_EQ(created.back(), 'Z');
    EXPECT_EQ(created[4], '-');
  }

  // List with paging: real page tokens, same on both transports.
  CreateGrpc("gamma", "bob");
  v1::ListCodebasesRequest lr;
  lr.set_owner_id("alice");
  lr.set_page_size(1);
  v1::ListCodebasesResponse page1;
  ASSERT_TRUE(stub_->ListCodebases(server_.Ctx().get(), lr, &page1).ok());
  ASSERT_EQ(page1.codebases_size(), 1);
  ASSERT_FALSE(page1.next_page_token().empty());
  auto r1 = http_->Get("/v1/codebases?ownerId=alice&page_size=1");  // both spellings accepted
  ASSERT_EQ(r1->status, 200);
  EXPECT_EQ(json::parse(r1->body), json::parse(ToJson(page1)));
  lr.set_page_token(page1.next_page_token());
  v1::ListCodebasesResponse page2;
  ASSERT_TRUE(stub_->ListCodebases(server_.Ctx().get(), lr, &page2).ok());
  ASSERT_EQ(page2.codebases_size(), 1);
  EXPECT_NE(page2.codebases(0).id(), page1.codebases(0).id());
  auto r2 = http_->Get("/v1/codebases?owner_id=alice&pageSize=1&pageToken=" +
                       page1.next_page_token());
  EXPECT_EQ(json::parse(r2->body), json::parse(ToJson(page2)));
  auto all = http_->Get("/v1/codebases");
  EXPECT_EQ(json::parse(all->body)["codebases"].size(), 3u);

  // Delete: gRPC one, REST the other; both then NOT_FOUND on both transports.
  v1::DeleteCodebaseRequest d;
  d.set_codebase_id(a.id());
  v1::Empty empty;
  ASSERT_TRUE(stub_->DeleteCodebase(server_.Ctx().get(), d, &empty).ok());
  auto del = http_->Delete("/v1/codebases/" + b_id);
  ASSERT_EQ(del->status, 200);
  EXPECT_EQ(del->body, "{}");
  for (const std::string& id : {a.id(), b_id}) {
    v1::GetCodebaseRequest g;
    g.set_codebase_id(id);
    v1::Codebase cb;
    EXPECT_EQ(stub_->GetCodebase(server_.Ctx().get(), g, &cb).error_code(),
              grpc::StatusCode::NOT_FOUND);
    auto r = http_->Get("/v1/codebases/" + id);
    EXPECT_EQ(r->status, 404);
    EXPECT_EQ(json::parse(r->body)["code"], 5);
  }
  EXPECT_FALSE(std::filesystem::exists(server_.codebase_root() + "/" + a.id()));
}

TEST_F(CodebaseTransportTest, CreateRequiresNameAndOwner) {
  v1::CreateCodebaseRequest req;
  req.set_name("x");
  v1::Codebase cb;
  EXPECT_EQ(stub_->CreateCodebase(server_.Ctx().get(), req, &cb).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  auto r = http_->Post("/v1/codebases", R"({"ownerId":"u"})", "application/json");
  EXPECT_EQ(r->status, 400);
  json body = json::parse(r->body);
  EXPECT_EQ(body["code"], 3);
  EXPECT_TRUE(body["details"].is_array());
  // Unknown keys are ignored, camelCase input accepted.
  auto ok = http_->Post("/v1/codebases", R"({"name":"n","ownerId":"u","bogus":{"x":1}})",
                        "application/json; charset=utf-8");
  EXPECT_EQ(ok->status, 200) << ok->body;
}

TEST_F(CodebaseTransportTest, UploadDownloadListAcrossTransports) {
  v1::Codebase cb = CreateGrpc("files", "u");
  std::string big(200 * 1024 + 17, '\0');
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7);
  v1::UploadResult up;
  ASSERT_TRUE(UploadGrpc(cb.id(), "src/big.bin", big, &up).ok());
  EXPECT_EQ(up.size(), static_cast<int64_t>(big.size()));
  EXPECT_EQ(up.file_path(), "src/big.bin");
  EXPECT_EQ(up.checksum().size(), 32u);

  // REST upload of an executable script, mode kept.
  auto put = http_->Put("/v1/codebases/" + cb.id() + "/files/bin/run.sh?mode=0755",
                        "#!/bin/sh\necho hi\n", "application/octet-stream");
  ASSERT_EQ(put->status, 200) << put->body;
  json pj = json::parse(put->body);
  EXPECT_EQ(pj["size"], "18");
  EXPECT_EQ(pj["checksum"].get<std::string>().size(), 32u);
  struct stat st {};
  ASSERT_EQ(::stat((server_.codebase_root() + "/" + cb.id() + "/bin/run.sh").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0755u);

  // Download each file through the other transport.
  auto get = http_->Get("/v1/codebases/" + cb.id() + "/files/src/big.bin");
  ASSERT_EQ(get->status, 200);
  EXPECT_EQ(get->body, big);
  std::string via_grpc;
  ASSERT_TRUE(DownloadGrpc(cb.id(), "bin/run.sh", &via_grpc).ok());
  EXPECT_EQ(via_grpc, "#!/bin/sh\necho hi\n");

  // Size and file_count are right on both transports.
  v1::GetCodebaseRequest g;
  g.set_codebase_id(cb.id());
  v1::Codebase now;
  ASSERT_TRUE(stub_->GetCodebase(server_.Ctx().get(), g, &now).ok());
  EXPECT_EQ(now.size(), static_cast<int64_t>(big.size() + 18));
  EXPECT_EQ(now.file_count(), 2);

  // ListFiles: same on both, recursive and not, path filter.
  for (auto [path, recursive] : {std::pair<std::string, bool>{"", true}, {"", false}, {"src", false}}) {
    v1::ListFilesRequest lf;
    lf.set_codebase_id(cb.id());
    lf.set_path(path);
    lf.set_recursive(recursive);
    v1::ListFilesResponse files;
    ASSERT_TRUE(stub_->ListFiles(server_.Ctx().get(), lf, &files).ok());
    auto r = http_->Get("/v1/codebases/" + cb.id() + "/files?path=" + path +
                        "&recursive=" + (recursive ? "true" : "false"));
    ASSERT_EQ(r->status, 200) << r->body;
    EXPECT_EQ(json::parse(r->body), json::parse(ToJson(files)));
    if (recursive) {
      EXPECT_EQ(files.files_size(), 4);  // bin, bin/run.sh, src, src/big.bin
    }
  }

  // DeleteFile (extension) updates the counters.
  auto del = http_->Delete("/v1/codebases/" + cb.id() + "/files/src/big.bin");
  ASSERT_EQ(del->status, 200) << del->body;
  ASSERT_TRUE(stub_->GetCodebase(server_.Ctx().get(), g, &now).ok());
  EXPECT_EQ(now.size(), 18);
  EXPECT_EQ(now.file_count(), 1);
  EXPECT_EQ(http_->Get("/v1/codebases/" + cb.id() + "/files/src/big.bin")->status, 404);
}

TEST_F(CodebaseTransportTest, UploadChecksumIsMd5OfBytes) {
  v1::Codebase cb = CreateGrpc("md5", "u");
  v1::UploadResult up;
  ASSERT_TRUE(UploadGrpc(cb.id(), "hello.txt", "hello\n", &up).ok());
  EXPECT_EQ(up.checksum(), "b1946ac92492d2347c6235b4d2611184");  // md5sum of "hello\n"
  auto put = http_->Put("/v1/codebases/" + cb.id() + "/files/h2.txt", "hello\n",
                        "application/octet-stream");
  EXPECT_EQ(json::parse(put->body)["checksum"], "b1946ac92492d2347c6235b4d2611184");
}

TEST_F(CodebaseTransportTest, UploadProtocolErrors) {
  v1::Codebase cb = CreateGrpc("proto", "u");
  {  // data before metadata
    auto ctx = server_.Ctx();
    v1::UploadResult out;
    auto w = stub_->UploadFiles(ctx.get(), &out);
    v1::UploadChunk c;
    c.set_data("x");
    w->Write(c);
    w->WritesDone();
    EXPECT_EQ(w->Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  {  // short upload: total_size announced 100, 5 bytes sent → nothing lands
    v1::UploadResult out;
    EXPECT_EQ(UploadGrpc(cb.id(), "short.txt", "12345", &out, 100).error_code(),
              grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_FALSE(std::filesystem::exists(server_.codebase_root() + "/" + cb.id() + "/short.txt"));
  }
  {  // unknown codebase
    v1::UploadResult out;
    EXPECT_EQ(UploadGrpc("cb_00000000000000aa", "x", "1", &out).error_code(),
              grpc::StatusCode::NOT_FOUND);
  }
}

TEST_F(CodebaseTransportTest, UploadThroughPlantedSymlinkRefused) {
  v1::Codebase cb = CreateGrpc("links", "u");
  std::string outside = server_.dir() + "/outside";
  std::filesystem::create_directory(outside);
  std::string tree = server_.codebase_root() + "/" + cb.id();
  std::filesystem::create_directory_symlink(outside, tree + "/evil");
  std::filesystem::create_symlink("/etc/passwd", tree + "/passwd");

  v1::UploadResult out;
  EXPECT_FALSE(UploadGrpc(cb.id(), "evil/x.txt", "pwned", &out).ok());
  auto put = http_->Put("/v1/codebases/" + cb.id() + "/files/evil/y.txt", "pwned",
                        "application/octet-stream");
  EXPECT_GE(put->status, 400);
  EXPECT_TRUE(std::filesystem::is_empty(outside));
  // Downloads never follow a link.
  std::string data;
  EXPECT_FALSE(DownloadGrpc(cb.id(), "passwd", &data).ok());
  EXPECT_GE(http_->Get("/v1/codebases/" + cb.id() + "/files/passwd")->status, 400);
  EXPECT_GE(http_->Get("/v1/codebases/" + cb.id() + "/files/evil/x")->status, 400);
  // Listing shows the links as entries and does not descend.
  auto r = http_->Get("/v1/codebases/" + cb.id() + "/files?recursive=true");
  ASSERT_EQ(r->status, 200);
  EXPECT_EQ(json::parse(r->body)["files"].size(), 2u);
  EXPECT_GE(http_->Get("/v1/codebases/" + cb.id() + "/files?path=evil")->status, 400);
}

TEST_F(CodebaseTransportTest, ConcurrentUploadsToOnePathLandOneWholeFile) {
  v1::Codebase cb = CreateGrpc("race", "u");
  constexpr int kWriters = 8;
  std::vector<std::string> contents;
  for (int i = 0; i < kWriters; ++i) contents.push_back(std::string(100000 + i, 'a' + i));
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < kWriters; ++i) {
    threads.emplace_back([&, i] {
      if (i % 2 == 0) {
        v1::UploadResult out;
        if (UploadGrpc(cb.id(), "same.txt", contents[i], &out).ok()) ++ok;
      } else {
        auto c = server_.Http();
        auto r = c->Put("/v1/codebases/" + cb.id() + "/files/same.txt", contents[i],
                        "application/octet-stream");
        if (r && r->status == 200) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kWriters);
  std::string final_data;
  ASSERT_TRUE(DownloadGrpc(cb.id(), "same.txt", &final_data).ok());
  EXPECT_NE(std::find(contents.begin(), contents.end(), final_data), contents.end());
  v1::GetCodebaseRequest g;
  g.set_codebase_id(cb.id());
  v1::Codebase now;
  ASSERT_TRUE(stub_->GetCodebase(server_.Ctx().get(), g, &now).ok());
  EXPECT_EQ(now.file_count(), 1);
  EXPECT_EQ(now.size(), static_cast<int64_t>(final_data.size()));
}

TEST_F(CodebaseTransportTest, HundredMiBUploadIsStreamed) {
  v1::Codebase cb = CreateGrpc("big", "u");
  constexpr size_t kTotal = 100u << 20;
  std::string block(1 << 16, 'z');
  long before = RssKiB();
  // REST: chunked request body produced on the fly.
  auto res = http_->Put(
      "/v1/codebases/" + cb.id() + "/files/big.bin",
      [&](size_t offset, httplib::DataSink& sink) {
        if (offset >= kTotal) {
          sink.done();
          return true;
        }
        return sink.write(block.data(), block.size());
      },
      "application/octet-stream");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  EXPECT_EQ(json::parse(res->body)["size"], std::to_string(kTotal));
  long after_rest = RssKiB();
  // gRPC: 64 KiB messages.
  {
    auto ctx = server_.Ctx();
    v1::UploadResult out;
    auto w = stub_->UploadFiles(ctx.get(), &out);
    v1::UploadChunk meta;
    meta.mutable_metadata()->set_codebase_id(cb.id());
    meta.mutable_metadata()->set_file_path("big2.bin");
    meta.mutable_metadata()->set_total_size(kTotal);
    ASSERT_TRUE(w->Write(meta));
    v1::UploadChunk c;
    c.set_data(block);
    for (size_t sent = 0; sent < kTotal; sent += block.size()) ASSERT_TRUE(w->Write(c));
    w->WritesDone();
    ASSERT_TRUE(w->Finish().ok());
    EXPECT_EQ(out.size(), static_cast<int64_t>(kTotal));
  }
  long after_grpc = RssKiB();
  // The test process holds client and server: neither may hold the file.
  EXPECT_LT(after_rest - before, 40 * 1024) << "RSS grew by " << (after_rest - before) << " KiB";
  EXPECT_LT(after_grpc - before, 40 * 1024) << "RSS grew by " << (after_grpc - before) << " KiB";
  std::cout << "RSS KiB before " << before << ", after REST " << after_rest << ", after gRPC "
            << after_grpc << "\n";
  // Streamed download of the REST-uploaded file, counted not stored.
  size_t received = 0;
  auto dl = http_->Get("/v1/codebases/" + cb.id() + "/files/big.bin",
                       [&](const char*, size_t n) {
                         received += n;
                         return true;
                       });
  ASSERT_TRUE(dl);
  EXPECT_EQ(received, kTotal);
  EXPECT_LT(RssKiB() - before, 40 * 1024);
}

TEST_F(CodebaseTransportTest, DeleteInUseNeedsForce) {
  v1::Codebase cb = CreateGrpc("busy", "u");
  {
    std::lock_guard lock(server_.fake()->mu);
    server_.fake()->in_use_codebase = cb.id();
  }
  v1::DeleteCodebaseRequest d;
  d.set_codebase_id(cb.id());
  v1::Empty e;
  EXPECT_EQ(stub_->DeleteCodebase(server_.Ctx().get(), d, &e).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  auto r = http_->Delete("/v1/codebases/" + cb.id());
  EXPECT_EQ(r->status, 400);
  EXPECT_EQ(json::parse(r->body)["code"], 9);
  auto forced = http_->Delete("/v1/codebases/" + cb.id() + "?force=true");
  EXPECT_EQ(forced->status, 200) << forced->body;
  EXPECT_EQ(server_.fake()->destroyed_for_codebase, 1);
}

}  // namespace
}  // namespace agentfense::testing

namespace agentfense::testing {
namespace {

TEST(UploadLimitTest, CapsApplyOnBothTransports) {
  TestServer server({.auth_token = "", .max_body_bytes = 1 << 20, .max_upload_bytes = 1024});
  auto stub = server.CodebaseStub();
  auto http = server.Http();
  auto created = http->Post("/v1/codebases", R"({"name":"cap","owner_id":"u"})", "application/json");
  std::string cb = nlohmann::json::parse(created->body)["id"];
  EXPECT_EQ(http->Put("/v1/codebases/" + cb + "/files/ok.bin", std::string(1024, 'x'),
                      "application/octet-stream")->status, 200);
  auto big = http->Put("/v1/codebases/" + cb + "/files/big.bin", std::string(2048, 'x'),
                       "application/octet-stream");
  if (big) {
    EXPECT_EQ(big->status, 413);
  }
  // gRPC with an honest total_size, and with none (caught while streaming).
  for (int64_t announced : {int64_t{2048}, int64_t{0}}) {
    auto ctx = server.Ctx();
    v1::UploadResult out;
    auto w = stub->UploadFiles(ctx.get(), &out);
    v1::UploadChunk meta;
    meta.mutable_metadata()->set_codebase_id(cb);
    meta.mutable_metadata()->set_file_path("big.bin");
    meta.mutable_metadata()->set_total_size(announced);
    w->Write(meta);
    v1::UploadChunk data;
    data.set_data(std::string(2048, 'y'));
    w->Write(data);
    w->WritesDone();
    EXPECT_EQ(w->Finish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << announced;
  }
  EXPECT_FALSE(std::filesystem::exists(server.codebase_root() + "/" + cb + "/big.bin"));
  v1::GetCodebaseRequest g;
  g.set_codebase_id(cb);
  v1::Codebase now;
  ASSERT_TRUE(stub->GetCodebase(server.Ctx().get(), g, &now).ok());
  EXPECT_EQ(now.file_count(), 1);
  EXPECT_EQ(now.size(), 1024);
}

TEST(UploadLimitTest, ClientDisconnectMidStreamLandsNothing) {
  TestServer server;
  auto stub = server.CodebaseStub();
  v1::CreateCodebaseRequest req;
  req.set_name("dc");
  req.set_owner_id("u");
  v1::Codebase cb;
  ASSERT_TRUE(stub->CreateCodebase(server.Ctx().get(), req, &cb).ok());
  {
    auto ctx = server.Ctx();
    v1::UploadResult out;
    auto w = stub->UploadFiles(ctx.get(), &out);
    v1::UploadChunk meta;
    meta.mutable_metadata()->set_codebase_id(cb.id());
    meta.mutable_metadata()->set_file_path("partial.bin");  // no total_size: only the stream end counts
    w->Write(meta);
    v1::UploadChunk data;
    data.set_data(std::string(65536, 'p'));
    for (int i = 0; i < 4; ++i) w->Write(data);
    ctx->TryCancel();
    EXPECT_FALSE(w->Finish().ok());
  }
  // REST: the body ends early (the connection drops before Content-Length bytes arrived).
  {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(server.http_port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    std::string head = "PUT /v1/codebases/" + cb.id() +
                       "/files/partial2.bin HTTP/1.1\r\nHost: localhost\r\n"
                       "Content-Length: 1000000\r\n\r\n" + std::string(5000, 'q');
    ASSERT_GT(::send(fd, head.data(), head.size(), MSG_NOSIGNAL), 0);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ::close(fd);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  std::string tree = server.codebase_root() + "/" + cb.id();
  EXPECT_FALSE(std::filesystem::exists(tree + "/partial.bin"));
  EXPECT_FALSE(std::filesystem::exists(tree + "/partial2.bin"));
  // Nothing left in staging either.
  size_t staged = 0;
  for ([[maybe_unused]] auto& e :
       std::filesystem::directory_iterator(server.codebase_root() + "/.staging")) {
    ++staged;
  }
  EXPECT_EQ(staged, 0u);
  v1::GetCodebaseRequest g;
  g.set_codebase_id(cb.id());
  ASSERT_TRUE(stub->GetCodebase(server.Ctx().get(), g, &cb).ok());
  EXPECT_EQ(cb.file_count(), 0);
}

}  // namespace
}  // namespace agentfense::testing
