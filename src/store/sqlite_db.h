// A thin RAII layer over the SQLite C API: one owner for the connection, one for each prepared
// statement, errors as Result. Not thread-safe by itself: MetadataStore serialises all use of a
// connection with its mutex (the connection is opened SQLITE_OPEN_NOMUTEX for that reason).
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"

namespace agentfense::store {

// Converts the connection's last error into an Error. SQLITE_CONSTRAINT_PRIMARYKEY/UNIQUE map to
// kAlreadyExists, SQLITE_CONSTRAINT_FOREIGNKEY to kFailedPrecondition, SQLITE_BUSY to kUnavailable,
// everything else to kInternal.
Error SqliteError(sqlite3* db, int rc, std::string_view what);

// Owns one prepared statement. Bind*() indexes are 1-based as in SQLite. Step() returns true while
// a row is available, false when done.
class Statement {
 public:
  Statement() = default;
  Statement(sqlite3* db, sqlite3_stmt* stmt) : db_(db), stmt_(stmt) {}
  Statement(Statement&& o) noexcept;
  Statement& operator=(Statement&& o) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  // Resets for reuse and clears bindings.
  void Reset();

  Status BindText(int index, std::string_view value);
  Status BindInt(int index, int64_t value);
  Status BindNull(int index);

  Result<bool> Step();
  // Step() that must finish without a row (INSERT/UPDATE/DELETE).
  Status Run();

  int64_t ColumnInt(int col) const { return sqlite3_column_int64(stmt_, col); }
  std::string ColumnText(int col) const;
  bool ColumnIsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

 private:
  sqlite3* db_ = nullptr;  // borrowed from Database
  sqlite3_stmt* stmt_ = nullptr;
};

// Owns one connection.
class Database {
 public:
  // Opens (creating if needed, mode 0600; an existing file loses group/other bits) the file at
  // `path` with WAL journaling, foreign keys on, a busy
  // timeout (another process, e.g. the CLI, may hold the write lock briefly) and synchronous=NORMAL
  // (durable across process crashes; WAL makes it safe across power loss up to the last
  // checkpoint).
  static Result<Database> Open(const std::string& path);

  Database() = default;
  Database(Database&& o) noexcept;
  Database& operator=(Database&& o) noexcept;
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;
  ~Database();

  sqlite3* get() const { return db_; }

  // Runs one or more statements without results (schema, pragmas, BEGIN/COMMIT).
  Status Exec(std::string_view sql);
  Result<Statement> Prepare(std::string_view sql);
  int64_t Changes() const { return sqlite3_changes64(db_); }
  int64_t LastInsertRowid() const { return sqlite3_last_insert_rowid(db_); }

 private:
  explicit Database(sqlite3* db) : db_(db) {}
  sqlite3* db_ = nullptr;
};

}  // namespace agentfense::store
