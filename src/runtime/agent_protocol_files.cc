// File operations of the agent protocol (runtime/agent_protocol.h: FileOp, FileResult).
#include <cstdint>
#include <string>

#include "runtime/agent_protocol.h"
#include "runtime/agent_protocol_tlv.h"

namespace agentfense::runtime::proto {

using namespace tlv;  // NOLINT(google-build-using-namespace): this codec's own helpers

namespace {

// FileEntry: u8 type | u64 size | u32 mode | i64 mtime_ns | path bytes.
constexpr size_t kEntryFixed = 1 + 8 + 4 + 8;

std::string EncodeEntry(const FileEntry& e) {
  std::string out;
  out.reserve(kEntryFixed + e.path.size());
  out.push_back(static_cast<char>(e.type));
  PutLe(out, e.size, 8);
  PutLe(out, e.mode, 4);
  PutLe(out, static_cast<uint64_t>(e.mtime_ns), 8);
  out += e.path;
  return out;
}

Result<FileEntry> DecodeEntry(std::string_view v) {
  if (v.size() < kEntryFixed) return Bad("short file entry");
  FileEntry e;
  auto type = static_cast<uint8_t>(v[0]);
  if (type > static_cast<uint8_t>(FileType::kSymlink)) return Bad("bad file type");
  e.type = static_cast<FileType>(type);
  e.size = GetLe(v, 1, 8);
  e.mode = static_cast<uint32_t>(GetLe(v, 9, 4)) & 07777;
  e.mtime_ns = static_cast<int64_t>(GetLe(v, 13, 8));
  std::string_view path = v.substr(kEntryFixed);
  AF_RETURN_IF_ERROR(NoNul(path, "path"));
  if (path.size() > 4096) return Bad("path too long");
  e.path.assign(path);
  return e;
}

}  // namespace

Result<std::string> Encode(uint64_t id, const FileOp& m) {
  if (m.path.size() > 4096) return Error(ErrorCode::kInvalidArgument, "path too long");
  if (m.data.size() + m.replacement.size() > kMaxFileChunk) {
    return Error(ErrorCode::kInvalidArgument, "file operation data exceeds one frame");
  }
  Writer w;
  w.U64(kTagFileOp, static_cast<uint64_t>(m.op));
  w.Bytes(kTagPath, m.path);
  if (m.offset != 0) w.U64(kTagOffset, m.offset);
  if (m.limit != 0) w.U64(kTagLimit, m.limit);
  if (m.depth != 0) w.U64(kTagDepth, m.depth);
  if (m.flags != 0) w.U64(kTagFlags, m.flags);
  if (!m.data.empty()) w.Bytes(kTagData, m.data);
  if (!m.replacement.empty()) w.Bytes(kTagReplacement, m.replacement);
  return w.Finish(MsgType::kFileOp, id);
}

Result<std::string> Encode(uint64_t id, const FileResult& m) {
  Writer w;
  w.Bytes(kTagStat, EncodeEntry(m.stat));
  if (!m.data.empty()) w.Bytes(kTagData, m.data);
  if (m.eof) w.Bool(kTagEof, true);
  if (m.truncated) w.Bool(kTagListTruncated, true);
  if (m.count != 0) w.U64(kTagCount, m.count);
  for (const auto& e : m.entries) w.Bytes(kTagEntry, EncodeEntry(e));
  return w.Finish(MsgType::kFileResult, id);
}

Result<FileOp> DecodeFileOp(std::string_view payload) {
  FileOp m;
  bool has_op = false, has_path = false;
  Status fields_status = ForEachField(payload, {}, [&](uint16_t tag, std::string_view v) -> Status {
    switch (tag) {
      case kTagFileOp: {
        AF_ASSIGN_OR_RETURN(uint64_t op, AsU64(v));
        if (op == 0 || op > kMaxFileOpKind) return Bad("unknown file operation");
        m.op = static_cast<FileOpKind>(op);
        has_op = true;
        break;
      }
      case kTagPath:
        AF_RETURN_IF_ERROR(NoNul(v, "path"));
        if (v.size() > 4096) return Bad("path too long");
        m.path.assign(v);
        has_path = true;
        break;
      case kTagOffset: {
        AF_ASSIGN_OR_RETURN(m.offset, AsU64(v));
        // off_t is signed: an offset beyond it would wrap in pread/pwrite.
        if (m.offset > static_cast<uint64_t>(INT64_MAX)) return Bad("offset out of range");
        break;
      }
      case kTagLimit: {
        AF_ASSIGN_OR_RETURN(m.limit, AsU64(v));
        break;
      }
      case kTagDepth: {
        AF_ASSIGN_OR_RETURN(m.depth, AsU32(v));
        break;
      }
      case kTagFlags: {
        AF_ASSIGN_OR_RETURN(m.flags, AsU32(v));
        break;
      }
      case kTagData:
        m.data.assign(v);
        break;
      case kTagReplacement:
        m.replacement.assign(v);
        break;
      default:
        break;
    }
    return OkStatus();
  });
  if (!fields_status.ok()) return std::move(fields_status).error();
  if (!has_op || !has_path) return Bad("file operation without op or path");
  switch (m.op) {
    case FileOpKind::kRead:
      if (m.limit == 0 || m.limit > kMaxFileChunk) return Bad("read limit out of range");
      break;
    case FileOpKind::kWrite:
      if (m.flags & ~(kFileWriteTruncate | kFileWriteMakeParents)) return Bad("bad write flags");
      break;
    case FileOpKind::kList:
      if (m.limit == 0 || m.limit > kMaxListEntries) return Bad("list limit out of range");
      if (m.depth == 0 || m.depth > kMaxListDepth) return Bad("list depth out of range");
      break;
    case FileOpKind::kEdit:
      if (m.flags & ~kFileEditAll) return Bad("bad edit flags");
      if (m.data.empty()) return Bad("edit without the text to replace");
      break;
    case FileOpKind::kStat:
      break;
  }
  return m;
}

Result<FileResult> DecodeFileResult(std::string_view payload) {
  FileResult m;
  bool has_stat = false;
  Status fields_status =
      ForEachField(payload, {kTagEntry}, [&](uint16_t tag, std::string_view v) -> Status {
        switch (tag) {
          case kTagStat: {
            AF_ASSIGN_OR_RETURN(m.stat, DecodeEntry(v));
            has_stat = true;
            break;
          }
          case kTagData:
            m.data.assign(v);
            break;
          case kTagEof: {
            AF_ASSIGN_OR_RETURN(m.eof, AsBool(v));
            break;
          }
          case kTagListTruncated: {
            AF_ASSIGN_OR_RETURN(m.truncated, AsBool(v));
            break;
          }
          case kTagCount: {
            AF_ASSIGN_OR_RETURN(m.count, AsU64(v));
            break;
          }
          case kTagEntry: {
            if (m.entries.size() >= kMaxListEntries) return Bad("too many entries");
            AF_ASSIGN_OR_RETURN(auto e, DecodeEntry(v));
            m.entries.push_back(std::move(e));
            break;
          }
          default:
            break;
        }
        return OkStatus();
      });
  if (!fields_status.ok()) return std::move(fields_status).error();
  if (!has_stat) return Bad("file result without stat");
  return m;
}

}  // namespace agentfense::runtime::proto
