// Helpers shared by the MetadataStore translation units. Not part of the store's API.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>

#include "base/result.h"
#include "store/sqlite_db.h"

namespace agentfense::store {

// A cached statement borrowed for one call; reset on destruction so that no statement stays
// active between calls (an active read statement would pin a WAL snapshot and block checkpoints).
class ScopedStmt {
 public:
  explicit ScopedStmt(Statement* s) : s_(s) {}
  ScopedStmt(ScopedStmt&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  ScopedStmt& operator=(ScopedStmt&&) = delete;
  ScopedStmt(const ScopedStmt&) = delete;
  ScopedStmt& operator=(const ScopedStmt&) = delete;
  ~ScopedStmt() {
    if (s_) s_->Reset();
  }
  Statement* operator->() const { return s_; }
  Statement& operator*() const { return *s_; }

 private:
  Statement* s_;
};

namespace internal {

inline int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Rolls back an open transaction unless Commit() succeeded.
class RollbackGuard {
 public:
  explicit RollbackGuard(Database& db) : db_(db) {}
  RollbackGuard(const RollbackGuard&) = delete;
  RollbackGuard& operator=(const RollbackGuard&) = delete;
  ~RollbackGuard() {
    if (!done_) {
      auto st = db_.Exec("ROLLBACK");  // nothing more to do if even this fails
      (void)st;
    }
  }
  Status Commit() {
    AF_RETURN_IF_ERROR(db_.Exec("COMMIT"));
    done_ = true;
    return OkStatus();
  }

 private:
  Database& db_;
  bool done_ = false;
};

}  // namespace internal
}  // namespace agentfense::store
