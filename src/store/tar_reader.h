// A streaming (push) parser of POSIX tar archives: ustar headers, pax extended headers (path,
// linkpath, size) and GNU long names. It never buffers file content: bytes are handed to the
// handler as they are fed, so an archive of any size is parsed in constant memory (one 512-byte
// header plus at most kMaxExtendedHeaderBytes of pax/GNU metadata).
//
// The parser only decodes; it does not judge names (the extractor validates every name with the
// store's path validator) nor touch the disk. It is pure and unprivileged, so it is unit-tested and
// fuzzed on its own.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"

namespace agentfense::store {

enum class TarEntryType {
  kFile,       // '0', '\0', '7' (contiguous)
  kDirectory,  // '5'
  kSymlink,    // '2'
  kHardLink,   // '1'
  kCharDevice,
  kBlockDevice,
  kFifo,
  kOther,  // sparse, volume labels, multi-volume...: refused by the extractor
};

struct TarEntry {
  TarEntryType type = TarEntryType::kFile;
  char typeflag = '0';
  std::string name;      // exactly as archived (pax/GNU long names applied), not validated
  std::string linkname;  // symlink target or hard link source, as archived
  int64_t size = 0;      // content bytes that follow (0 for everything but files)
  uint32_t mode = 0;     // permission bits from the header (07777 at most)
};

// Pax/GNU extended metadata of one entry larger than this is refused (names are ≤ 4096 bytes).
inline constexpr size_t kMaxExtendedHeaderBytes = 64 * 1024;

class TarReader {
 public:
  class Handler {
   public:
    virtual ~Handler() = default;
    // A new entry begins; its content (entry.size bytes) follows through OnData.
    virtual Status OnEntry(const TarEntry& entry) = 0;
    // The next piece of the current entry's content; pieces add up to entry.size.
    virtual Status OnData(std::string_view data) = 0;
    // All of the current entry's content was delivered.
    virtual Status OnEntryEnd() = 0;
  };

  // Parses `data` (any split of the archive into pieces works), calling `handler` as entries
  // and content are decoded. The first error (a malformed header, or one the handler returns)
  // is sticky: later calls return it again.
  Status Feed(std::string_view data, Handler& handler);
  // The archive ended: kInvalidArgument unless the end-of-archive marker (a zero block) was
  // seen, so a truncated stream is never mistaken for a whole one.
  Status Finish() const;

  bool finished() const { return state_ == State::kEnd; }
  int64_t entries() const { return entries_; }

 private:
  enum class State { kHeader, kData, kPadding, kExtended, kEnd };
  Status ParseHeader(Handler& handler);
  Status ApplyExtended();

  State state_ = State::kHeader;
  Status error_ = OkStatus();
  char block_[512] = {};
  size_t block_fill_ = 0;
  int64_t remaining_ = 0;         // content bytes left of the current entry (or extended header)
  int64_t padding_ = 0;           // padding bytes left after the content
  char extended_type_ = 0;        // 'x', 'g', 'L' or 'K' while collecting an extended header
  std::string extended_;          // its content
  std::string pending_path_;      // from pax 'path' or GNU 'L', for the next entry
  std::string pending_linkpath_;  // from pax 'linkpath' or GNU 'K'
  int64_t pending_size_ = -1;     // from pax 'size'
  int64_t entries_ = 0;
};

}  // namespace agentfense::store
