// The agent protocol's TLV payloads, shared by the message codecs (agent_protocol.cc: hello,
// commands, sessions, terminals, framing; agent_protocol_files.cc: file operations). Internal to
// those two files; the protocol itself is runtime/agent_protocol.h.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "runtime/agent_protocol.h"

namespace agentfense::runtime::proto::tlv {

// Field tags. Numbers are part of the wire format: never reuse one.
enum Tag : uint16_t {
  kTagMinVersion = 1,
  kTagMaxVersion = 2,
  kTagSoftware = 3,
  kTagHasBash = 4,
  kTagHasPty = 5,
  kTagHasFiles = 6,
  kTagArgv = 10,  // repeated
  kTagShellCommand = 11,
  kTagStdin = 12,
  kTagEnv = 13,  // repeated: "KEY\0VALUE"
  kTagWorkdir = 14,
  kTagTimeoutMs = 15,
  kTagOutputCap = 16,
  kTagStream = 20,
  kTagData = 21,
  kTagExitCode = 30,
  kTagSignal = 31,
  kTagDurationUs = 32,
  kTagTimedOut = 33,
  kTagTruncated = 34,
  kTagOom = 35,
  kTagShell = 40,
  kTagSessionId = 41,
  kTagCommand = 42,
  kTagErrorCode = 50,
  kTagMessage = 51,
  kTagErrno = 52,
  kTagRows = 60,
  kTagCols = 61,
  kTagFileOp = 70,
  kTagPath = 71,
  kTagOffset = 72,
  kTagLimit = 73,
  kTagDepth = 74,
  kTagFlags = 75,
  kTagReplacement = 76,
  kTagEntry = 77,  // repeated: one encoded FileEntry
  kTagStat = 78,   // one encoded FileEntry
  kTagEof = 79,
  kTagCount = 80,
  kTagListTruncated = 81,
};

inline Error Bad(std::string what) {
  return Error(ErrorCode::kInvalidArgument, "agent protocol: " + std::move(what));
}

inline void PutLe(std::string& out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

inline uint64_t GetLe(std::string_view in, size_t off, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) {
    v |= static_cast<uint64_t>(static_cast<unsigned char>(in[off + i])) << (8 * i);
  }
  return v;
}

class Writer {
 public:
  void Bytes(uint16_t tag, std::string_view v) {
    PutLe(out_, tag, 2);
    PutLe(out_, v.size(), 4);
    out_.append(v);
  }
  void U64(uint16_t tag, uint64_t v) {
    std::string b;
    PutLe(b, v, 8);
    Bytes(tag, b);
  }
  void Bool(uint16_t tag, bool v) {
    Bytes(tag, v ? std::string_view("\1", 1) : std::string_view("\0", 1));
  }
  void Env(const std::vector<std::pair<std::string, std::string>>& env) {
    for (const auto& [k, v] : env) {
      std::string kv = k;
      kv.push_back('\0');
      kv += v;
      Bytes(kTagEnv, kv);
    }
  }
  Result<std::string> Finish(MsgType type, uint64_t request_id) {
    if (out_.size() > kMaxPayload) {
      return Error(ErrorCode::kResourceExhausted,
                   "agent protocol: message of " + std::to_string(out_.size()) +
                       " bytes exceeds the frame limit of " + std::to_string(kMaxPayload));
    }
    std::string frame;
    frame.reserve(kHeaderSize + out_.size());
    PutLe(frame, kMagic, 4);
    PutLe(frame, kVersion, 2);
    PutLe(frame, static_cast<uint16_t>(type), 2);
    PutLe(frame, 0, 4);
    PutLe(frame, request_id, 8);
    PutLe(frame, out_.size(), 4);
    frame += out_;
    return frame;
  }

 private:
  std::string out_;
};

// Walks a TLV payload. Fields are views into the payload (which outlives the reader).
class Reader {
 public:
  explicit Reader(std::string_view p) : p_(p) {}

  // Next field, nullopt at the end, error on a truncated field.
  Result<std::optional<std::pair<uint16_t, std::string_view>>> Next() {
    if (off_ == p_.size()) return std::optional<std::pair<uint16_t, std::string_view>>();
    if (p_.size() - off_ < 6) return Bad("truncated field header");
    auto tag = static_cast<uint16_t>(GetLe(p_, off_, 2));
    auto len = GetLe(p_, off_ + 2, 4);
    off_ += 6;
    if (len > p_.size() - off_) return Bad("field length beyond payload");
    std::string_view v = p_.substr(off_, len);
    off_ += len;
    return std::optional(std::make_pair(tag, v));
  }

 private:
  std::string_view p_;
  size_t off_ = 0;
};

// Tracks which scalar tags were seen so a duplicate is refused (two different values for one field
// would let a sender confuse one check and another use).
class Seen {
 public:
  Status Mark(uint16_t tag) {
    if (tag >= 64) return OkStatus();
    uint64_t bit = uint64_t{1} << tag;
    if (bits_ & bit) return Bad("duplicate field " + std::to_string(tag));
    bits_ |= bit;
    return OkStatus();
  }

 private:
  uint64_t bits_ = 0;
};

inline Result<uint64_t> AsU64(std::string_view v) {
  if (v.size() != 8) return Bad("integer field of wrong size");
  return GetLe(v, 0, 8);
}

inline Result<uint32_t> AsU32(std::string_view v) {
  AF_ASSIGN_OR_RETURN(uint64_t x, AsU64(v));
  if (x > UINT32_MAX) return Bad("integer out of range");
  return static_cast<uint32_t>(x);
}

inline Result<int32_t> AsI32(std::string_view v) {
  AF_ASSIGN_OR_RETURN(uint64_t x, AsU64(v));
  auto s = static_cast<int64_t>(x);
  if (s < INT32_MIN || s > INT32_MAX) return Bad("integer out of range");
  return static_cast<int32_t>(s);
}

inline Result<bool> AsBool(std::string_view v) {
  if (v.size() != 1 || (v[0] != 0 && v[0] != 1)) return Bad("bad boolean");
  return v[0] == 1;
}

// Strings that end up in argv, paths or the environment must not carry NUL bytes: execve would
// silently cut them, so the command run would differ from the command checked.
inline Status NoNul(std::string_view v, const char* what) {
  if (v.find('\0') != std::string_view::npos) return Bad(std::string(what) + " contains NUL");
  return OkStatus();
}

// Applies `fn(tag, value)` to every field, with duplicate detection for tags not in `repeated`.
template <typename Fn>
Status ForEachField(std::string_view payload, std::initializer_list<uint16_t> repeated, Fn fn) {
  Reader r(payload);
  Seen seen;
  while (true) {
    AF_ASSIGN_OR_RETURN(auto field, r.Next());
    if (!field) return OkStatus();
    bool is_repeated = false;
    for (uint16_t t : repeated) is_repeated |= (t == field->first);
    if (!is_repeated) AF_RETURN_IF_ERROR(seen.Mark(field->first));
    AF_RETURN_IF_ERROR(fn(field->first, field->second));
  }
}

}  // namespace agentfense::runtime::proto::tlv
