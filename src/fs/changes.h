// The pending changes of a copy-on-write delta (docs/DELTA.md), as the delta library reports them
// and as the supervisor's control socket, the server (ListChanges / CommitChanges /
// DiscardChanges) and the CLI (`run --sync`) pass them on. Pure data.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace agentfense::fs {

enum class ChangeKind { kAdded, kModified, kDeleted };

inline std::string_view ChangeKindName(ChangeKind k) {
  switch (k) {
    case ChangeKind::kAdded: return "added";
    case ChangeKind::kModified: return "modified";
    case ChangeKind::kDeleted: return "deleted";
  }
  return "modified";
}

struct Change {
  std::string path;  // workspace path, "/src/a.py"
  ChangeKind kind = ChangeKind::kModified;
  int64_t size = 0;  // bytes of the new content in the delta; 0 for deletions and directories
  bool is_dir = false;
};

struct ChangeSet {
  std::vector<Change> changes;  // sorted by path
  int64_t delta_bytes = 0;      // what the quota counts
  int64_t delta_inodes = 0;
};

struct ChangeError {
  std::string path;
  std::string message;
};

// Result of one commit (sync): what reached the source, and what did not (with the reason).
struct CommitReport {
  std::vector<Change> applied;
  std::vector<ChangeError> errors;
};

// One named checkpoint of a delta (docs/CHECKPOINTS.md): what the delta held when it was taken.
struct CheckpointInfo {
  std::string name;
  int64_t created_ns = 0;  // Unix time
  int64_t files = 0;       // objects other than directories
  int64_t dirs = 0;
  int64_t bytes = 0;       // sum of the sizes of its regular files
  int64_t deletions = 0;   // deletion records (source paths the sandbox had removed)
};

}  // namespace agentfense::fs
