#include "runtime/agent_protocol.h"

#include <cstdint>
#include <cstring>

#include "runtime/agent_protocol_tlv.h"

namespace agentfense::runtime::proto {

using namespace tlv;  // NOLINT(google-build-using-namespace): this codec's own helpers

namespace {

Result<std::pair<std::string, std::string>> AsEnv(std::string_view v) {
  size_t nul = v.find('\0');
  if (nul == std::string_view::npos || nul == 0) return Bad("bad env entry");
  std::string_view key = v.substr(0, nul);
  std::string_view value = v.substr(nul + 1);
  if (key.find('=') != std::string_view::npos || value.find('\0') != std::string_view::npos) {
    return Bad("bad env entry");
  }
  return std::make_pair(std::string(key), std::string(value));
}

// env and workdir, decoded alike for Exec, PtyOpen and SessionOpen. Returns whether `tag` was one
// of them.
template <typename M>
Result<bool> DecodeEnvOrWorkdir(M& m, uint16_t tag, std::string_view v) {
  switch (tag) {
    case kTagEnv: {
      if (m.env.size() >= kMaxEnv) return Bad("too many env entries");
      AF_ASSIGN_OR_RETURN(auto kv, AsEnv(v));
      m.env.push_back(std::move(kv));
      return true;
    }
    case kTagWorkdir:
      AF_RETURN_IF_ERROR(NoNul(v, "workdir"));
      m.workdir.assign(v);
      return true;
    default:
      return false;
  }
}

// The program to run: argv, env and workdir, shared by Exec and PtyOpen.
template <typename M>
Result<bool> DecodeProgramField(M& m, uint16_t tag, std::string_view v) {
  if (tag != kTagArgv) return DecodeEnvOrWorkdir(m, tag, v);
  AF_RETURN_IF_ERROR(NoNul(v, "argument"));
  if (m.argv.size() >= kMaxArgs) return Bad("too many arguments");
  m.argv.emplace_back(v);
  return true;
}

}  // namespace

// --- encode -----------------------------------------------------------------------------------

Result<std::string> Encode(uint64_t id, const Hello& m) {
  Writer w;
  w.U64(kTagMinVersion, m.min_version);
  w.U64(kTagMaxVersion, m.max_version);
  w.Bytes(kTagSoftware, m.software);
  w.Bool(kTagHasBash, m.has_bash);
  // Only when set: an older peer's decoder never sees a tag it could misread.
  if (m.has_pty) w.Bool(kTagHasPty, true);
  if (m.has_files) w.Bool(kTagHasFiles, true);
  return w.Finish(MsgType::kHello, id);
}

Result<std::string> Encode(uint64_t id, const Exec& m) {
  if (m.argv.size() > kMaxArgs) return Error(ErrorCode::kInvalidArgument, "too many arguments");
  if (m.env.size() > kMaxEnv) return Error(ErrorCode::kInvalidArgument, "too many env entries");
  Writer w;
  for (const auto& a : m.argv) w.Bytes(kTagArgv, a);
  if (!m.shell_command.empty()) w.Bytes(kTagShellCommand, m.shell_command);
  if (!m.stdin_data.empty()) w.Bytes(kTagStdin, m.stdin_data);
  w.Env(m.env);
  if (!m.workdir.empty()) w.Bytes(kTagWorkdir, m.workdir);
  w.U64(kTagTimeoutMs, m.timeout_ms);
  w.U64(kTagOutputCap, m.output_cap);
  return w.Finish(MsgType::kExec, id);
}

Result<std::string> Encode(uint64_t id, const Output& m) {
  Writer w;
  w.U64(kTagStream, static_cast<uint64_t>(m.stream));
  w.Bytes(kTagData, m.data);
  return w.Finish(MsgType::kOutput, id);
}

Result<std::string> Encode(uint64_t id, const Exit& m) {
  Writer w;
  w.U64(kTagExitCode, static_cast<uint64_t>(static_cast<int64_t>(m.exit_code)));
  w.U64(kTagSignal, static_cast<uint64_t>(static_cast<int64_t>(m.signal)));
  w.U64(kTagDurationUs, m.duration_us);
  w.Bool(kTagTimedOut, m.timed_out);
  w.Bool(kTagTruncated, m.truncated);
  w.Bool(kTagOom, m.oom);
  return w.Finish(MsgType::kExit, id);
}

Result<std::string> Encode(uint64_t id, const SessionOpen& m) {
  if (m.env.size() > kMaxEnv) return Error(ErrorCode::kInvalidArgument, "too many env entries");
  Writer w;
  if (!m.shell.empty()) w.Bytes(kTagShell, m.shell);
  w.Env(m.env);
  if (!m.workdir.empty()) w.Bytes(kTagWorkdir, m.workdir);
  return w.Finish(MsgType::kSessionOpen, id);
}

Result<std::string> Encode(uint64_t id, const SessionOpened& m) {
  Writer w;
  w.U64(kTagSessionId, m.session_id);
  return w.Finish(MsgType::kSessionOpened, id);
}

Result<std::string> Encode(uint64_t id, const SessionExec& m) {
  Writer w;
  w.U64(kTagSessionId, m.session_id);
  w.Bytes(kTagCommand, m.command);
  w.U64(kTagTimeoutMs, m.timeout_ms);
  w.U64(kTagOutputCap, m.output_cap);
  return w.Finish(MsgType::kSessionExec, id);
}

Result<std::string> Encode(uint64_t id, const SessionClose& m) {
  Writer w;
  w.U64(kTagSessionId, m.session_id);
  return w.Finish(MsgType::kSessionClose, id);
}

Result<std::string> Encode(uint64_t id, const ErrorMsg& m) {
  Writer w;
  w.U64(kTagErrorCode, m.code);
  // A message is diagnostic text: cap it so an error about a huge input stays small.
  w.Bytes(kTagMessage, std::string_view(m.message).substr(0, 4096));
  // Only when set: an older peer never sees a tag it does not know.
  if (m.sys_errno != 0) w.U64(kTagErrno, static_cast<uint64_t>(static_cast<int64_t>(m.sys_errno)));
  return w.Finish(MsgType::kError, id);
}

Result<std::string> Encode(uint64_t id, const Cancel&) {
  return Writer().Finish(MsgType::kCancel, id);
}
Result<std::string> Encode(uint64_t id, const Ok&) { return Writer().Finish(MsgType::kOk, id); }

namespace {
bool ValidDimension(uint64_t v) { return v >= 1 && v <= kMaxPtyDimension; }
Status CheckWindow(uint64_t rows, uint64_t cols) {
  if (!ValidDimension(rows) || !ValidDimension(cols)) {
    return Bad("terminal size must be 1.." + std::to_string(kMaxPtyDimension) +
               " rows and columns");
  }
  return OkStatus();
}
}  // namespace

Result<std::string> Encode(uint64_t id, const PtyOpen& m) {
  if (m.argv.size() > kMaxArgs) return Error(ErrorCode::kInvalidArgument, "too many arguments");
  if (m.env.size() > kMaxEnv) return Error(ErrorCode::kInvalidArgument, "too many env entries");
  AF_RETURN_IF_ERROR(CheckWindow(m.rows, m.cols));
  Writer w;
  for (const auto& a : m.argv) w.Bytes(kTagArgv, a);
  w.Env(m.env);
  if (!m.workdir.empty()) w.Bytes(kTagWorkdir, m.workdir);
  w.U64(kTagRows, m.rows);
  w.U64(kTagCols, m.cols);
  return w.Finish(MsgType::kPtyOpen, id);
}

Result<std::string> Encode(uint64_t id, const PtyOpened&) {
  return Writer().Finish(MsgType::kPtyOpened, id);
}

Result<std::string> Encode(uint64_t id, const PtyInput& m) {
  if (m.data.size() > kMaxPtyInput) {
    return Error(ErrorCode::kInvalidArgument, "terminal input chunk exceeds 64 KiB");
  }
  Writer w;
  w.Bytes(kTagData, m.data);
  return w.Finish(MsgType::kPtyInput, id);
}

Result<std::string> Encode(uint64_t id, const PtyResize& m) {
  AF_RETURN_IF_ERROR(CheckWindow(m.rows, m.cols));
  Writer w;
  w.U64(kTagRows, m.rows);
  w.U64(kTagCols, m.cols);
  return w.Finish(MsgType::kPtyResize, id);
}

// --- decode -----------------------------------------------------------------------------------

Result<Hello> DecodeHello(std::string_view payload) {
  Hello m;
  m.min_version = m.max_version = 0;
  Status fields_status = ForEachField(payload, {}, [&](uint16_t tag, std::string_view v) -> Status {
    switch (tag) {
      case kTagMinVersion: {
        AF_ASSIGN_OR_RETURN(uint32_t x, AsU32(v));
        if (x > UINT16_MAX) return Bad("version out of range");
        m.min_version = static_cast<uint16_t>(x);
        break;
      }
      case kTagMaxVersion: {
        AF_ASSIGN_OR_RETURN(uint32_t x, AsU32(v));
        if (x > UINT16_MAX) return Bad("version out of range");
        m.max_version = static_cast<uint16_t>(x);
        break;
      }
      case kTagSoftware:
        m.software.assign(v.substr(0, 256));
        break;
      case kTagHasBash: {
        AF_ASSIGN_OR_RETURN(m.has_bash, AsBool(v));
        break;
      }
      case kTagHasPty: {
        AF_ASSIGN_OR_RETURN(m.has_pty, AsBool(v));
        break;
      }
      case kTagHasFiles: {
        AF_ASSIGN_OR_RETURN(m.has_files, AsBool(v));
        break;
      }
      default:
        break;
    }
    return OkStatus();
  });
  if (!fields_status.ok()) return std::move(fields_status).error();
  if (m.min_version == 0 || m.min_version > m.max_version) return Bad("bad version range");
  return m;
}

Result<Exec> DecodeExec(std::string_view payload) {
  Exec m;
  m.timeout_ms = 0;
  m.output_cap = 0;
  bool has_timeout = false, has_cap = false;
  Status fields_status =
      ForEachField(payload, {kTagArgv, kTagEnv}, [&](uint16_t tag, std::string_view v) -> Status {
        AF_ASSIGN_OR_RETURN(bool program, DecodeProgramField(m, tag, v));
        if (program) return OkStatus();
        switch (tag) {
          case kTagShellCommand:
            AF_RETURN_IF_ERROR(NoNul(v, "command"));
            m.shell_command.assign(v);
            break;
          case kTagStdin:
            m.stdin_data.assign(v);
            break;
          case kTagTimeoutMs: {
            AF_ASSIGN_OR_RETURN(m.timeout_ms, AsU32(v));
            has_timeout = true;
            break;
          }
          case kTagOutputCap: {
            AF_ASSIGN_OR_RETURN(m.output_cap, AsU64(v));
            has_cap = true;
            break;
          }
          default:
            break;
        }
        return OkStatus();
      });
  if (!fields_status.ok()) return std::move(fields_status).error();
  if (m.argv.empty() == m.shell_command.empty()) {
    return Bad("exec needs exactly one of argv and shell command");
  }
  if (!has_timeout || !has_cap) return Bad("exec without timeout or output cap");
  return m;
}

Result<Output> DecodeOutput(std::string_view payload) {
  Output m;
  bool has_stream = false;
  Status fields_status = ForEachField(payload, {}, [&](uint16_t tag, std::string_view v) -> Status {
    if (tag == kTagStream) {
      AF_ASSIGN_OR_RETURN(uint64_t s, AsU64(v));
      if (s != 1 && s != 2) return Bad("bad stream");
      m.stream = static_cast<Stream>(s);
      has_stream = true;
    } else if (tag == kTagData) {
      m.data.assign(v);
    }
    return OkStatus();
  });
  if (!fields_status.ok()) return std::move(fields_status).error();
  if (!has_stream) return Bad("output without stream");
  return m;
}

Result<Exit> DecodeExit(std::string_view payload) {
  Exit m;
  Status fields_status = ForEachField(payload, {}, [&](uint16_t tag, std::string_view v) -> Status {
    switch (tag) {
      case kTagExitCode: {
        AF_ASSIGN_OR_RETURN(m.exit_code, AsI32(v));
        break;
      }
      case kTagSignal: {
        AF_ASSIGN_OR_RETURN(m.signal, AsI32(v));
        break;
      }
      case kTagDurationUs: {
        AF_ASSIGN_OR_RETURN(m.duration_us, AsU64(v));
        break;
      }
      case kTagTimedOut: {
        AF_ASSIGN_OR_RETURN(m.timed_out, AsBool(v));
        break;
      }
      case kTagTruncated: {
        AF_ASSIGN_OR_RETURN(m.truncated, AsBool(v));
        break;
      }
      case kTagOom: {
        AF_ASSIGN_OR_RETURN(m.oom, AsBool(v));
        break;
      }
      default:
        break;
    }
    return OkStatus();
  });
  if (!fields_status.ok()) return std::move(fields_status).error();
  return m;
}

Result<SessionOpen> DecodeSessionOpen(std::string_view payload) {
  SessionOpen m;
  Status fields_status =
      ForEachField(payload, {kTagEnv}, [&](uint16_t tag, std::string_view v) -> Status {
        AF_ASSIGN_OR_RETURN(bool common, DecodeEnvOrWorkdir(m, tag, v));
        if (common) return OkStatus();
        if (tag == kTagShell) {
          AF_RETURN_IF_ERROR(NoNul(v, "shell"));
          m.shell.assign(v);
        }
        return OkStatus();
      });
  if (!fields_status.ok()) return std::move(fields_status).error();
  return m;
}

Result<SessionOpened> DecodeSessionOpened(std::string_view payload) {
  SessionOpened m;
  bool has_id = false;
  Status fields_status = ForEachField(payload, {}, [&](uint16_t tag, std::string_view v) -> Status {
    if (tag == kTagSessionId) {
      AF_ASSIGN_OR_RETURN(m.session_id, AsU64(v));
      has_id = true;
    }
    return OkStatus();
  });
  if (!fields_status.ok()) return std::move(fields_status).error();
  if (!has_id) return Bad("session opened without id");
  return m;
}

Result<SessionExec> DecodeSessionExec(std::string_view payload) {
  SessionExec m;
  bool has_id = false, has_timeout = false, has_cap = false;
  Status fields_status = ForEachField(payload, {}, [&](uint16_t tag, std::string_view v) -> Status {
    switch (tag) {
      case kTagSessionId: {
        AF_ASSIGN_OR_RETURN(m.session_id, AsU64(v));
        has_id = true;
        break;
      }
      case kTagCommand:
        m.command.assign(v);
        break;
      case kTagTimeoutMs: {
        AF_ASSIGN_OR_RETURN(m.timeout_ms, AsU32(v));
        has_timeout = true;
        break;
      }
      case kTagOutputCap: {
        AF_ASSIGN_OR_RETURN(m.output_cap, AsU64(v));
        has_cap = true;
        break;
      }
      default:
        break;
    }
    return OkStatus();
  });
  if (!fields_status.ok()) return std::move(fields_status).error();
  if (!has_id || !has_timeout || !has_cap) return Bad("session exec missing a field");
  return m;
}

Result<SessionClose> DecodeSessionClose(std::string_view payload) {
  SessionClose m;
  bool has_id = false;
  Status fields_status = ForEachField(payload, {}, [&](uint16_t tag, std::string_view v) -> Status {
    if (tag == kTagSessionId) {
      AF_ASSIGN_OR_RETURN(m.session_id, AsU64(v));
      has_id = true;
    }
    return OkStatus();
  });
  if (!fields_status.ok()) return std::move(fields_status).error();
  if (!has_id) return Bad("session close without id");
  return m;
}

Result<ErrorMsg> DecodeError(std::string_view payload) {
  ErrorMsg m;
  Status fields_status = ForEachField(payload, {}, [&](uint16_t tag, std::string_view v) -> Status {
    if (tag == kTagErrorCode) {
      AF_ASSIGN_OR_RETURN(m.code, AsU32(v));
      if (m.code == 0 || m.code > 16) m.code = static_cast<uint32_t>(ErrorCode::kUnknown);
    } else if (tag == kTagMessage) {
      m.message.assign(v.substr(0, 4096));
    } else if (tag == kTagErrno) {
      AF_ASSIGN_OR_RETURN(int32_t e, AsI32(v));
      // errno values are small positive numbers; anything else carries no meaning.
      m.sys_errno = e > 0 && e < 4096 ? e : 0;
    }
    return OkStatus();
  });
  if (!fields_status.ok()) return std::move(fields_status).error();
  return m;
}

Result<PtyOpen> DecodePtyOpen(std::string_view payload) {
  PtyOpen m;
  uint64_t rows = 0, cols = 0;
  Status fields_status =
      ForEachField(payload, {kTagArgv, kTagEnv}, [&](uint16_t tag, std::string_view v) -> Status {
        AF_ASSIGN_OR_RETURN(bool program, DecodeProgramField(m, tag, v));
        if (program) return OkStatus();
        switch (tag) {
          case kTagRows: {
            AF_ASSIGN_OR_RETURN(rows, AsU64(v));
            break;
          }
          case kTagCols: {
            AF_ASSIGN_OR_RETURN(cols, AsU64(v));
            break;
          }
          default:
            break;
        }
        return OkStatus();
      });
  if (!fields_status.ok()) return std::move(fields_status).error();
  // A missing size is as wrong as a zero one: both would give the program a 0x0 window.
  AF_RETURN_IF_ERROR(CheckWindow(rows, cols));
  if (!m.argv.empty() && m.argv[0].empty()) return Bad("empty program name");
  m.rows = static_cast<uint16_t>(rows);
  m.cols = static_cast<uint16_t>(cols);
  return m;
}

Result<PtyOpened> DecodePtyOpened(std::string_view payload) {
  Status fields_status =
      ForEachField(payload, {}, [](uint16_t, std::string_view) { return OkStatus(); });
  if (!fields_status.ok()) return std::move(fields_status).error();
  return PtyOpened{};
}

Result<PtyInput> DecodePtyInput(std::string_view payload) {
  PtyInput m;
  bool has_data = false;
  Status fields_status = ForEachField(payload, {}, [&](uint16_t tag, std::string_view v) -> Status {
    if (tag == kTagData) {
      if (v.size() > kMaxPtyInput) return Bad("terminal input chunk exceeds 64 KiB");
      m.data.assign(v);
      has_data = true;
    }
    return OkStatus();
  });
  if (!fields_status.ok()) return std::move(fields_status).error();
  if (!has_data) return Bad("terminal input without data");
  return m;
}

Result<PtyResize> DecodePtyResize(std::string_view payload) {
  uint64_t rows = 0, cols = 0;
  Status fields_status = ForEachField(payload, {}, [&](uint16_t tag, std::string_view v) -> Status {
    if (tag == kTagRows) {
      AF_ASSIGN_OR_RETURN(rows, AsU64(v));
    } else if (tag == kTagCols) {
      AF_ASSIGN_OR_RETURN(cols, AsU64(v));
    }
    return OkStatus();
  });
  if (!fields_status.ok()) return std::move(fields_status).error();
  AF_RETURN_IF_ERROR(CheckWindow(rows, cols));
  PtyResize m;
  m.rows = static_cast<uint16_t>(rows);
  m.cols = static_cast<uint16_t>(cols);
  return m;
}

// --- framing ----------------------------------------------------------------------------------

Result<Header> DecodeHeader(std::string_view b) {
  if (b.size() < kHeaderSize) return Bad("short header");
  if (GetLe(b, 0, 4) != kMagic) return Bad("bad magic");
  if (GetLe(b, 4, 2) != kVersion)
    return Bad("unsupported frame version " + std::to_string(GetLe(b, 4, 2)));
  uint64_t type = GetLe(b, 6, 2);
  if (type == 0 || type > kMaxMsgType) return Bad("unknown message type " + std::to_string(type));
  if (GetLe(b, 8, 4) != 0) return Bad("unknown flags");
  Header h;
  h.type = static_cast<MsgType>(type);
  h.request_id = GetLe(b, 12, 8);
  uint64_t len = GetLe(b, 20, 4);
  if (len > kMaxPayload) return Bad("payload of " + std::to_string(len) + " bytes exceeds limit");
  h.payload_len = static_cast<uint32_t>(len);
  return h;
}

void FrameReader::Append(std::string_view bytes) {
  // Compact before growing so a long-lived connection does not keep consumed bytes.
  if (pos_ > 0 && (pos_ == buf_.size() || pos_ > 64 * 1024)) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  buf_.append(bytes);
}

Result<std::optional<Frame>> FrameReader::Next() {
  std::string_view avail(buf_.data() + pos_, buf_.size() - pos_);
  if (avail.size() < kHeaderSize) return std::optional<Frame>();
  // The header is validated before waiting for the payload: a bogus length is refused at once
  // instead of making the reader buffer up to 4 GiB.
  AF_ASSIGN_OR_RETURN(Header h, DecodeHeader(avail.substr(0, kHeaderSize)));
  if (avail.size() - kHeaderSize < h.payload_len) return std::optional<Frame>();
  Frame f;
  f.type = h.type;
  f.request_id = h.request_id;
  f.payload.assign(avail.substr(kHeaderSize, h.payload_len));
  pos_ += kHeaderSize + h.payload_len;
  return std::optional<Frame>(std::move(f));
}

}  // namespace agentfense::runtime::proto
