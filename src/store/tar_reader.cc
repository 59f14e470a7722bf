#include "store/tar_reader.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>

namespace agentfense::store {
namespace {

constexpr size_t kBlock = 512;

// Field offsets of a ustar header (POSIX.1-2001 "pax" format, section "ustar Interchange Format").
constexpr size_t kNameOff = 0, kNameLen = 100;
constexpr size_t kModeOff = 100, kModeLen = 8;
constexpr size_t kSizeOff = 124, kSizeLen = 12;
constexpr size_t kChksumOff = 148, kChksumLen = 8;
constexpr size_t kTypeOff = 156;
constexpr size_t kLinkOff = 157, kLinkLen = 100;
constexpr size_t kMagicOff = 257;
constexpr size_t kPrefixOff = 345, kPrefixLen = 155;

std::string Field(const char* block, size_t off, size_t len) {
  const char* p = block + off;
  return std::string(p, strnlen(p, len));
}

// An octal number (leading spaces/NULs allowed, ended by a space or NUL), or GNU's base-256 form
// (high bit of the first byte set) that large sizes use. Negative or overflowing values fail.
Result<int64_t> Number(const char* block, size_t off, size_t len, const char* what) {
  const auto* p = reinterpret_cast<const unsigned char*>(block + off);
  if (p[0] & 0x80) {
    if (p[0] != 0x80) return Error(ErrorCode::kInvalidArgument, std::string("tar: bad ") + what);
    uint64_t v = 0;
    for (size_t i = 1; i < len; ++i) {
      if (v >> 55) return Error(ErrorCode::kInvalidArgument, std::string("tar: huge ") + what);
      v = (v << 8) | p[i];
    }
    if (v > static_cast<uint64_t>(INT64_MAX)) {
      return Error(ErrorCode::kInvalidArgument, std::string("tar: huge ") + what);
    }
    return static_cast<int64_t>(v);
  }
  size_t i = 0;
  while (i < len && (p[i] == ' ' || p[i] == 0)) ++i;
  int64_t v = 0;
  bool any = false;
  for (; i < len && p[i] >= '0' && p[i] <= '7'; ++i) {
    if (v > (INT64_MAX >> 3))
      return Error(ErrorCode::kInvalidArgument, std::string("tar: huge ") + what);
    v = v * 8 + (p[i] - '0');
    any = true;
  }
  for (; i < len; ++i) {
    if (p[i] != ' ' && p[i] != 0) {
      return Error(ErrorCode::kInvalidArgument, std::string("tar: malformed ") + what + " field");
    }
  }
  if (!any) v = 0;
  return v;
}

bool IsZeroBlock(const char* block) {
  return std::all_of(block, block + kBlock, [](char c) { return c == 0; });
}

Status CheckChecksum(const char* block) {
  auto stored = Number(block, kChksumOff, kChksumLen, "checksum");
  if (!stored.ok()) return std::move(stored).error();
  // The sum is over the header with the checksum field read as spaces. Historic tars summed
  // signed chars; accept either, as GNU tar does.
  int64_t unsigned_sum = 0, signed_sum = 0;
  for (size_t i = 0; i < kBlock; ++i) {
    bool in_field = i >= kChksumOff && i < kChksumOff + kChksumLen;
    unsigned char u = in_field ? ' ' : static_cast<unsigned char>(block[i]);
    signed char s = in_field ? ' ' : static_cast<signed char>(block[i]);
    unsigned_sum += u;
    signed_sum += s;
  }
  if (*stored != unsigned_sum && *stored != signed_sum) {
    return Error(ErrorCode::kInvalidArgument, "tar: header checksum mismatch (not a tar archive?)");
  }
  return OkStatus();
}

// Content follows in the archive only for these (POSIX: other types carry no data whatever their
// size field says).
bool HasContent(char type) { return type == '0' || type == '\0' || type == '7'; }

TarEntryType TypeOf(char flag) {
  switch (flag) {
    case '0':
    case '\0':
    case '7':
      return TarEntryType::kFile;
    case '1':
      return TarEntryType::kHardLink;
    case '2':
      return TarEntryType::kSymlink;
    case '3':
      return TarEntryType::kCharDevice;
    case '4':
      return TarEntryType::kBlockDevice;
    case '5':
      return TarEntryType::kDirectory;
    case '6':
      return TarEntryType::kFifo;
    default:
      return TarEntryType::kOther;
  }
}

}  // namespace

Status TarReader::Feed(std::string_view data, Handler& handler) {
  if (!error_.ok()) return error_.error();  // a copy: the error stays sticky
  auto fail = [this](Error e) -> Status {
    error_ = e;
    return e;
  };
  while (!data.empty()) {
    switch (state_) {
      case State::kEnd:
        return OkStatus();  // the record padding after the end marker is not ours to judge
      case State::kHeader: {
        size_t take = std::min(kBlock - block_fill_, data.size());
        std::memcpy(block_ + block_fill_, data.data(), take);
        block_fill_ += take;
        data.remove_prefix(take);
        if (block_fill_ < kBlock) break;
        block_fill_ = 0;
        if (Status st = ParseHeader(handler); !st.ok()) return fail(st.error());
        break;
      }
      case State::kData: {
        size_t take = static_cast<size_t>(std::min<int64_t>(remaining_, data.size()));
        if (Status st = handler.OnData(data.substr(0, take)); !st.ok()) return fail(st.error());
        remaining_ -= static_cast<int64_t>(take);
        data.remove_prefix(take);
        if (remaining_ == 0) {
          if (Status st = handler.OnEntryEnd(); !st.ok()) return fail(st.error());
          state_ = padding_ > 0 ? State::kPadding : State::kHeader;
        }
        break;
      }
      case State::kExtended: {
        size_t take = static_cast<size_t>(std::min<int64_t>(remaining_, data.size()));
        extended_.append(data.substr(0, take));
        remaining_ -= static_cast<int64_t>(take);
        data.remove_prefix(take);
        if (remaining_ == 0) {
          if (Status st = ApplyExtended(); !st.ok()) return fail(st.error());
          state_ = padding_ > 0 ? State::kPadding : State::kHeader;
        }
        break;
      }
      case State::kPadding: {
        size_t take = static_cast<size_t>(std::min<int64_t>(padding_, data.size()));
        padding_ -= static_cast<int64_t>(take);
        data.remove_prefix(take);
        if (padding_ == 0) state_ = State::kHeader;
        break;
      }
    }
  }
  return OkStatus();
}

Status TarReader::ParseHeader(Handler& handler) {
  if (IsZeroBlock(block_)) {
    if (!pending_path_.empty() || !pending_linkpath_.empty() || pending_size_ >= 0) {
      return Error(ErrorCode::kInvalidArgument, "tar: extended header without an entry");
    }
    state_ = State::kEnd;
    return OkStatus();
  }
  AF_RETURN_IF_ERROR(CheckChecksum(block_));
  const char type = block_[kTypeOff];
  AF_ASSIGN_OR_RETURN(int64_t size, Number(block_, kSizeOff, kSizeLen, "size"));

  if (type == 'x' || type == 'g' || type == 'L' || type == 'K') {
    if (size > static_cast<int64_t>(kMaxExtendedHeaderBytes)) {
      return Error(ErrorCode::kResourceExhausted, "tar: extended header larger than 64 KiB");
    }
    extended_type_ = type;
    extended_.clear();
    remaining_ = size;
    padding_ = (kBlock - static_cast<size_t>(size) % kBlock) % kBlock;
    if (size == 0) return ApplyExtended();
    state_ = State::kExtended;
    return OkStatus();
  }

  TarEntry e;
  e.typeflag = type;
  e.type = TypeOf(type);
  AF_ASSIGN_OR_RETURN(int64_t mode, Number(block_, kModeOff, kModeLen, "mode"));
  e.mode = static_cast<uint32_t>(mode & 07777);
  if (!pending_path_.empty()) {
    e.name = std::move(pending_path_);
  } else {
    e.name = Field(block_, kNameOff, kNameLen);
    // POSIX ustar splits long names into prefix "/" name; GNU headers use that area for other
    // fields and say so with the "ustar  " magic.
    if (std::memcmp(block_ + kMagicOff, "ustar\0", 6) == 0) {
      std::string prefix = Field(block_, kPrefixOff, kPrefixLen);
      if (!prefix.empty()) e.name = prefix + "/" + e.name;
    }
  }
  e.linkname =
      !pending_linkpath_.empty() ? std::move(pending_linkpath_) : Field(block_, kLinkOff, kLinkLen);
  if (pending_size_ >= 0) size = pending_size_;
  pending_path_.clear();
  pending_linkpath_.clear();
  pending_size_ = -1;
  e.size = HasContent(type) ? size : 0;
  ++entries_;
  AF_RETURN_IF_ERROR(handler.OnEntry(e));
  remaining_ = e.size;
  padding_ = static_cast<int64_t>((kBlock - static_cast<size_t>(e.size % kBlock)) % kBlock);
  if (e.size == 0) {
    AF_RETURN_IF_ERROR(handler.OnEntryEnd());
    state_ = State::kHeader;
  } else {
    state_ = State::kData;
  }
  return OkStatus();
}

Status TarReader::ApplyExtended() {
  const char type = std::exchange(extended_type_, 0);
  if (type == 'L' || type == 'K') {
    // GNU long name/link: the content, NUL-terminated.
    std::string v = extended_.substr(0, strnlen(extended_.data(), extended_.size()));
    (type == 'L' ? pending_path_ : pending_linkpath_) = std::move(v);
    return OkStatus();
  }
  if (type == 'g') return OkStatus();  // global defaults (mtime, charset...): nothing we use
  // pax records: "<length> <key>=<value>\n", the length counting the whole record.
  std::string_view rest = extended_;
  while (!rest.empty()) {
    size_t sp = rest.find(' ');
    if (sp == std::string_view::npos || sp == 0 || sp > 8) {
      return Error(ErrorCode::kInvalidArgument, "tar: malformed pax record");
    }
    size_t len = 0;
    for (size_t i = 0; i < sp; ++i) {
      if (rest[i] < '0' || rest[i] > '9') {
        return Error(ErrorCode::kInvalidArgument, "tar: malformed pax record length");
      }
      len = len * 10 + static_cast<size_t>(rest[i] - '0');
    }
    if (len <= sp + 1 || len > rest.size() || rest[len - 1] != '\n') {
      return Error(ErrorCode::kInvalidArgument, "tar: malformed pax record");
    }
    std::string_view record = rest.substr(sp + 1, len - sp - 2);
    rest.remove_prefix(len);
    size_t eq = record.find('=');
    if (eq == std::string_view::npos) {
      return Error(ErrorCode::kInvalidArgument, "tar: pax record without '='");
    }
    std::string_view key = record.substr(0, eq);
    std::string_view value = record.substr(eq + 1);
    if (key == "path") {
      pending_path_ = std::string(value);
    } else if (key == "linkpath") {
      pending_linkpath_ = std::string(value);
    } else if (key == "size") {
      int64_t v = 0;
      if (value.empty() || value.size() > 18) {
        return Error(ErrorCode::kInvalidArgument, "tar: malformed pax size");
      }
      for (char c : value) {
        if (c < '0' || c > '9')
          return Error(ErrorCode::kInvalidArgument, "tar: malformed pax size");
        v = v * 10 + (c - '0');
      }
      pending_size_ = v;
    }
    // Other keys (mtime, uid, uname, SCHILY.*, LIBARCHIVE.*...) describe what we do not keep.
  }
  return OkStatus();
}

Status TarReader::Finish() const {
  if (!error_.ok()) return error_.error();
  if (state_ != State::kEnd) {
    return Error(ErrorCode::kInvalidArgument,
                 "archive ended before its end-of-archive marker (truncated upload?)");
  }
  return OkStatus();
}

}  // namespace agentfense::store
