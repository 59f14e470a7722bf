// MetadataStore: the durable state of the server in one SQLite file (WAL mode): codebases,
// sandboxes, sessions and the audit log. A restart of the server reopens it and loses nothing.
//
// Thread-safety: every method may be called from any thread. One connection is shared and every
// call holds `mu_` for its whole duration (SQLite work here is short; a connection per thread would
// buy nothing on a single file with one writer at a time). Lock order: `mu_` is a leaf lock; no
// callback runs under it.
//
// Errors: kNotFound for an unknown id, kAlreadyExists for a duplicate id, kInvalidArgument for a
// malformed id, page token or record, kFailedPrecondition when a referenced object is missing or
// still referenced (deleting a codebase that sandboxes use), kUnavailable when the file is locked
// by another process past the busy timeout, kInternal otherwise. Ids are validated (base/ids.h) on
// every call, so a client-supplied id may be passed straight through.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "base/result.h"
#include "store/records.h"
#include "store/sqlite_db.h"
#include "store/store_internal.h"

namespace agentfense::store {

class MetadataStore {
 public:
  // Opens or creates the database at `path` and applies pending schema migrations. Refuses
  // (kFailedPrecondition) a database written by a newer version of the schema.
  static Result<std::unique_ptr<MetadataStore>> Open(const std::string& path);

  // The schema version this build writes (the highest migration it knows).
  static int LatestSchemaVersion();
  Result<int> SchemaVersion();

  // --- codebases ---------------------------------------------------------------------------
  Status CreateCodebase(const CodebaseRecord& rec);
  Result<CodebaseRecord> GetCodebase(std::string_view id);
  // `owner_id` "" lists every owner. Ordered by (created_at, id).
  Result<Page<CodebaseRecord>> ListCodebases(std::string_view owner_id, const PageRequest& page);
  // kFailedPrecondition while any sandbox row references the codebase (destroy those first).
  Status DeleteCodebase(std::string_view id);
  // Adds deltas (from CodebaseFiles) to size and file_count, clamped at 0, and sets updated_at.
  Status AddCodebaseUsage(std::string_view id, int64_t delta_bytes, int64_t delta_files,
                          int64_t now_ns);
  // Overwrites size and file_count (after CodebaseFiles::ComputeUsage reconciliation).
  Status SetCodebaseUsage(std::string_view id, int64_t bytes, int64_t files, int64_t now_ns);

  // --- sandboxes ---------------------------------------------------------------------------
  // kNotFound when the codebase does not exist.
  Status CreateSandbox(const SandboxRecord& rec);
  Result<SandboxRecord> GetSandbox(std::string_view id);
  // Replaces every mutable field (all but id, codebase_id, created_at) of an existing sandbox.
  Status UpdateSandbox(const SandboxRecord& rec);
  // Atomically moves a sandbox from `expected` to `next` status, or fails with
  // kFailedPrecondition naming the actual status. Sets error_reason (cleared unless next is
  // kError), started_at when entering kRunning and stopped_at when entering kStopped.
  Status TransitionSandbox(std::string_view id, SandboxStatus expected, SandboxStatus next,
                           std::string_view error_reason, int64_t now_ns);
  // Deletes the sandbox and its sessions (audit events are kept: they outlive the sandbox).
  Status DeleteSandbox(std::string_view id);
  // Ordered by (created_at, id).
  Result<Page<SandboxRecord>> ListSandboxes(const SandboxFilter& filter, const PageRequest& page);
  // Every matching sandbox, unpaginated (start-up re-adoption, reaper, forced codebase delete).
  Result<std::vector<SandboxRecord>> AllSandboxes(const SandboxFilter& filter);
  Result<int64_t> CountSandboxes(const SandboxFilter& filter);
  // Sandboxes with 0 < expires_at <= now.
  Result<std::vector<SandboxRecord>> ListExpiredSandboxes(int64_t now_ns);

  // --- sessions ----------------------------------------------------------------------------
  // kNotFound when the sandbox does not exist.
  Status CreateSession(const SessionRecord& rec);
  Result<SessionRecord> GetSession(std::string_view id);
  // Ordered by (created_at, id).
  Result<std::vector<SessionRecord>> ListSessions(std::string_view sandbox_id);
  // Marks closed (idempotent: closing a closed session keeps the first closed_at).
  Status CloseSession(std::string_view id, int64_t now_ns);
  // Closes every active session of a sandbox (on stop); returns how many were closed.
  Result<int64_t> CloseSessionsOfSandbox(std::string_view sandbox_id, int64_t now_ns);
  Status DeleteSession(std::string_view id);

  // --- audit -------------------------------------------------------------------------------
  // Returns the assigned seq.
  Result<int64_t> AppendAudit(const AuditEventRecord& ev);
  // Ordered by seq (oldest first).
  Result<Page<AuditEventRecord>> QueryAudit(const AuditFilter& filter, const PageRequest& page);
  // How many bytes of a supervisor's audit file (audit.jsonl) are already in the log; 0 if none.
  Result<int64_t> AuditIngestOffset(std::string_view sandbox_id);
  // Appends `events` (denials read from that file) and records `new_offset` in one transaction,
  // so that a crash never ingests a line twice or loses one.
  Status IngestAudit(std::string_view sandbox_id, const std::vector<AuditEventRecord>& events,
                     int64_t new_offset);
  // Deletes events older than `before_ns`; returns how many.
  Result<int64_t> PruneAudit(int64_t before_ns);

  MetadataStore(const MetadataStore&) = delete;
  MetadataStore& operator=(const MetadataStore&) = delete;

 private:
  explicit MetadataStore(Database db) : db_(std::move(db)) {}
  Status Migrate();
  // The cached prepared statement for `sql` (keyed by the address of a string with static
  // storage), reset and ready to bind. Requires mu_.
  Result<ScopedStmt> Stmt(const char* sql);
  Result<SandboxRecord> GetSandboxLocked(std::string_view id);
  Result<std::vector<SandboxRecord>> QuerySandboxesLocked(const SandboxFilter& filter,
                                                          int64_t after_created,
                                                          const std::string& after_id,
                                                          int64_t limit);
  Status WriteSandboxLocked(const SandboxRecord& rec, bool insert);

  std::mutex mu_;  // guards db_ and stmts_; leaf lock
  Database db_;
  std::unordered_map<const char*, Statement> stmts_;  // keyed by the address of a literal
};

// Opaque page tokens: "p1." + hex of "<created_at_ns>:<id>" (or "<seq>" for audit). Clients must
// not parse them; a token that does not decode is kInvalidArgument.
std::string EncodePageToken(int64_t key, std::string_view id);
Result<std::pair<int64_t, std::string>> DecodePageToken(std::string_view token);
Result<int32_t> EffectivePageSize(int32_t requested);

}  // namespace agentfense::store
