#include "store/metadata_store.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>

#include <set>
#include <thread>

#include "base/ids.h"
#include "store/test_util.h"

namespace agentfense::store {
namespace {

using testing::TempDir;

CodebaseRecord Codebase(std::string id, std::string owner, int64_t created) {
  CodebaseRecord r;
  r.id = std::move(id);
  r.name = "repo-" + r.id;
  r.owner_id = std::move(owner);
  r.created_at_ns = created;
  r.updated_at_ns = created;
  return r;
}

SandboxRecord Sandbox(std::string id, std::string codebase, int64_t created) {
  SandboxRecord r;
  r.id = std::move(id);
  r.codebase_id = std::move(codebase);
  r.owner_id = "alice";
  r.created_at_ns = created;
  return r;
}

std::string Cb(int n) {
  char buf[32];
  (void)snprintf(buf, sizeof buf, "cb_%016x", n);
  return buf;
}
std::string Sb(int n) {
  char buf[32];
  (void)snprintf(buf, sizeof buf, "sb_%016x", n);
  return buf;
}
std::string Sess(int n) {
  char buf[32];
  (void)snprintf(buf, sizeof buf, "sess_%016x", n);
  return buf;
}

class MetadataStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = MetadataStore::Open(dir_.Sub("meta.db"));
    ASSERT_TRUE(s.ok()) << s.error().ToString();
    store_ = std::move(*s);
  }
  void Reopen() {
    store_.reset();
    auto s = MetadataStore::Open(dir_.Sub("meta.db"));
    ASSERT_TRUE(s.ok()) << s.error().ToString();
    store_ = std::move(*s);
  }
  TempDir dir_;
  std::unique_ptr<MetadataStore> store_;
};

TEST_F(MetadataStoreTest, SchemaIsVersionedAndWal) {
  EXPECT_EQ(*store_->SchemaVersion(), MetadataStore::LatestSchemaVersion());
  Reopen();  // migrations are not re-applied
  EXPECT_EQ(*store_->SchemaVersion(), MetadataStore::LatestSchemaVersion());
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(dir_.Sub("meta.db").c_str(), &raw), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  ASSERT_EQ(sqlite3_prepare_v2(raw, "PRAGMA journal_mode", -1, &st, nullptr), SQLITE_OK);
  ASSERT_EQ(sqlite3_step(st), SQLITE_ROW);
  EXPECT_STREQ(reinterpret_cast<const char*>(sqlite3_column_text(st, 0)), "wal");
  sqlite3_finalize(st);
  sqlite3_close(raw);
}

TEST_F(MetadataStoreTest, DatabaseFilesAreOwnerOnly) {
  ASSERT_TRUE(store_->CreateCodebase(Codebase(Cb(1), "alice", 1)).ok());
  for (const char* suffix : {"", "-wal", "-shm"}) {
    struct stat st;
    ASSERT_EQ(stat(dir_.Sub(std::string("meta.db") + suffix).c_str(), &st), 0) << suffix;
    EXPECT_EQ(st.st_mode & 0077, 0u) << suffix;
  }
  // An existing world-readable file is tightened at the next open.
  store_.reset();
  ASSERT_EQ(chmod(dir_.Sub("meta.db").c_str(), 0644), 0);
  Reopen();
  struct stat st;
  ASSERT_EQ(stat(dir_.Sub("meta.db").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(MetadataStoreTest, RefusesNewerSchema) {
  store_.reset();
  sqlite3* raw = nullptr;
  ASSERT_EQ(sqlite3_open(dir_.Sub("meta.db").c_str(), &raw), SQLITE_OK);
  ASSERT_EQ(
      sqlite3_exec(raw, "INSERT INTO schema_migrations VALUES (999, 0)", nullptr, nullptr, nullptr),
      SQLITE_OK);
  sqlite3_close(raw);
  auto s = MetadataStore::Open(dir_.Sub("meta.db"));
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code(), ErrorCode::kFailedPrecondition);
}

TEST_F(MetadataStoreTest, CodebaseCrudAndErrors) {
  ASSERT_TRUE(store_->CreateCodebase(Codebase(Cb(1), "alice", 100)).ok());
  auto dup = store_->CreateCodebase(Codebase(Cb(1), "bob", 200));
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code(), ErrorCode::kAlreadyExists);
  auto got = store_->GetCodebase(Cb(1));
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->owner_id, "alice");
  EXPECT_EQ(got->name, "repo-" + Cb(1));
  EXPECT_EQ(got->created_at_ns, 100);
  EXPECT_EQ(store_->GetCodebase(Cb(2)).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->GetCodebase("cb_../../x").error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->GetCodebase("").error().code(), ErrorCode::kInvalidArgument);
  CodebaseRecord noname = Codebase(Cb(3), "alice", 1);
  noname.name = "";
  EXPECT_EQ(store_->CreateCodebase(noname).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(store_->CreateCodebase(Codebase(Cb(3), "", 1)).error().code(),
            ErrorCode::kInvalidArgument);

  ASSERT_TRUE(store_->AddCodebaseUsage(Cb(1), 1000, 3, 500).ok());
  ASSERT_TRUE(store_->AddCodebaseUsage(Cb(1), -400, -1, 600).ok());
  got = store_->GetCodebase(Cb(1));
  EXPECT_EQ(got->size, 600);
  EXPECT_EQ(got->file_count, 2);
  EXPECT_EQ(got->updated_at_ns, 600);
  ASSERT_TRUE(store_->AddCodebaseUsage(Cb(1), -5000, -10, 700).ok());  // clamped, not negative
  got = store_->GetCodebase(Cb(1));
  EXPECT_EQ(got->size, 0);
  EXPECT_EQ(got->file_count, 0);
  ASSERT_TRUE(store_->SetCodebaseUsage(Cb(1), 77, 7, 800).ok());
  EXPECT_EQ(store_->GetCodebase(Cb(1))->size, 77);
  EXPECT_EQ(store_->AddCodebaseUsage(Cb(9), 1, 1, 1).error().code(), ErrorCode::kNotFound);

  ASSERT_TRUE(store_->DeleteCodebase(Cb(1)).ok());
  EXPECT_EQ(store_->DeleteCodebase(Cb(1)).error().code(), ErrorCode::kNotFound);
}

TEST_F(MetadataStoreTest, CodebasePaginationVisitsEveryRowOnce) {
  for (int i = 0; i < 23; ++i) {
    // Identical created_at for some rows: the id breaks the tie.
    ASSERT_TRUE(store_->CreateCodebase(Codebase(Cb(i), i % 2 ? "alice" : "bob", i / 3)).ok());
  }
  std::vector<std::string> seen;
  PageRequest req{5, ""};
  int pages = 0;
  do {
    auto page = store_->ListCodebases("", req);
    ASSERT_TRUE(page.ok()) << page.error().ToString();
    ASSERT_LE(page->items.size(), 5u);
    for (auto& c : page->items) seen.push_back(c.id);
    req.page_token = page->next_page_token;
    ++pages;
  } while (!req.page_token.empty());
  EXPECT_EQ(pages, 5);
  ASSERT_EQ(seen.size(), 23u);
  EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), 23u);
  for (int i = 0; i < 23; ++i) EXPECT_EQ(seen[i], Cb(i));  // (created_at, id) order

  auto alice = store_->ListCodebases("alice", {100, ""});
  ASSERT_TRUE(alice.ok());
  EXPECT_EQ(alice->items.size(), 11u);
  EXPECT_TRUE(alice->next_page_token.empty());
  for (auto& c : alice->items) EXPECT_EQ(c.owner_id, "alice");

  EXPECT_EQ(store_->ListCodebases("", {0, ""})->items.size(), 23u);  // default page size 50
  EXPECT_EQ(store_->ListCodebases("", {-1, ""}).error().code(), ErrorCode::kInvalidArgument);
  for (const char* bad : {"x", "p1.zz", "p1.41", "p1.3a3a", "p1.2d3a636227"}) {
    EXPECT_EQ(store_->ListCodebases("", {5, bad}).error().code(), ErrorCode::kInvalidArgument)
        << bad;
  }
}

TEST(PageToken, RoundTripAndRejectsGarbage) {
  auto t = DecodePageToken(EncodePageToken(-42, "sb_00000000000000ab"));
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->first, -42);
  EXPECT_EQ(t->second, "sb_00000000000000ab");
  EXPECT_FALSE(DecodePageToken(EncodePageToken(1, "x'; DROP TABLE")).ok());
  EXPECT_FALSE(DecodePageToken("p1.").ok());
  EXPECT_FALSE(DecodePageToken(std::string(1000, 'a')).ok());
  EXPECT_EQ(*EffectivePageSize(5000), kMaxPageSize);
}

TEST_F(MetadataStoreTest, SandboxRoundTripsEveryField) {
  ASSERT_TRUE(store_->CreateCodebase(Codebase(Cb(1), "alice", 1)).ok());
  SandboxRecord sb = Sandbox(Sb(1), Cb(1), 10);
  sb.rules = {
      {"**/*", 0, 2, 0}, {"/secrets/**", 0, 0, 100}, {"/out", 1, 3, -5}, {"/a.txt", 2, 1, 7}};
  sb.labels = {{"team", "infra"}, {"empty", ""}, {"ünï", "cödé"}};
  sb.expires_at_ns = 5000;
  sb.runtime = RuntimeKind::kDocker;
  sb.image = "python:3.12-slim";
  sb.resources = {512 << 20, 50000, 512, 100};
  sb.sync_mode = "on_stop";
  sb.network = true;
  sb.egress_allow = {"github.com", "udp:10.0.0.53:53"};
  sb.delta_quota_bytes = 1 << 30;
  sb.delta_quota_inodes = 12345;
  sb.env = {{"PATH", "/usr/bin"}, {"X", "a=b c"}};
  sb.supervisor_pid = 4242;
  sb.supervisor_start_ticks = 99;
  sb.supervisor_socket = "/run/agentfense/sb.sock";
  sb.runtime_state = R"({"container":"abc"})";
  ASSERT_TRUE(store_->CreateSandbox(sb).ok());
  Reopen();  // everything survives a restart
  auto got = store_->GetSandbox(Sb(1));
  ASSERT_TRUE(got.ok()) << got.error().ToString();
  EXPECT_EQ(got->codebase_id, Cb(1));
  EXPECT_EQ(got->owner_id, "alice");
  EXPECT_EQ(got->rules, sb.rules);
  EXPECT_EQ(got->status, SandboxStatus::kPending);
  EXPECT_EQ(got->labels, sb.labels);
  EXPECT_EQ(got->created_at_ns, 10);
  EXPECT_EQ(got->expires_at_ns, 5000);
  EXPECT_EQ(got->runtime, RuntimeKind::kDocker);
  EXPECT_EQ(got->image, sb.image);
  EXPECT_EQ(got->resources, sb.resources);
  EXPECT_EQ(got->sync_mode, "on_stop");
  EXPECT_TRUE(got->network);
  EXPECT_FALSE(got->egress_any_public);
  EXPECT_EQ(got->egress_allow, sb.egress_allow);
  EXPECT_EQ(got->delta_quota_bytes, 1 << 30);
  EXPECT_EQ(got->delta_quota_inodes, 12345);
  EXPECT_EQ(got->env, sb.env);
  EXPECT_EQ(got->supervisor_pid, 4242);
  EXPECT_EQ(got->supervisor_start_ticks, 99);
  EXPECT_EQ(got->supervisor_socket, sb.supervisor_socket);
  EXPECT_EQ(got->runtime_state, sb.runtime_state);
  EXPECT_GT(got->updated_at_ns, 0);

  got->status = SandboxStatus::kError;
  got->error_reason = "bwrap: exit 1";
  got->supervisor_pid = 0;
  got->codebase_id = Cb(7);  // immutable: ignored by UpdateSandbox
  ASSERT_TRUE(store_->UpdateSandbox(*got).ok());
  auto again = store_->GetSandbox(Sb(1));
  EXPECT_EQ(again->status, SandboxStatus::kError);
  EXPECT_EQ(again->error_reason, "bwrap: exit 1");
  EXPECT_EQ(again->supervisor_pid, 0);
  EXPECT_EQ(again->codebase_id, Cb(1));
  SandboxRecord ghost = Sandbox(Sb(2), Cb(1), 1);
  EXPECT_EQ(store_->UpdateSandbox(ghost).error().code(), ErrorCode::kNotFound);
}

TEST_F(MetadataStoreTest, SandboxErrors) {
  EXPECT_EQ(store_->CreateSandbox(Sandbox(Sb(1), Cb(1), 1)).error().code(), ErrorCode::kNotFound);
  ASSERT_TRUE(store_->CreateCodebase(Codebase(Cb(1), "alice", 1)).ok());
  ASSERT_TRUE(store_->CreateSandbox(Sandbox(Sb(1), Cb(1), 1)).ok());
  EXPECT_EQ(store_->CreateSandbox(Sandbox(Sb(1), Cb(1), 1)).error().code(),
            ErrorCode::kAlreadyExists);
  EXPECT_EQ(store_->CreateSandbox(Sandbox("sb_1", Cb(1), 1)).error().code(),
            ErrorCode::kNotFound);  // a malformed id (base/ids.h)
  SandboxRecord bad_rule = Sandbox(Sb(2), Cb(1), 1);
  bad_rule.rules = {{"x", 9, 0, 0}};
  EXPECT_EQ(store_->CreateSandbox(bad_rule).error().code(), ErrorCode::kInvalidArgument);
  SandboxRecord bad_utf8 = Sandbox(Sb(3), Cb(1), 1);
  bad_utf8.labels = {{"k", "\xff\xfe"}};
  EXPECT_EQ(store_->CreateSandbox(bad_utf8).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(store_->GetSandbox(Sb(9)).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->GetSandbox("../sb").error().code(), ErrorCode::kNotFound);
  // A codebase in use cannot lose its row.
  auto del = store_->DeleteCodebase(Cb(1));
  ASSERT_FALSE(del.ok());
  EXPECT_EQ(del.error().code(), ErrorCode::kFailedPrecondition) << del.error().ToString();
  ASSERT_TRUE(store_->DeleteSandbox(Sb(1)).ok());
  EXPECT_EQ(store_->DeleteSandbox(Sb(1)).error().code(), ErrorCode::kNotFound);
  EXPECT_TRUE(store_->DeleteCodebase(Cb(1)).ok());
}

TEST_F(MetadataStoreTest, TransitionIsCompareAndSet) {
  ASSERT_TRUE(store_->CreateCodebase(Codebase(Cb(1), "alice", 1)).ok());
  ASSERT_TRUE(store_->CreateSandbox(Sandbox(Sb(1), Cb(1), 1)).ok());
  ASSERT_TRUE(
      store_->TransitionSandbox(Sb(1), SandboxStatus::kPending, SandboxStatus::kRunning, "", 1000)
          .ok());
  auto twice =
      store_->TransitionSandbox(Sb(1), SandboxStatus::kPending, SandboxStatus::kRunning, "", 1001);
  ASSERT_FALSE(twice.ok());
  EXPECT_EQ(twice.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_NE(twice.error().message().find("running"), std::string::npos);
  ASSERT_TRUE(
      store_->TransitionSandbox(Sb(1), SandboxStatus::kRunning, SandboxStatus::kStopped, "", 2000)
          .ok());
  ASSERT_TRUE(store_
                  ->TransitionSandbox(Sb(1), SandboxStatus::kStopped, SandboxStatus::kError,
                                      "restart failed: no bwrap", 3000)
                  .ok());
  auto got = store_->GetSandbox(Sb(1));
  EXPECT_EQ(got->started_at_ns, 1000);
  EXPECT_EQ(got->stopped_at_ns, 2000);
  EXPECT_EQ(got->status, SandboxStatus::kError);
  EXPECT_EQ(got->error_reason, "restart failed: no bwrap");
  EXPECT_EQ(store_->TransitionSandbox(Sb(5), SandboxStatus::kError, SandboxStatus::kRunning, "", 1)
                .error()
                .code(),
            ErrorCode::kNotFound);

  // Two threads race to start a stopped sandbox: exactly one wins.
  ASSERT_TRUE(
      store_->TransitionSandbox(Sb(1), SandboxStatus::kError, SandboxStatus::kStopped, "", 4000)
          .ok());
  std::atomic<int> wins{0};
  std::vector<std::thread> threads;
  threads.reserve(8);
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] {
      if (store_
              ->TransitionSandbox(Sb(1), SandboxStatus::kStopped, SandboxStatus::kRunning, "", 5000)
              .ok()) {
        ++wins;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(wins.load(), 1);
}

TEST_F(MetadataStoreTest, ListFilterCountAndExpiry) {
  ASSERT_TRUE(store_->CreateCodebase(Codebase(Cb(1), "alice", 1)).ok());
  ASSERT_TRUE(store_->CreateCodebase(Codebase(Cb(2), "bob", 1)).ok());
  for (int i = 0; i < 12; ++i) {
    SandboxRecord sb = Sandbox(Sb(i), i < 8 ? Cb(1) : Cb(2), 100 + i);
    sb.owner_id = i < 8 ? "alice" : "bob";
    sb.status = i % 3 == 0 ? SandboxStatus::kRunning : SandboxStatus::kStopped;
    sb.expires_at_ns = i < 4 ? 1000 + i : 0;
    ASSERT_TRUE(store_->CreateSandbox(sb).ok());
  }
  EXPECT_EQ(*store_->CountSandboxes({"", "alice", {}}), 8);
  EXPECT_EQ(*store_->CountSandboxes({"", "bob", {}}), 4);
  EXPECT_EQ(*store_->CountSandboxes({"", "", {SandboxStatus::kRunning}}), 4);
  EXPECT_EQ(
      *store_->CountSandboxes({Cb(1), "", {SandboxStatus::kRunning, SandboxStatus::kPending}}), 3);
  EXPECT_EQ(store_->CountSandboxes({"bad", "", {}}).error().code(), ErrorCode::kNotFound);

  std::vector<std::string> seen;
  PageRequest req{3, ""};
  do {
    auto page = store_->ListSandboxes({Cb(1), "", {}}, req);
    ASSERT_TRUE(page.ok());
    for (auto& s : page->items) seen.push_back(s.id);
    req.page_token = page->next_page_token;
  } while (!req.page_token.empty());
  ASSERT_EQ(seen.size(), 8u);
  for (int i = 0; i < 8; ++i) EXPECT_EQ(seen[i], Sb(i));
  EXPECT_EQ(store_->AllSandboxes({"", "", {SandboxStatus::kStopped}})->size(), 8u);

  auto expired = store_->ListExpiredSandboxes(1002);
  ASSERT_TRUE(expired.ok());
  ASSERT_EQ(expired->size(), 3u);
  EXPECT_EQ((*expired)[0].id, Sb(0));
  EXPECT_EQ((*expired)[2].id, Sb(2));
  EXPECT_TRUE(store_->ListExpiredSandboxes(999)->empty());
}

TEST_F(MetadataStoreTest, SessionsFollowTheirSandbox) {
  ASSERT_TRUE(store_->CreateCodebase(Codebase(Cb(1), "alice", 1)).ok());
  ASSERT_TRUE(store_->CreateSandbox(Sandbox(Sb(1), Cb(1), 1)).ok());
  SessionRecord s{Sess(1), Sb(1), SessionStatus::kActive, "/bin/bash", 10, 0};
  ASSERT_TRUE(store_->CreateSession(s).ok());
  EXPECT_EQ(store_->CreateSession(s).error().code(), ErrorCode::kAlreadyExists);
  SessionRecord orphan{Sess(2), Sb(2), SessionStatus::kActive, "sh", 10, 0};
  EXPECT_EQ(store_->CreateSession(orphan).error().code(), ErrorCode::kNotFound);
  ASSERT_TRUE(store_->CreateSession({Sess(3), Sb(1), SessionStatus::kActive, "sh", 11, 0}).ok());
  Reopen();
  auto list = store_->ListSessions(Sb(1));
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].shell, "/bin/bash");
  ASSERT_TRUE(store_->CloseSession(Sess(1), 50).ok());
  ASSERT_TRUE(store_->CloseSession(Sess(1), 60).ok());  // idempotent, keeps the first time
  auto got = store_->GetSession(Sess(1));
  EXPECT_EQ(got->status, SessionStatus::kClosed);
  EXPECT_EQ(got->closed_at_ns, 50);
  EXPECT_EQ(*store_->CloseSessionsOfSandbox(Sb(1), 70), 1);
  EXPECT_EQ(store_->GetSession(Sess(3))->closed_at_ns, 70);
  EXPECT_EQ(store_->GetSession(Sess(9)).error().code(), ErrorCode::kNotFound);
  EXPECT_EQ(store_->GetSession("sess_x").error().code(), ErrorCode::kNotFound);
  ASSERT_TRUE(store_->DeleteSession(Sess(3)).ok());
  EXPECT_EQ(store_->DeleteSession(Sess(3)).error().code(), ErrorCode::kNotFound);
  ASSERT_TRUE(store_->DeleteSandbox(Sb(1)).ok());
  EXPECT_EQ(store_->GetSession(Sess(1)).error().code(), ErrorCode::kNotFound);  // cascaded
}

TEST_F(MetadataStoreTest, AuditFiltersAndPages) {
  for (int i = 0; i < 30; ++i) {
    AuditEventRecord ev;
    ev.sandbox_id = i % 2 ? Sb(1) : Sb(2);
    ev.time_ns = 1000 + i;
    ev.kind = i % 5 == 0 ? "lifecycle" : "denied";
    ev.path = i % 3 == 0 ? "/secrets/k%" + std::to_string(i) : "/src/x" + std::to_string(i);
    ev.operation = "open";
    ev.rule = "/secrets/**=none@100";
    ev.command = "cat";
    auto seq = store_->AppendAudit(ev);
    ASSERT_TRUE(seq.ok());
    EXPECT_EQ(*seq, i + 1);
  }
  AuditEventRecord bad;
  EXPECT_EQ(store_->AppendAudit(bad).error().code(), ErrorCode::kInvalidArgument);
  Reopen();
  AuditFilter f;
  f.sandbox_id = Sb(1);
  f.kind = "denied";
  std::vector<int64_t> seqs;
  PageRequest req{4, ""};
  do {
    auto page = store_->QueryAudit(f, req);
    ASSERT_TRUE(page.ok()) << page.error().ToString();
    for (auto& e : page->items) {
      EXPECT_EQ(e.sandbox_id, Sb(1));
      EXPECT_EQ(e.kind, "denied");
      seqs.push_back(e.seq);
    }
    req.page_token = page->next_page_token;
  } while (!req.page_token.empty());
  EXPECT_EQ(seqs.size(), 12u);  // 15 odd i, minus i in {5,15,25}
  EXPECT_TRUE(std::is_sorted(seqs.begin(), seqs.end()));

  AuditFilter prefix;
  prefix.path_prefix = "/secrets/k%";  // '%' is literal, not a LIKE wildcard
  EXPECT_EQ(store_->QueryAudit(prefix, {100, ""})->items.size(), 10u);
  prefix.path_prefix = "/secrets/k_";
  EXPECT_EQ(store_->QueryAudit(prefix, {100, ""})->items.size(), 0u);
  AuditFilter window;
  window.since_ns = 1010;
  window.until_ns = 1020;
  EXPECT_EQ(store_->QueryAudit(window, {100, ""})->items.size(), 10u);
  EXPECT_EQ(*store_->PruneAudit(1010), 10);
  EXPECT_EQ(store_->QueryAudit({}, {100, ""})->items.size(), 20u);
}

TEST_F(MetadataStoreTest, AuditIngestAdvancesTheOffsetWithTheEvents) {
  ASSERT_TRUE(store_->CreateCodebase(Codebase(Cb(1), "alice", 1)).ok());
  ASSERT_TRUE(store_->CreateSandbox(Sandbox(Sb(1), Cb(1), 10)).ok());
  EXPECT_EQ(*store_->AuditIngestOffset(Sb(1)), 0);
  std::vector<AuditEventRecord> batch(3);
  for (auto& ev : batch) {
    ev.kind = "denied";
    ev.path = "/secrets/k";
    ev.operation = "open";
  }
  ASSERT_TRUE(store_->IngestAudit(Sb(1), batch, 300).ok());
  ASSERT_TRUE(store_->IngestAudit(Sb(1), {}, 450).ok());  // lines that were not events
  Reopen();  // the offset survives a restart with the events
  EXPECT_EQ(*store_->AuditIngestOffset(Sb(1)), 450);
  AuditFilter f;
  f.sandbox_id = Sb(1);
  auto page = store_->QueryAudit(f, {100, ""});
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->items.size(), 3u);
  EXPECT_EQ(page->items[0].sandbox_id, Sb(1));  // the batch's sandbox, whatever the records say

  // A bad offset is refused before anything is written.
  EXPECT_EQ(store_->IngestAudit(Sb(1), batch, -1).error().code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(*store_->AuditIngestOffset(Sb(1)), 450);
  EXPECT_EQ(store_->QueryAudit(f, {100, ""})->items.size(), 3u);
  EXPECT_EQ(store_->IngestAudit("../x", {}, 1).error().code(), ErrorCode::kNotFound);

  // The offset goes with the sandbox (its audit file is removed with it); its events stay.
  ASSERT_TRUE(store_->DeleteSandbox(Sb(1)).ok());
  EXPECT_EQ(*store_->AuditIngestOffset(Sb(1)), 0);
  EXPECT_EQ(store_->QueryAudit(f, {100, ""})->items.size(), 3u);
}

TEST_F(MetadataStoreTest, ConcurrentWritersFromManyThreads) {
  ASSERT_TRUE(store_->CreateCodebase(Codebase(Cb(1), "alice", 1)).ok());
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        EXPECT_TRUE(store_->AddCodebaseUsage(Cb(1), 10, 1, 1).ok());
        AuditEventRecord ev;
        ev.sandbox_id = Sb(t);
        ev.kind = "denied";
        EXPECT_TRUE(store_->AppendAudit(ev).ok());
      }
    });
  }
  for (auto& th : threads) th.join();
  auto got = store_->GetCodebase(Cb(1));
  EXPECT_EQ(got->size, 2000);
  EXPECT_EQ(got->file_count, 200);
  EXPECT_EQ(store_->QueryAudit({}, {1000, ""})->items.size(), 200u);
}

TEST_F(MetadataStoreTest, TwoConnectionsSeeEachOther) {
  // The CLI and the server may open the same file: WAL + busy timeout make that safe.
  auto other = MetadataStore::Open(dir_.Sub("meta.db"));
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(store_->CreateCodebase(Codebase(Cb(1), "alice", 1)).ok());
  EXPECT_TRUE((*other)->GetCodebase(Cb(1)).ok());
}

}  // namespace
}  // namespace agentfense::store
