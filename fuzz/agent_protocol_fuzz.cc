// libFuzzer target: hostile bytes into the agent protocol decoder (what the agent reads from the
// host and the host reads from a possibly compromised agent). Besides "never crash, never
// allocate beyond the frame limit", it checks that whatever decodes re-encodes to something that
// decodes to the same value (no message the decoder accepts is lost or altered on the way back).
//
// Input: byte 0 picks how the stream is split into Append() calls; the rest is the stream.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "runtime/agent_protocol.h"

namespace {

namespace proto = agentfense::runtime::proto;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

// Encodes a decoded message, reads the frame back and decodes it again; returns that second
// value for the caller to compare. nullopt when the encoder refused it (only its size limit can),
// which `must_fit` forbids: whatever decodes fits the encoder's limits for most messages.
template <typename M, typename DecodeFn>
std::optional<M> RoundTrip(const M& m, DecodeFn decode, uint64_t id, bool must_fit = false) {
  auto bytes = proto::Encode(id, m);
  Check(bytes.ok() || !must_fit);
  if (!bytes.ok()) return std::nullopt;
  proto::FrameReader r;
  r.Append(*bytes);
  auto f = r.Next();
  Check(f.ok() && f->has_value());
  auto again = decode((*f)->payload);
  Check(again.ok());
  return std::move(again).value();
}

void DecodeAll(const proto::Frame& f) {
  Check(f.payload.size() <= proto::kMaxPayload);
  switch (f.type) {
    case proto::MsgType::kHello:
      if (auto m = proto::DecodeHello(f.payload); m.ok()) {
        Check(m->min_version <= m->max_version);
        RoundTrip(*m, proto::DecodeHello, f.request_id);
      }
      break;
    case proto::MsgType::kExec:
      if (auto m = proto::DecodeExec(f.payload); m.ok()) {
        Check(m->argv.empty() != m->shell_command.empty());
        Check(m->argv.size() <= proto::kMaxArgs && m->env.size() <= proto::kMaxEnv);
        for (const auto& a : m->argv) Check(a.find('\0') == std::string::npos);
        for (const auto& [k, v] : m->env) {
          Check(!k.empty() && k.find('=') == std::string::npos &&
                k.find('\0') == std::string::npos);
        }
        if (auto again = RoundTrip(*m, proto::DecodeExec, f.request_id)) {
          Check(again->argv == m->argv && again->env == m->env &&
                again->shell_command == m->shell_command && again->stdin_data == m->stdin_data &&
                again->workdir == m->workdir && again->timeout_ms == m->timeout_ms &&
                again->output_cap == m->output_cap);
        }
      }
      break;
    case proto::MsgType::kOutput:
      if (auto m = proto::DecodeOutput(f.payload); m.ok())
        RoundTrip(*m, proto::DecodeOutput, f.request_id);
      break;
    case proto::MsgType::kExit:
      if (auto m = proto::DecodeExit(f.payload); m.ok())
        RoundTrip(*m, proto::DecodeExit, f.request_id);
      break;
    case proto::MsgType::kSessionOpen:
      if (auto m = proto::DecodeSessionOpen(f.payload); m.ok()) {
        RoundTrip(*m, proto::DecodeSessionOpen, f.request_id);
      }
      break;
    case proto::MsgType::kSessionOpened:
      if (auto m = proto::DecodeSessionOpened(f.payload); m.ok()) {
        RoundTrip(*m, proto::DecodeSessionOpened, f.request_id);
      }
      break;
    case proto::MsgType::kSessionExec:
      if (auto m = proto::DecodeSessionExec(f.payload); m.ok()) {
        RoundTrip(*m, proto::DecodeSessionExec, f.request_id);
      }
      break;
    case proto::MsgType::kSessionClose:
      if (auto m = proto::DecodeSessionClose(f.payload); m.ok()) {
        RoundTrip(*m, proto::DecodeSessionClose, f.request_id);
      }
      break;
    case proto::MsgType::kPtyOpen:
      if (auto m = proto::DecodePtyOpen(f.payload); m.ok()) {
        Check(m->rows >= 1 && m->rows <= proto::kMaxPtyDimension);
        Check(m->cols >= 1 && m->cols <= proto::kMaxPtyDimension);
        Check(m->argv.size() <= proto::kMaxArgs && m->env.size() <= proto::kMaxEnv);
        Check(m->argv.empty() || !m->argv[0].empty());
        for (const auto& a : m->argv) Check(a.find('\0') == std::string::npos);
        Check(m->workdir.find('\0') == std::string::npos);
        auto again = RoundTrip(*m, proto::DecodePtyOpen, f.request_id, /*must_fit=*/true);
        Check(again->argv == m->argv && again->env == m->env && again->workdir == m->workdir &&
              again->rows == m->rows && again->cols == m->cols);
      }
      break;
    case proto::MsgType::kPtyOpened:
      if (auto m = proto::DecodePtyOpened(f.payload); m.ok()) {
        RoundTrip(*m, proto::DecodePtyOpened, f.request_id);
      }
      break;
    case proto::MsgType::kPtyInput:
      if (auto m = proto::DecodePtyInput(f.payload); m.ok()) {
        Check(m->data.size() <= proto::kMaxPtyInput);
        auto again = RoundTrip(*m, proto::DecodePtyInput, f.request_id, /*must_fit=*/true);
        Check(again->data == m->data);
      }
      break;
    case proto::MsgType::kPtyResize:
      if (auto m = proto::DecodePtyResize(f.payload); m.ok()) {
        Check(m->rows >= 1 && m->rows <= proto::kMaxPtyDimension);
        Check(m->cols >= 1 && m->cols <= proto::kMaxPtyDimension);
        auto again = RoundTrip(*m, proto::DecodePtyResize, f.request_id, /*must_fit=*/true);
        Check(again->rows == m->rows && again->cols == m->cols);
      }
      break;
    case proto::MsgType::kFileOp:
      if (auto m = proto::DecodeFileOp(f.payload); m.ok()) {
        Check(m->path.size() <= 4096 && m->path.find('\0') == std::string::npos);
        Check(static_cast<uint8_t>(m->op) >= 1 &&
              static_cast<uint8_t>(m->op) <= proto::kMaxFileOpKind);
        if (m->op == proto::FileOpKind::kRead) {
          Check(m->limit >= 1 && m->limit <= proto::kMaxFileChunk);
        }
        if (m->op == proto::FileOpKind::kList) {
          Check(m->depth >= 1 && m->depth <= proto::kMaxListDepth);
        }
        if (auto again = RoundTrip(*m, proto::DecodeFileOp, f.request_id)) {
          Check(again->op == m->op && again->path == m->path && again->offset == m->offset &&
                again->limit == m->limit && again->depth == m->depth &&
                again->flags == m->flags && again->data == m->data &&
                again->replacement == m->replacement);
        }
      }
      break;
    case proto::MsgType::kFileResult:
      if (auto m = proto::DecodeFileResult(f.payload); m.ok()) {
        Check(m->entries.size() <= proto::kMaxListEntries);
        for (const auto& e : m->entries) {
          Check(e.path.find('\0') == std::string::npos && e.mode <= 07777);
        }
        RoundTrip(*m, proto::DecodeFileResult, f.request_id);
      }
      break;
    case proto::MsgType::kError:
      if (auto m = proto::DecodeError(f.payload); m.ok()) {
        Check(m->code >= 1 && m->code <= 16);
        RoundTrip(*m, proto::DecodeError, f.request_id);
      }
      break;
    default:
      break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  size_t chunk = 1 + (data[0] % 64);
  std::string_view stream(reinterpret_cast<const char*>(data + 1), size - 1);
  proto::FrameReader reader;
  size_t off = 0;
  while (off < stream.size()) {
    reader.Append(stream.substr(off, chunk));
    off += chunk;
    while (true) {
      auto f = reader.Next();
      if (!f.ok()) return 0;  // framing lost: a real peer hangs up here
      if (!*f) break;
      DecodeAll(**f);
    }
    Check(reader.buffered() <= proto::kHeaderSize + proto::kMaxPayload + chunk);
  }
  // Every payload decoder also sees the raw bytes directly (no frame header in the way).
  std::string_view payload = stream;
  (void)proto::DecodeHello(payload);
  (void)proto::DecodeExec(payload);
  (void)proto::DecodeOutput(payload);
  (void)proto::DecodeExit(payload);
  (void)proto::DecodeSessionOpen(payload);
  (void)proto::DecodeSessionOpened(payload);
  (void)proto::DecodeSessionExec(payload);
  (void)proto::DecodeSessionClose(payload);
  (void)proto::DecodeError(payload);
  (void)proto::DecodePtyOpen(payload);
  (void)proto::DecodePtyOpened(payload);
  (void)proto::DecodePtyInput(payload);
  (void)proto::DecodePtyResize(payload);
  (void)proto::DecodeFileOp(payload);
  (void)proto::DecodeFileResult(payload);
  return 0;
}
