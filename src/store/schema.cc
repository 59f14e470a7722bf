#include "store/schema.h"

namespace agentfense::store {

// Design notes (docs/STORE.md has the full picture):
// - Ids are TEXT primary keys: they are the wire ids, validated before every use.
// - Status, runtime and rule enums are stored as names so that the file is readable with the
//   sqlite3 shell and survives renumbering.
// - sandboxes.codebase_id is RESTRICT: a codebase cannot vanish under a sandbox row. sessions
//   cascade with their sandbox. audit_events has no foreign key on purpose: the audit trail of a
//   destroyed sandbox is kept.
// - Lists page by (created_at_ns, id) (keyset pagination), hence the composite indexes.
const std::vector<Migration>& Migrations() {
  static const std::vector<Migration> kMigrations = {
      {1, R"sql(
CREATE TABLE codebases (
  id            TEXT PRIMARY KEY NOT NULL,
  name          TEXT NOT NULL,
  owner_id      TEXT NOT NULL,
  size          INTEGER NOT NULL DEFAULT 0 CHECK (size >= 0),
  file_count    INTEGER NOT NULL DEFAULT 0 CHECK (file_count >= 0),
  created_at_ns INTEGER NOT NULL,
  updated_at_ns INTEGER NOT NULL
);
CREATE INDEX codebases_by_created ON codebases(created_at_ns, id);
CREATE INDEX codebases_by_owner ON codebases(owner_id, created_at_ns, id);

CREATE TABLE sandboxes (
  id                     TEXT PRIMARY KEY NOT NULL,
  codebase_id            TEXT NOT NULL REFERENCES codebases(id) ON DELETE RESTRICT,
  owner_id               TEXT NOT NULL,
  rules_json             TEXT NOT NULL,
  status                 TEXT NOT NULL CHECK (status IN ('pending','running','stopped','error')),
  labels_json            TEXT NOT NULL,
  created_at_ns          INTEGER NOT NULL,
  started_at_ns          INTEGER NOT NULL DEFAULT 0,
  stopped_at_ns          INTEGER NOT NULL DEFAULT 0,
  expires_at_ns          INTEGER NOT NULL DEFAULT 0,
  runtime                TEXT NOT NULL CHECK (runtime IN ('bwrap','docker')),
  image                  TEXT NOT NULL,
  memory_bytes           INTEGER NOT NULL DEFAULT 0,
  cpu_quota              INTEGER NOT NULL DEFAULT 0,
  cpu_shares             INTEGER NOT NULL DEFAULT 0,
  pids_limit             INTEGER NOT NULL DEFAULT 0,
  error_reason           TEXT NOT NULL DEFAULT '',
  sync_mode              TEXT NOT NULL DEFAULT '',
  network                INTEGER NOT NULL DEFAULT 0,
  delta_quota_bytes      INTEGER NOT NULL DEFAULT 0,
  env_json               TEXT NOT NULL,
  supervisor_pid         INTEGER NOT NULL DEFAULT 0,
  supervisor_start_ticks INTEGER NOT NULL DEFAULT 0,
  supervisor_socket      TEXT NOT NULL DEFAULT '',
  runtime_state          TEXT NOT NULL DEFAULT '',
  updated_at_ns          INTEGER NOT NULL
);
CREATE INDEX sandboxes_by_created ON sandboxes(created_at_ns, id);
CREATE INDEX sandboxes_by_codebase ON sandboxes(codebase_id, created_at_ns, id);
CREATE INDEX sandboxes_by_owner ON sandboxes(owner_id, created_at_ns, id);
CREATE INDEX sandboxes_by_expiry ON sandboxes(expires_at_ns) WHERE expires_at_ns > 0;

CREATE TABLE sessions (
  id            TEXT PRIMARY KEY NOT NULL,
  sandbox_id    TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,
  status        TEXT NOT NULL CHECK (status IN ('active','closed')),
  shell         TEXT NOT NULL,
  created_at_ns INTEGER NOT NULL,
  closed_at_ns  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sessions_by_sandbox ON sessions(sandbox_id, created_at_ns, id);

CREATE TABLE audit_events (
  seq        INTEGER PRIMARY KEY AUTOINCREMENT,
  sandbox_id TEXT NOT NULL,
  time_ns    INTEGER NOT NULL,
  kind       TEXT NOT NULL,
  path       TEXT NOT NULL,
  operation  TEXT NOT NULL,
  rule       TEXT NOT NULL,
  command    TEXT NOT NULL,
  detail     TEXT NOT NULL
);
CREATE INDEX audit_by_sandbox ON audit_events(sandbox_id, seq);
CREATE INDEX audit_by_time ON audit_events(time_ns);
)sql"},
      // 2: the delta's inode quota, and how far each supervisor's audit.jsonl has been ingested
      // (kept beside the events so that ingesting and advancing the offset are one transaction).
      {2, R"sql(
ALTER TABLE sandboxes ADD COLUMN delta_quota_inodes INTEGER NOT NULL DEFAULT 0;
CREATE TABLE audit_ingest (
  sandbox_id  TEXT PRIMARY KEY NOT NULL,
  byte_offset INTEGER NOT NULL CHECK (byte_offset >= 0)
);
)sql"},
      // 3: the host identity each sandbox last ran as (SPEC §5: one uid per sandbox).
      {3, R"sql(
ALTER TABLE sandboxes ADD COLUMN host_uid INTEGER NOT NULL DEFAULT 0;
)sql"},
      // 4: the egress policy ({"any_public": bool, "allow": [...]}); '' on older rows means what
      // `network` meant then: every public destination.
      {4, R"sql(
ALTER TABLE sandboxes ADD COLUMN egress_json TEXT NOT NULL DEFAULT '';
)sql"},
      // 5: how long an access to an `ask` path waits for a decision (0 = the default).
      {5, R"sql(
ALTER TABLE sandboxes ADD COLUMN ask_timeout_ms INTEGER NOT NULL DEFAULT 0;
)sql"},
  };
  return kMigrations;
}

}  // namespace agentfense::store
