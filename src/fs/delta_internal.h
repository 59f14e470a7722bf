// Host-side helpers shared by the delta's files (delta.cc, delta_checkpoints.cc). Not part of the
// layer's interface. Every walk here is fd-relative and never follows a symlink.
#pragma once

#include <sys/stat.h>

#include <set>
#include <string>
#include <vector>

#include "base/result.h"

namespace agentfense::fs::internal {

// errno values that mean "nothing there" for a beneath-the-root walk (a symlink or a file in the
// way counts as absent: it is never followed).
bool Absent(int e);

// How many '/' a workspace path has (its parent, base name and joins: base/path.h).
size_t Depth(const std::string& path);

// Copies all of `in` to `out` (both positioned at 0): reflink, else copy_file_range, else
// read/write.
Status CopyData(int in, int out);

// Copies the user.* extended attributes of `from` to `to` (O_PATH fds allowed).
void CopyUserXattrs(int from, int to);

struct Entry {
  std::string path;  // workspace path beneath the walked directory ("/x/y")
  struct stat st;
};

// Pre-order walk of the directory `dir` (borrowed), entries sorted by name (parents before
// children), no symlink followed, at most 4096 levels.
void Walk(int dir, const std::string& path, std::vector<Entry>* out, int depth = 0);

// Removes everything beneath `dir` (never `dir` itself), children before parents.
void RemoveContents(int dir);

// The whole content of `fd` (a small file of ours).
Result<std::string> ReadAll(int fd, const std::string& what);

// The deletion journal's format: length-prefixed 'D' (deleted) and 'U' (undeleted) records. A torn
// last record (a crash while appending) is ignored.
void ParseJournal(const std::string& data, std::set<std::string>* deleted);
std::string EncodeJournal(const std::set<std::string>& deleted);

// A name for a temporary object of this process (".agentfense-sync.<pid>.<n>").
std::string TempName();

}  // namespace agentfense::fs::internal
