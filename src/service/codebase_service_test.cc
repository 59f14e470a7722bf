// CodebaseService on a real store in a temp dir (no transport): semantics of every method, and the
// validation helpers.
#include "service/codebase_service.h"

#include <gtest/gtest.h>

#include "service/convert.h"
#include "service/validation.h"
#include "store/test_util.h"

namespace agentfense::service {
namespace {

class Registry final : public SandboxRegistry {
 public:
  Result<bool> IsCodebaseInUse(const std::string& id) override { return id == busy; }
  Result<int64_t> DestroySandboxesOfCodebase(const CallContext&, const std::string& id) override {
    if (id != busy) return int64_t{0};
    busy.clear();
    return int64_t{1};
  }
  std::string busy;
};

class CodebaseServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto md = store::MetadataStore::Open(dir_.Sub("db.sqlite"));
    ASSERT_TRUE(md.ok()) << md.error().ToString();
    metadata_ = std::move(md).value();
    store::CodebaseFilesOptions o;
    o.root = dir_.Sub("codebases");
    auto files = store::CodebaseFiles::Open(o);
    ASSERT_TRUE(files.ok());
    files_ = std::move(files).value();
    svc_ = std::make_unique<CodebaseService>(metadata_.get(), files_.get(),
                                             CodebaseServiceOptions{.max_upload_bytes = 1000});
    svc_->set_registry(&registry_);
  }
  v1::Codebase Create(const std::string& owner = "u") {
    v1::CreateCodebaseRequest r;
    r.set_name("n");
    r.set_owner_id(owner);
    auto cb = svc_->CreateCodebase(ctx_, r);
    EXPECT_TRUE(cb.ok());
    return cb.ok() ? *cb : v1::Codebase();
  }
  Result<v1::UploadResult> Upload(const std::string& id, const std::string& path,
                                  const std::string& data, int64_t total = -1) {
    UploadStream s(svc_.get(), ctx_);
    v1::UploadChunk meta;
    meta.mutable_metadata()->set_codebase_id(id);
    meta.mutable_metadata()->set_file_path(path);
    meta.mutable_metadata()->set_total_size(total < 0 ? static_cast<int64_t>(data.size()) : total);
    AF_RETURN_IF_ERROR(s.Consume(meta));
    v1::UploadChunk c;
    c.set_data(data);
    AF_RETURN_IF_ERROR(s.Consume(c));
    return s.Finish();
  }

  store::testing::TempDir dir_;
  std::unique_ptr<store::MetadataStore> metadata_;
  std::unique_ptr<store::CodebaseFiles> files_;
  std::unique_ptr<CodebaseService> svc_;
  Registry registry_;
  CallContext ctx_;
};

TEST_F(CodebaseServiceTest, CreateValidates) {
  v1::CreateCodebaseRequest r;
  EXPECT_EQ(svc_->CreateCodebase(ctx_, r).error().code(), ErrorCode::kInvalidArgument);
  r.set_name("n");
  EXPECT_EQ(svc_->CreateCodebase(ctx_, r).error().code(), ErrorCode::kInvalidArgument);
  r.set_owner_id(std::string(300, 'o'));
  EXPECT_EQ(svc_->CreateCodebase(ctx_, r).error().code(), ErrorCode::kInvalidArgument);
  v1::Codebase cb = Create();
  EXPECT_EQ(cb.size(), 0);
  EXPECT_TRUE(cb.has_created_at());
}

TEST_F(CodebaseServiceTest, UploadCountsAndChecksum) {
  v1::Codebase cb = Create();
  auto up = Upload(cb.id(), "a/b.txt", "hello\n");
  ASSERT_TRUE(up.ok()) << up.error().ToString();
  EXPECT_EQ(up->checksum(), "b1946ac92492d2347c6235b4d2611184");
  ASSERT_TRUE(Upload(cb.id(), "a/b.txt", "hi").ok());  // overwrite: counts stay exact
  v1::GetCodebaseRequest g;
  g.set_codebase_id(cb.id());
  auto now = svc_->GetCodebase(ctx_, g);
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(now->size(), 2);
  EXPECT_EQ(now->file_count(), 1);
  EXPECT_EQ(Upload(cb.id(), "big", std::string(2000, 'x')).error().code(),
            ErrorCode::kResourceExhausted);
  EXPECT_EQ(Upload(cb.id(), "short", "abc", 10).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(Upload(cb.id(), "long", "abcdef", 3).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(Upload("cb_0000000000000000", "x", "1").error().code(), ErrorCode::kNotFound);
  for (std::string bad : {"../x", "//abs", "/../x", "a//b", "a/./b", ""}) {
    EXPECT_EQ(Upload(cb.id(), bad, "1").error().code(), ErrorCode::kInvalidArgument) << bad;
  }
}

TEST_F(CodebaseServiceTest, DownloadInChunks) {
  v1::Codebase cb = Create();
  std::string data(kDownloadChunkBytes * 2 + 3, 'd');
  UploadStream s(svc_.get(), ctx_);
  v1::UploadChunk meta;
  meta.mutable_metadata()->set_codebase_id(cb.id());
  meta.mutable_metadata()->set_file_path("f");
  ASSERT_TRUE(s.Consume(meta).ok());
  v1::UploadChunk c;
  c.set_data(data);
  ASSERT_TRUE(s.Consume(c).ok());
  ASSERT_TRUE(s.Finish().ok());
  v1::DownloadFileRequest d;
  d.set_codebase_id(cb.id());
  d.set_file_path("f");
  auto src = svc_->OpenDownload(ctx_, d);
  ASSERT_TRUE(src.ok());
  v1::FileChunk chunk;
  std::string got;
  for (size_t want : {kDownloadChunkBytes, kDownloadChunkBytes, size_t{3}}) {
    auto more = (*src)->Next(&chunk);
    ASSERT_TRUE(more.ok() && *more);
    EXPECT_EQ(chunk.data().size(), want);
    got += chunk.data();
  }
  EXPECT_EQ(got, data);
  auto more = (*src)->Next(&chunk);
  ASSERT_TRUE(more.ok());
  EXPECT_FALSE(*more);
  d.set_file_path("missing");
  EXPECT_EQ(svc_->OpenDownload(ctx_, d).error().code(), ErrorCode::kNotFound);
}

TEST_F(CodebaseServiceTest, ListPagesAndDeleteInUse) {
  v1::Codebase a = Create("x");
  Create("x");
  Create("y");
  v1::ListCodebasesRequest l;
  l.set_owner_id("x");
  l.set_page_size(1);
  auto p1 = svc_->ListCodebases(ctx_, l);
  ASSERT_TRUE(p1.ok());
  ASSERT_EQ(p1->codebases_size(), 1);
  l.set_page_token(p1->next_page_token());
  auto p2 = svc_->ListCodebases(ctx_, l);
  ASSERT_TRUE(p2.ok());
  ASSERT_EQ(p2->codebases_size(), 1);
  EXPECT_TRUE(p2->next_page_token().empty());
  l.set_page_size(-1);
  EXPECT_EQ(svc_->ListCodebases(ctx_, l).error().code(), ErrorCode::kInvalidArgument);
  l.set_page_size(0);
  l.set_page_token("garbage");
  EXPECT_EQ(svc_->ListCodebases(ctx_, l).error().code(), ErrorCode::kInvalidArgument);

  registry_.busy = a.id();
  v1::DeleteCodebaseRequest d;
  d.set_codebase_id(a.id());
  EXPECT_EQ(svc_->DeleteCodebase(ctx_, d).error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_TRUE(svc_->DeleteCodebase(ctx_, d, /*force=*/true).ok());
  EXPECT_EQ(svc_->DeleteCodebase(ctx_, d).error().code(), ErrorCode::kNotFound);
  d.set_codebase_id("../etc");  // a malformed id names no codebase, and reaches no path
  EXPECT_EQ(svc_->DeleteCodebase(ctx_, d).error().code(), ErrorCode::kNotFound);
}

TEST_F(CodebaseServiceTest, ListAndDeleteFiles) {
  v1::Codebase cb = Create();
  ASSERT_TRUE(Upload(cb.id(), "d/x", "12").ok());
  ASSERT_TRUE(Upload(cb.id(), "d/y", "345").ok());
  v1::ListFilesRequest l;
  l.set_codebase_id(cb.id());
  l.set_path("/");  // root alias
  auto root = svc_->ListFiles(ctx_, l);
  ASSERT_TRUE(root.ok());
  ASSERT_EQ(root->files_size(), 1);
  EXPECT_TRUE(root->files(0).is_dir());
  l.set_recursive(true);
  EXPECT_EQ(svc_->ListFiles(ctx_, l)->files_size(), 3);
  l.set_path("/etc");  // the codebase's etc, which does not exist
  EXPECT_EQ(svc_->ListFiles(ctx_, l).error().code(), ErrorCode::kNotFound);
  l.set_path("/d");  // a leading '/' is the codebase root
  EXPECT_EQ(svc_->ListFiles(ctx_, l)->files_size(), 2);
  l.set_path("//etc");
  EXPECT_EQ(svc_->ListFiles(ctx_, l).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(svc_->DeleteFile(ctx_, cb.id(), "d", false).error().code(),
            ErrorCode::kFailedPrecondition);  // not empty
  ASSERT_TRUE(svc_->DeleteFile(ctx_, cb.id(), "d", true).ok());
  v1::GetCodebaseRequest g;
  g.set_codebase_id(cb.id());
  auto now = svc_->GetCodebase(ctx_, g);
  EXPECT_EQ(now->size(), 0);
  EXPECT_EQ(now->file_count(), 0);
}

TEST(ValidationTest, CommandsNamesModes) {
  EXPECT_TRUE(ValidateCommand("ls").ok());
  EXPECT_FALSE(ValidateCommand("").ok());
  EXPECT_FALSE(ValidateCommand(std::string("a\0b", 3)).ok());
  EXPECT_FALSE(ValidateCommand(std::string(kMaxCommandBytes + 1, 'x')).ok());
  EXPECT_EQ(*ParseFileMode("0755", 0), 0755u);
  EXPECT_EQ(*ParseFileMode("", 0644), 0644u);
  EXPECT_FALSE(ParseFileMode("0999", 0).ok());
  EXPECT_FALSE(ParseFileMode("17777", 0).ok());
  EXPECT_FALSE(ParseFileMode("rwx", 0).ok());
  EXPECT_EQ(*ValidateFilePath("p", "a/b/", false), "a/b");
  EXPECT_FALSE(ValidateFilePath("p", "a\\b", false).ok());
}

TEST(ConvertTest, Timestamps) {
  google::protobuf::Timestamp ts;
  SetTimestamp(1'700'000'000'123'456'789, &ts);
  EXPECT_EQ(ts.seconds(), 1'700'000'000);
  EXPECT_EQ(ts.nanos(), 123'456'789);
  EXPECT_EQ(TimestampToNs(ts), 1'700'000'000'123'456'789);
  SetTimestamp(0, &ts);
  EXPECT_EQ(ts.seconds(), 0);
  google::protobuf::Duration d;
  SetDuration(1'500'000'000, &d);
  EXPECT_EQ(DurationToNs(d), 1'500'000'000);
}

}  // namespace
}  // namespace agentfense::service
