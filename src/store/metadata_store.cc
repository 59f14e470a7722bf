// MetadataStore: opening, migrations, page tokens, codebases, sessions and audit. Sandboxes are in
// sandbox_store.cc.
#include "store/metadata_store.h"

#include <cinttypes>
#include <cstdio>
#include <limits>

#include "base/ids.h"
#include "store/schema.h"
#include "store/store_internal.h"

namespace agentfense::store {

using internal::RollbackGuard;

// --- page tokens ---------------------------------------------------------------------------

std::string EncodePageToken(int64_t key, std::string_view id) {
  // Hex keeps the token URL- and JSON-safe without escaping; "p1." versions the format.
  std::string plain = std::to_string(key) + ":" + std::string(id);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "p1.";
  for (unsigned char c : plain) {
    out += kHex[c >> 4];
    out += kHex[c & 0xf];
  }
  return out;
}

Result<std::pair<int64_t, std::string>> DecodePageToken(std::string_view token) {
  const Error bad(ErrorCode::kInvalidArgument, "malformed page_token");
  if (token.size() < 3 || token.substr(0, 3) != "p1." || token.size() > 3 + 2 * 128) return bad;
  std::string_view hex = token.substr(3);
  if (hex.size() % 2 != 0) return bad;
  std::string plain;
  for (size_t i = 0; i < hex.size(); i += 2) {
    auto nibble = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      return -1;
    };
    int hi = nibble(hex[i]);
    int lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return bad;
    plain += static_cast<char>(hi << 4 | lo);
  }
  size_t colon = plain.find(':');
  if (colon == std::string::npos || colon == 0) return bad;
  int64_t key = 0;
  bool negative = plain[0] == '-';
  for (size_t i = negative ? 1 : 0; i < colon; ++i) {
    char c = plain[i];
    if (c < '0' || c > '9') return bad;
    if (key > (std::numeric_limits<int64_t>::max() - (c - '0')) / 10) return bad;
    key = key * 10 + (c - '0');
  }
  if (negative) key = -key;
  std::string id = plain.substr(colon + 1);
  for (char c : id) {  // ids are [a-z0-9_]; anything else was not produced by us
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) return bad;
  }
  return std::make_pair(key, std::move(id));
}

Result<int32_t> EffectivePageSize(int32_t requested) {
  if (requested < 0) return Error(ErrorCode::kInvalidArgument, "page_size must not be negative");
  if (requested == 0) return kDefaultPageSize;
  return std::min(requested, kMaxPageSize);
}

// --- opening and migrations ----------------------------------------------------------------

Result<std::unique_ptr<MetadataStore>> MetadataStore::Open(const std::string& path) {
  AF_ASSIGN_OR_RETURN(Database db, Database::Open(path));
  std::unique_ptr<MetadataStore> store(new MetadataStore(std::move(db)));
  {
    std::lock_guard lock(store->mu_);
    AF_RETURN_IF_ERROR(store->Migrate());
  }
  return store;
}

int MetadataStore::LatestSchemaVersion() { return Migrations().back().version; }

Status MetadataStore::Migrate() {
  AF_RETURN_IF_ERROR(
      db_.Exec("CREATE TABLE IF NOT EXISTS schema_migrations ("
               " version INTEGER PRIMARY KEY NOT NULL, applied_at_ns INTEGER NOT NULL);"));
  AF_ASSIGN_OR_RETURN(Statement q, db_.Prepare("SELECT COALESCE(MAX(version), 0) FROM "
                                               "schema_migrations"));
  AF_ASSIGN_OR_RETURN(bool row, q.Step());
  int current = row ? static_cast<int>(q.ColumnInt(0)) : 0;
  q.Reset();
  if (current > LatestSchemaVersion()) {
    return Error(ErrorCode::kFailedPrecondition, "database schema version " +
                                                     std::to_string(current) +
                                                     " is newer than this build understands (" +
                                                     std::to_string(LatestSchemaVersion()) + ")");
  }
  for (const Migration& m : Migrations()) {
    if (m.version <= current) continue;
    // BEGIN IMMEDIATE takes the write lock up front, so two processes opening a fresh file at
    // once serialise here instead of both applying migration 1.
    AF_RETURN_IF_ERROR(db_.Exec("BEGIN IMMEDIATE"));
    RollbackGuard guard(db_);
    AF_ASSIGN_OR_RETURN(Statement again, db_.Prepare("SELECT 1 FROM schema_migrations WHERE "
                                                     "version = ?1"));
    AF_RETURN_IF_ERROR(again.BindInt(1, m.version));
    AF_ASSIGN_OR_RETURN(bool done, again.Step());
    again.Reset();
    if (done) continue;  // another process applied it meanwhile; guard rolls back
    AF_RETURN_IF_ERROR(db_.Exec(m.sql));
    AF_ASSIGN_OR_RETURN(Statement rec, db_.Prepare("INSERT INTO schema_migrations(version, "
                                                   "applied_at_ns) VALUES (?1, ?2)"));
    AF_RETURN_IF_ERROR(rec.BindInt(1, m.version));
    AF_RETURN_IF_ERROR(rec.BindInt(2, internal::NowNs()));
    AF_RETURN_IF_ERROR(rec.Run());
    AF_RETURN_IF_ERROR(guard.Commit());
  }
  return OkStatus();
}

Result<int> MetadataStore::SchemaVersion() {
  std::lock_guard lock(mu_);
  AF_ASSIGN_OR_RETURN(ScopedStmt q, Stmt("SELECT COALESCE(MAX(version), 0) FROM "
                                         "schema_migrations"));
  AF_ASSIGN_OR_RETURN(bool row, q->Step());
  return row ? static_cast<int>(q->ColumnInt(0)) : 0;
}

Result<ScopedStmt> MetadataStore::Stmt(const char* sql) {
  auto it = stmts_.find(sql);
  if (it == stmts_.end()) {
    AF_ASSIGN_OR_RETURN(Statement s, db_.Prepare(sql));
    it = stmts_.emplace(sql, std::move(s)).first;
  }
  it->second.Reset();
  return ScopedStmt(&it->second);
}

// --- codebases -----------------------------------------------------------------------------

namespace {

constexpr char kCodebaseColumns[] =
    "id, name, owner_id, size, file_count, created_at_ns, updated_at_ns";

CodebaseRecord ReadCodebase(const Statement& s) {
  CodebaseRecord r;
  r.id = s.ColumnText(0);
  r.name = s.ColumnText(1);
  r.owner_id = s.ColumnText(2);
  r.size = s.ColumnInt(3);
  r.file_count = s.ColumnInt(4);
  r.created_at_ns = s.ColumnInt(5);
  r.updated_at_ns = s.ColumnInt(6);
  return r;
}

Error CodebaseNotFound(std::string_view id) {
  return Error(ErrorCode::kNotFound, "codebase " + std::string(id) + " not found");
}

}  // namespace

Status MetadataStore::CreateCodebase(const CodebaseRecord& rec) {
  AF_RETURN_IF_ERROR(ValidateCodebaseId(rec.id));
  if (rec.name.empty()) return Error(ErrorCode::kInvalidArgument, "codebase name is empty");
  if (rec.owner_id.empty()) return Error(ErrorCode::kInvalidArgument, "owner_id is empty");
  std::lock_guard lock(mu_);
  AF_ASSIGN_OR_RETURN(ScopedStmt s,
                      Stmt("INSERT INTO codebases(id, name, owner_id, size, file_count, "
                           "created_at_ns, updated_at_ns) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)"));
  AF_RETURN_IF_ERROR(s->BindText(1, rec.id));
  AF_RETURN_IF_ERROR(s->BindText(2, rec.name));
  AF_RETURN_IF_ERROR(s->BindText(3, rec.owner_id));
  AF_RETURN_IF_ERROR(s->BindInt(4, std::max<int64_t>(rec.size, 0)));
  AF_RETURN_IF_ERROR(s->BindInt(5, std::max<int64_t>(rec.file_count, 0)));
  AF_RETURN_IF_ERROR(s->BindInt(6, rec.created_at_ns));
  AF_RETURN_IF_ERROR(s->BindInt(7, rec.updated_at_ns ? rec.updated_at_ns : rec.created_at_ns));
  auto st = s->Run();
  if (!st.ok() && st.error().code() == ErrorCode::kAlreadyExists) {
    return Error(ErrorCode::kAlreadyExists, "codebase " + rec.id + " already exists");
  }
  return st;
}

Result<CodebaseRecord> MetadataStore::GetCodebase(std::string_view id) {
  AF_RETURN_IF_ERROR(ValidateCodebaseId(id));
  std::lock_guard lock(mu_);
  static const std::string sql =
      std::string("SELECT ") + kCodebaseColumns + " FROM codebases WHERE id = ?1";
  AF_ASSIGN_OR_RETURN(ScopedStmt s, Stmt(sql.c_str()));
  AF_RETURN_IF_ERROR(s->BindText(1, id));
  AF_ASSIGN_OR_RETURN(bool row, s->Step());
  if (!row) return CodebaseNotFound(id);
  return ReadCodebase(*s);
}

Result<Page<CodebaseRecord>> MetadataStore::ListCodebases(std::string_view owner_id,
                                                          const PageRequest& page) {
  AF_ASSIGN_OR_RETURN(int32_t size, EffectivePageSize(page.page_size));
  int64_t after_created = std::numeric_limits<int64_t>::min();
  std::string after_id;
  if (!page.page_token.empty()) {
    AF_ASSIGN_OR_RETURN(auto key, DecodePageToken(page.page_token));
    after_created = key.first;
    after_id = std::move(key.second);
  }
  std::lock_guard lock(mu_);
  static const std::string sql = std::string("SELECT ") + kCodebaseColumns +
                                 " FROM codebases WHERE (?1 = '' OR owner_id = ?1)"
                                 " AND (created_at_ns, id) > (?2, ?3)"
                                 " ORDER BY created_at_ns, id LIMIT ?4";
  AF_ASSIGN_OR_RETURN(ScopedStmt s, Stmt(sql.c_str()));
  AF_RETURN_IF_ERROR(s->BindText(1, owner_id));
  AF_RETURN_IF_ERROR(s->BindInt(2, after_created));
  AF_RETURN_IF_ERROR(s->BindText(3, after_id));
  AF_RETURN_IF_ERROR(s->BindInt(4, int64_t{size} + 1));  // one extra row says "there is more"
  Page<CodebaseRecord> out;
  while (true) {
    AF_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    out.items.push_back(ReadCodebase(*s));
  }
  if (out.items.size() > static_cast<size_t>(size)) {
    out.items.pop_back();
    const CodebaseRecord& last = out.items.back();
    out.next_page_token = EncodePageToken(last.created_at_ns, last.id);
  }
  return out;
}

Status MetadataStore::DeleteCodebase(std::string_view id) {
  AF_RETURN_IF_ERROR(ValidateCodebaseId(id));
  std::lock_guard lock(mu_);
  // Checked explicitly for a clear error; the RESTRICT foreign key stays as the backstop (SQLite
  // reports its violation without a distinguishing extended code).
  {
    AF_ASSIGN_OR_RETURN(ScopedStmt q,
                        Stmt("SELECT COUNT(*) FROM sandboxes WHERE codebase_id = ?1"));
    AF_RETURN_IF_ERROR(q->BindText(1, id));
    AF_ASSIGN_OR_RETURN(bool row, q->Step());
    int64_t users = row ? q->ColumnInt(0) : 0;
    if (users > 0) {
      return Error(ErrorCode::kFailedPrecondition, "codebase " + std::string(id) + " is used by " +
                                                       std::to_string(users) + " sandbox(es)");
    }
  }
  AF_ASSIGN_OR_RETURN(ScopedStmt s, Stmt("DELETE FROM codebases WHERE id = ?1"));
  AF_RETURN_IF_ERROR(s->BindText(1, id));
  AF_RETURN_IF_ERROR(s->Run());
  if (db_.Changes() == 0) return CodebaseNotFound(id);
  return OkStatus();
}

Status MetadataStore::AddCodebaseUsage(std::string_view id, int64_t delta_bytes,
                                       int64_t delta_files, int64_t now_ns) {
  AF_RETURN_IF_ERROR(ValidateCodebaseId(id));
  std::lock_guard lock(mu_);
  AF_ASSIGN_OR_RETURN(ScopedStmt s, Stmt("UPDATE codebases SET size = MAX(size + ?2, 0),"
                                         " file_count = MAX(file_count + ?3, 0), updated_at_ns = ?4"
                                         " WHERE id = ?1"));
  AF_RETURN_IF_ERROR(s->BindText(1, id));
  AF_RETURN_IF_ERROR(s->BindInt(2, delta_bytes));
  AF_RETURN_IF_ERROR(s->BindInt(3, delta_files));
  AF_RETURN_IF_ERROR(s->BindInt(4, now_ns));
  AF_RETURN_IF_ERROR(s->Run());
  if (db_.Changes() == 0) return CodebaseNotFound(id);
  return OkStatus();
}

Status MetadataStore::SetCodebaseUsage(std::string_view id, int64_t bytes, int64_t files,
                                       int64_t now_ns) {
  AF_RETURN_IF_ERROR(ValidateCodebaseId(id));
  if (bytes < 0 || files < 0) return Error(ErrorCode::kInvalidArgument, "negative usage");
  std::lock_guard lock(mu_);
  AF_ASSIGN_OR_RETURN(ScopedStmt s, Stmt("UPDATE codebases SET size = ?2, file_count = ?3,"
                                         " updated_at_ns = ?4 WHERE id = ?1"));
  AF_RETURN_IF_ERROR(s->BindText(1, id));
  AF_RETURN_IF_ERROR(s->BindInt(2, bytes));
  AF_RETURN_IF_ERROR(s->BindInt(3, files));
  AF_RETURN_IF_ERROR(s->BindInt(4, now_ns));
  AF_RETURN_IF_ERROR(s->Run());
  if (db_.Changes() == 0) return CodebaseNotFound(id);
  return OkStatus();
}

// --- sessions ------------------------------------------------------------------------------

namespace {

SessionRecord ReadSession(const Statement& s) {
  SessionRecord r;
  r.id = s.ColumnText(0);
  r.sandbox_id = s.ColumnText(1);
  r.status = s.ColumnText(2) == "closed" ? SessionStatus::kClosed : SessionStatus::kActive;
  r.shell = s.ColumnText(3);
  r.created_at_ns = s.ColumnInt(4);
  r.closed_at_ns = s.ColumnInt(5);
  return r;
}

Error SessionNotFound(std::string_view id) {
  return Error(ErrorCode::kNotFound, "session " + std::string(id) + " not found");
}

}  // namespace

Status MetadataStore::CreateSession(const SessionRecord& rec) {
  AF_RETURN_IF_ERROR(ValidateSessionId(rec.id));
  AF_RETURN_IF_ERROR(ValidateSandboxId(rec.sandbox_id));
  std::lock_guard lock(mu_);
  AF_ASSIGN_OR_RETURN(ScopedStmt s,
                      Stmt("INSERT INTO sessions(id, sandbox_id, status, shell, created_at_ns,"
                           " closed_at_ns) SELECT ?1, ?2, ?3, ?4, ?5, ?6"
                           " WHERE EXISTS (SELECT 1 FROM sandboxes WHERE id = ?2)"));
  AF_RETURN_IF_ERROR(s->BindText(1, rec.id));
  AF_RETURN_IF_ERROR(s->BindText(2, rec.sandbox_id));
  AF_RETURN_IF_ERROR(s->BindText(3, rec.status == SessionStatus::kClosed ? "closed" : "active"));
  AF_RETURN_IF_ERROR(s->BindText(4, rec.shell));
  AF_RETURN_IF_ERROR(s->BindInt(5, rec.created_at_ns));
  AF_RETURN_IF_ERROR(s->BindInt(6, rec.closed_at_ns));
  auto st = s->Run();
  if (!st.ok()) {
    if (st.error().code() == ErrorCode::kAlreadyExists) {
      return Error(ErrorCode::kAlreadyExists, "session " + rec.id + " already exists");
    }
    return st;
  }
  if (db_.Changes() == 0) {
    return Error(ErrorCode::kNotFound, "sandbox " + rec.sandbox_id + " not found");
  }
  return OkStatus();
}

Result<SessionRecord> MetadataStore::GetSession(std::string_view id) {
  AF_RETURN_IF_ERROR(ValidateSessionId(id));
  std::lock_guard lock(mu_);
  AF_ASSIGN_OR_RETURN(ScopedStmt s, Stmt("SELECT id, sandbox_id, status, shell, created_at_ns,"
                                         " closed_at_ns FROM sessions WHERE id = ?1"));
  AF_RETURN_IF_ERROR(s->BindText(1, id));
  AF_ASSIGN_OR_RETURN(bool row, s->Step());
  if (!row) return SessionNotFound(id);
  return ReadSession(*s);
}

Result<std::vector<SessionRecord>> MetadataStore::ListSessions(std::string_view sandbox_id) {
  AF_RETURN_IF_ERROR(ValidateSandboxId(sandbox_id));
  std::lock_guard lock(mu_);
  AF_ASSIGN_OR_RETURN(ScopedStmt s,
                      Stmt("SELECT id, sandbox_id, status, shell, created_at_ns, closed_at_ns"
                           " FROM sessions WHERE sandbox_id = ?1 ORDER BY created_at_ns, id"));
  AF_RETURN_IF_ERROR(s->BindText(1, sandbox_id));
  std::vector<SessionRecord> out;
  while (true) {
    AF_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    out.push_back(ReadSession(*s));
  }
  return out;
}

Status MetadataStore::CloseSession(std::string_view id, int64_t now_ns) {
  AF_RETURN_IF_ERROR(ValidateSessionId(id));
  std::lock_guard lock(mu_);
  AF_ASSIGN_OR_RETURN(ScopedStmt s,
                      Stmt("UPDATE sessions SET status = 'closed', closed_at_ns ="
                           " CASE WHEN status = 'closed' THEN closed_at_ns ELSE ?2 END"
                           " WHERE id = ?1"));
  AF_RETURN_IF_ERROR(s->BindText(1, id));
  AF_RETURN_IF_ERROR(s->BindInt(2, now_ns));
  AF_RETURN_IF_ERROR(s->Run());
  if (db_.Changes() == 0) return SessionNotFound(id);
  return OkStatus();
}

Result<int64_t> MetadataStore::CloseSessionsOfSandbox(std::string_view sandbox_id, int64_t now_ns) {
  AF_RETURN_IF_ERROR(ValidateSandboxId(sandbox_id));
  std::lock_guard lock(mu_);
  AF_ASSIGN_OR_RETURN(ScopedStmt s, Stmt("UPDATE sessions SET status = 'closed', closed_at_ns = ?2"
                                         " WHERE sandbox_id = ?1 AND status = 'active'"));
  AF_RETURN_IF_ERROR(s->BindText(1, sandbox_id));
  AF_RETURN_IF_ERROR(s->BindInt(2, now_ns));
  AF_RETURN_IF_ERROR(s->Run());
  return db_.Changes();
}

Status MetadataStore::DeleteSession(std::string_view id) {
  AF_RETURN_IF_ERROR(ValidateSessionId(id));
  std::lock_guard lock(mu_);
  AF_ASSIGN_OR_RETURN(ScopedStmt s, Stmt("DELETE FROM sessions WHERE id = ?1"));
  AF_RETURN_IF_ERROR(s->BindText(1, id));
  AF_RETURN_IF_ERROR(s->Run());
  if (db_.Changes() == 0) return SessionNotFound(id);
  return OkStatus();
}

// --- audit ---------------------------------------------------------------------------------

Result<int64_t> MetadataStore::AppendAudit(const AuditEventRecord& ev) {
  // Lifecycle events may concern a sandbox that failed creation, so only the shape is checked.
  if (!ev.sandbox_id.empty()) AF_RETURN_IF_ERROR(ValidateSandboxId(ev.sandbox_id));
  if (ev.kind.empty()) return Error(ErrorCode::kInvalidArgument, "audit event kind is empty");
  std::lock_guard lock(mu_);
  AF_ASSIGN_OR_RETURN(ScopedStmt s,
                      Stmt("INSERT INTO audit_events(sandbox_id, time_ns, kind, path, operation,"
                           " rule, command, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"));
  AF_RETURN_IF_ERROR(s->BindText(1, ev.sandbox_id));
  AF_RETURN_IF_ERROR(s->BindInt(2, ev.time_ns));
  AF_RETURN_IF_ERROR(s->BindText(3, ev.kind));
  AF_RETURN_IF_ERROR(s->BindText(4, ev.path));
  AF_RETURN_IF_ERROR(s->BindText(5, ev.operation));
  AF_RETURN_IF_ERROR(s->BindText(6, ev.rule));
  AF_RETURN_IF_ERROR(s->BindText(7, ev.command));
  AF_RETURN_IF_ERROR(s->BindText(8, ev.detail));
  AF_RETURN_IF_ERROR(s->Run());
  return db_.LastInsertRowid();
}

Result<Page<AuditEventRecord>> MetadataStore::QueryAudit(const AuditFilter& filter,
                                                         const PageRequest& page) {
  if (!filter.sandbox_id.empty()) AF_RETURN_IF_ERROR(ValidateSandboxId(filter.sandbox_id));
  AF_ASSIGN_OR_RETURN(int32_t size, EffectivePageSize(page.page_size));
  int64_t after_seq = 0;
  if (!page.page_token.empty()) {
    AF_ASSIGN_OR_RETURN(auto key, DecodePageToken(page.page_token));
    if (!key.second.empty() || key.first < 0) {
      return Error(ErrorCode::kInvalidArgument, "malformed page_token");
    }
    after_seq = key.first;
  }
  std::lock_guard lock(mu_);
  // The prefix test uses substr() rather than LIKE: paths may contain '%' and '_'.
  AF_ASSIGN_OR_RETURN(ScopedStmt s,
                      Stmt("SELECT seq, sandbox_id, time_ns, kind, path, operation, rule,"
                           " command, detail FROM audit_events WHERE seq > ?1"
                           " AND (?2 = '' OR sandbox_id = ?2) AND (?3 = '' OR kind = ?3)"
                           " AND (?4 = '' OR substr(path, 1, length(?4)) = ?4)"
                           " AND (?5 = 0 OR time_ns >= ?5) AND (?6 = 0 OR time_ns < ?6)"
                           " ORDER BY seq LIMIT ?7"));
  AF_RETURN_IF_ERROR(s->BindInt(1, after_seq));
  AF_RETURN_IF_ERROR(s->BindText(2, filter.sandbox_id));
  AF_RETURN_IF_ERROR(s->BindText(3, filter.kind));
  AF_RETURN_IF_ERROR(s->BindText(4, filter.path_prefix));
  AF_RETURN_IF_ERROR(s->BindInt(5, filter.since_ns));
  AF_RETURN_IF_ERROR(s->BindInt(6, filter.until_ns));
  AF_RETURN_IF_ERROR(s->BindInt(7, int64_t{size} + 1));
  Page<AuditEventRecord> out;
  while (true) {
    AF_ASSIGN_OR_RETURN(bool row, s->Step());
    if (!row) break;
    AuditEventRecord ev;
    ev.seq = s->ColumnInt(0);
    ev.sandbox_id = s->ColumnText(1);
    ev.time_ns = s->ColumnInt(2);
    ev.kind = s->ColumnText(3);
    ev.path = s->ColumnText(4);
    ev.operation = s->ColumnText(5);
    ev.rule = s->ColumnText(6);
    ev.command = s->ColumnText(7);
    ev.detail = s->ColumnText(8);
    out.items.push_back(std::move(ev));
  }
  if (out.items.size() > static_cast<size_t>(size)) {
    out.items.pop_back();
    out.next_page_token = EncodePageToken(out.items.back().seq, "");
  }
  return out;
}

Result<int64_t> MetadataStore::AuditIngestOffset(std::string_view sandbox_id) {
  AF_RETURN_IF_ERROR(ValidateSandboxId(sandbox_id));
  std::lock_guard lock(mu_);
  AF_ASSIGN_OR_RETURN(ScopedStmt s,
                      Stmt("SELECT byte_offset FROM audit_ingest WHERE sandbox_id = ?1"));
  AF_RETURN_IF_ERROR(s->BindText(1, sandbox_id));
  AF_ASSIGN_OR_RETURN(bool row, s->Step());
  return row ? s->ColumnInt(0) : int64_t{0};
}

Status MetadataStore::IngestAudit(std::string_view sandbox_id,
                                  const std::vector<AuditEventRecord>& events, int64_t new_offset) {
  AF_RETURN_IF_ERROR(ValidateSandboxId(sandbox_id));
  if (new_offset < 0) return Error(ErrorCode::kInvalidArgument, "negative audit offset");
  std::lock_guard lock(mu_);
  AF_RETURN_IF_ERROR(db_.Exec("BEGIN IMMEDIATE"));
  RollbackGuard guard(db_);
  for (const auto& ev : events) {
    AF_ASSIGN_OR_RETURN(ScopedStmt s,
                        Stmt("INSERT INTO audit_events(sandbox_id, time_ns, kind, path, operation,"
                             " rule, command, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"));
    AF_RETURN_IF_ERROR(s->BindText(1, sandbox_id));
    AF_RETURN_IF_ERROR(s->BindInt(2, ev.time_ns));
    AF_RETURN_IF_ERROR(s->BindText(3, ev.kind));
    AF_RETURN_IF_ERROR(s->BindText(4, ev.path));
    AF_RETURN_IF_ERROR(s->BindText(5, ev.operation));
    AF_RETURN_IF_ERROR(s->BindText(6, ev.rule));
    AF_RETURN_IF_ERROR(s->BindText(7, ev.command));
    AF_RETURN_IF_ERROR(s->BindText(8, ev.detail));
    AF_RETURN_IF_ERROR(s->Run());
  }
  AF_ASSIGN_OR_RETURN(ScopedStmt o, Stmt("INSERT INTO audit_ingest(sandbox_id, byte_offset)"
                                         " VALUES (?1, ?2) ON CONFLICT(sandbox_id)"
                                         " DO UPDATE SET byte_offset = excluded.byte_offset"));
  AF_RETURN_IF_ERROR(o->BindText(1, sandbox_id));
  AF_RETURN_IF_ERROR(o->BindInt(2, new_offset));
  AF_RETURN_IF_ERROR(o->Run());
  return guard.Commit();
}

Result<int64_t> MetadataStore::PruneAudit(int64_t before_ns) {
  std::lock_guard lock(mu_);
  AF_ASSIGN_OR_RETURN(ScopedStmt s, Stmt("DELETE FROM audit_events WHERE time_ns < ?1"));
  AF_RETURN_IF_ERROR(s->BindInt(1, before_ns));
  AF_RETURN_IF_ERROR(s->Run());
  return db_.Changes();
}

}  // namespace agentfense::store
