// The framed protocol between the host (launcher, supervisor) and agentfense-agent, the small init
// that runs inside every sandbox. One Unix stream socket carries many concurrent requests; frames
// of different requests interleave and are matched by request id.
//
// Frame = 24-byte header + payload, all integers little-endian:
//   u32 magic 'AFAG' | u16 version | u16 type | u32 flags (0) | u64 request_id | u32 payload_len
// payload_len <= kMaxPayload. The payload is a TLV list: u16 tag | u32 len | len bytes, repeated.
// Unknown tags are skipped (forward compatibility), a repeated scalar tag is an error. Scalars are
// fixed-width little-endian; strings and byte blobs are raw bytes.
//
// Every byte that arrives is hostile: the decoder checks magic, version, type, flags, lengths and
// field sizes before it trusts anything, and never allocates more than kMaxPayload per frame.
// This header depends only on base/ (no spdlog) so the static agent can use it.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"

namespace agentfense::runtime::proto {

inline constexpr uint32_t kMagic = 0x47414641;  // bytes "AFAG" on the wire
inline constexpr uint16_t kVersion = 1;         // the only version this build speaks
inline constexpr size_t kHeaderSize = 24;
inline constexpr uint32_t kMaxPayload = 1u << 20;  // 1 MiB: bounds every allocation per frame
// Output chunks are kept well below kMaxPayload so a frame never needs splitting.
inline constexpr size_t kMaxOutputChunk = 64 * 1024;
// Limits on decoded content (a command, stdin, env) so one request cannot exceed a frame anyway,
// stated here so the client can refuse early with a clear error.
inline constexpr size_t kMaxArgs = 4096;
inline constexpr size_t kMaxEnv = 1024;
// PTY limits: one input frame carries at most this much (the client splits larger pastes), and a
// window is at most this many rows or columns (TIOCSWINSZ takes 16-bit values; nothing real is
// bigger, and a sane bound keeps full-screen programs from allocating absurd buffers).
inline constexpr size_t kMaxPtyInput = 64 * 1024;
inline constexpr uint16_t kMaxPtyDimension = 4096;

enum class MsgType : uint16_t {
  kHello = 1,          // both directions: version negotiation
  kExec = 2,           // host → agent: run a command
  kOutput = 3,         // agent → host: a chunk of stdout/stderr of request_id
  kExit = 4,           // agent → host: the final result of an exec / session command
  kSessionOpen = 5,    // host → agent: start a persistent shell
  kSessionOpened = 6,  // agent → host: the id of the new session
  kSessionExec = 7,    // host → agent: run a command in a session
  kSessionClose = 8,   // host → agent: kill a session's whole tree
  kError = 9,          // agent → host: request_id failed (no Exit follows)
  kCancel = 10,        // host → agent: kill the running command of request_id
  kOk = 11,            // agent → host: generic acknowledgement (SessionClose, Cancel)
  // PTY sessions (added after the first release: only sent to an agent whose Hello has has_pty;
  // an older agent refuses unknown types by hanging up). The request id of the PtyOpen names the
  // session for its whole life: PtyInput / PtyResize / Cancel carry it, and the agent answers
  // PtyOpened, then Output (stream stdout: a terminal merges both streams) and finally Exit, or
  // Error instead of PtyOpened when the terminal could not be started.
  kPtyOpen = 12,    // host → agent: start a program on a new terminal inside the sandbox
  kPtyOpened = 13,  // agent → host: the terminal and its program are running
  kPtyInput = 14,   // host → agent: bytes typed into the terminal
  kPtyResize = 15,  // host → agent: the window size changed
  // File operations (added with the MCP file tools: only sent to an agent whose Hello has
  // has_files). They run inside the sandbox as its identity, through the same mount a command
  // uses, so a tool sees exactly what a command sees: a hidden path is ENOENT, a `view` file
  // lists but does not read. The agent answers FileResult, or Error carrying the errno.
  kFileOp = 16,      // host → agent: one operation on a workspace path
  kFileResult = 17,  // agent → host: its result
};
inline constexpr uint16_t kMaxMsgType = 17;

enum class Stream : uint8_t { kStdout = 1, kStderr = 2 };

struct Frame {
  MsgType type = MsgType::kError;
  uint64_t request_id = 0;
  std::string payload;  // TLV bytes, decoded with the Decode* functions below
};

// --- messages ---------------------------------------------------------------------------------

struct Hello {
  uint16_t min_version = kVersion;
  uint16_t max_version = kVersion;
  std::string software;   // "agentfense-agent 0.1", informational
  bool has_bash = false;  // agent → host: whether sessions will use bash
  bool has_pty = false;   // agent → host: understands PtyOpen / PtyInput / PtyResize
  bool has_files = false;  // agent → host: understands FileOp
};

struct Exec {
  // Exactly one of argv / shell_command is set. shell_command runs as `/bin/sh -c shell_command`.
  std::vector<std::string> argv;
  std::string shell_command;
  std::string stdin_data;                                // fed then closed (EOF)
  std::vector<std::pair<std::string, std::string>> env;  // over the agent's clean base
  std::string workdir;                                   // empty: /workspace
  uint32_t timeout_ms = 30000;                           // 0: no timeout
  uint64_t output_cap = 16 << 20;                        // bytes per stream kept; rest drained
};

struct Output {
  Stream stream = Stream::kStdout;
  std::string data;
};

struct Exit {
  int32_t exit_code = 0;  // exit status, or 128+signal when killed by a signal
  int32_t signal = 0;     // the terminating signal, 0 if it exited
  uint64_t duration_us = 0;
  bool timed_out = false;
  bool truncated = false;  // some output beyond output_cap was dropped
  bool oom = false;        // the kernel OOM killer fired during the command (where observable)
};

struct SessionOpen {
  std::string shell;  // empty: bash when present, else sh
  std::vector<std::pair<std::string, std::string>> env;
  std::string workdir;  // empty: /workspace
};

struct SessionOpened {
  uint64_t session_id = 0;
};

struct SessionExec {
  uint64_t session_id = 0;
  std::string command;  // any shell text: multi-line, heredocs, comments, `&`
  uint32_t timeout_ms = 30000;
  uint64_t output_cap = 16 << 20;
};

struct SessionClose {
  uint64_t session_id = 0;
};

// Error codes reuse agentfense::ErrorCode numbering (gRPC canonical codes).
struct ErrorMsg {
  uint32_t code = 2;
  std::string message;
  int32_t sys_errno = 0;  // the errno behind a failed file operation (0: none)
};

// A program on a new pseudo-terminal allocated inside the sandbox. The terminal is the program's
// controlling terminal and its stdin, stdout and stderr; nothing of the host's terminal reaches it.
struct PtyOpen {
  std::vector<std::string> argv;  // empty: the sandbox's bash (else sh) with -i
  std::vector<std::pair<std::string, std::string>> env;  // over the agent's clean base
  std::string workdir;                                   // empty: /workspace
  uint16_t rows = 24;                                    // 1..kMaxPtyDimension
  uint16_t cols = 80;
};

struct PtyOpened {};

struct PtyInput {
  std::string data;  // at most kMaxPtyInput bytes
};

struct PtyResize {
  uint16_t rows = 24;  // 1..kMaxPtyDimension
  uint16_t cols = 80;
};

// File operations. `path` is relative to the workspace in canonical form ("src/a.py"; "" is the
// workspace itself): base/path.h NormalizeWorkspacePath's result without its leading '/'. The
// agent refuses any other.
enum class FileOpKind : uint8_t {
  kStat = 1,   // the path's type, size, mode, mtime (symlinks followed, as `stat` does)
  kRead = 2,   // up to `limit` bytes of a regular file from `offset`
  kWrite = 3,  // `data` at `offset`; flags: truncate first, create missing parent directories
  kList = 4,   // the entries beneath a directory, `depth` levels deep, at most `limit` of them
  kEdit = 5,   // replace `data` by `replacement` in a regular file: exactly one match, or all
};
inline constexpr uint8_t kMaxFileOpKind = 5;
inline constexpr uint32_t kFileWriteTruncate = 1;     // write: empty the file first (O_TRUNC)
inline constexpr uint32_t kFileWriteMakeParents = 2;  // write: mkdir the missing parents
inline constexpr uint32_t kFileEditAll = 1;           // edit: every match, not exactly one
// One read or write moves at most this much (a frame carries it with room for the header).
inline constexpr uint32_t kMaxFileChunk = 960 * 1024;
inline constexpr uint32_t kMaxListDepth = 64;
inline constexpr uint32_t kMaxListEntries = 100000;
// An edit holds the whole file in memory: larger files are refused (EFBIG).
inline constexpr uint64_t kMaxEditFileBytes = 16 << 20;

enum class FileType : uint8_t { kOther = 0, kFile = 1, kDirectory = 2, kSymlink = 3 };

struct FileEntry {
  std::string path;  // list: relative to the listed directory; stat: as asked
  FileType type = FileType::kOther;
  uint64_t size = 0;
  uint32_t mode = 0;  // permission bits (07777)
  int64_t mtime_ns = 0;
};

struct FileOp {
  FileOpKind op = FileOpKind::kStat;
  std::string path;
  uint64_t offset = 0;      // read, write
  uint64_t limit = 0;       // read: bytes (1..kMaxFileChunk); list: entries (1..kMaxListEntries)
  uint32_t depth = 0;       // list: 1 = the directory's own entries (1..kMaxListDepth)
  uint32_t flags = 0;       // kFileWrite* / kFileEdit*
  std::string data;         // write: the bytes (<= kMaxFileChunk); edit: the text to find
  std::string replacement;  // edit
};

struct FileResult {
  FileEntry stat;      // stat; read, write, edit: the file as it is afterwards
  std::string data;    // read: the bytes
  bool eof = false;    // read: nothing lies beyond what was returned
  bool truncated = false;  // list: more entries than `limit` (or than one frame holds)
  uint64_t count = 0;      // write: bytes written; edit: replacements made
  std::vector<FileEntry> entries;  // list, in directory-walk order (parents before children)
};

struct Cancel {};  // the request to cancel is the frame's request_id
struct Ok {};

// --- encoding ---------------------------------------------------------------------------------

// Each returns a complete frame (header + payload). Encoding cannot fail for messages that respect
// the limits; callers that take input from users check them first with Validate* (below), and an
// oversized message is reported as an error rather than producing an unreadable frame.
Result<std::string> Encode(uint64_t request_id, const Hello& m);
Result<std::string> Encode(uint64_t request_id, const Exec& m);
Result<std::string> Encode(uint64_t request_id, const Output& m);
Result<std::string> Encode(uint64_t request_id, const Exit& m);
Result<std::string> Encode(uint64_t request_id, const SessionOpen& m);
Result<std::string> Encode(uint64_t request_id, const SessionOpened& m);
Result<std::string> Encode(uint64_t request_id, const SessionExec& m);
Result<std::string> Encode(uint64_t request_id, const SessionClose& m);
Result<std::string> Encode(uint64_t request_id, const ErrorMsg& m);
Result<std::string> Encode(uint64_t request_id, const Cancel& m);
Result<std::string> Encode(uint64_t request_id, const Ok& m);
Result<std::string> Encode(uint64_t request_id, const PtyOpen& m);
Result<std::string> Encode(uint64_t request_id, const PtyOpened& m);
Result<std::string> Encode(uint64_t request_id, const PtyInput& m);
Result<std::string> Encode(uint64_t request_id, const PtyResize& m);
Result<std::string> Encode(uint64_t request_id, const FileOp& m);
Result<std::string> Encode(uint64_t request_id, const FileResult& m);

// --- decoding ---------------------------------------------------------------------------------

Result<Hello> DecodeHello(std::string_view payload);
Result<Exec> DecodeExec(std::string_view payload);
Result<Output> DecodeOutput(std::string_view payload);
Result<Exit> DecodeExit(std::string_view payload);
Result<SessionOpen> DecodeSessionOpen(std::string_view payload);
Result<SessionOpened> DecodeSessionOpened(std::string_view payload);
Result<SessionExec> DecodeSessionExec(std::string_view payload);
Result<SessionClose> DecodeSessionClose(std::string_view payload);
Result<ErrorMsg> DecodeError(std::string_view payload);
Result<PtyOpen> DecodePtyOpen(std::string_view payload);
Result<PtyOpened> DecodePtyOpened(std::string_view payload);
Result<PtyInput> DecodePtyInput(std::string_view payload);
Result<PtyResize> DecodePtyResize(std::string_view payload);
Result<FileOp> DecodeFileOp(std::string_view payload);
Result<FileResult> DecodeFileResult(std::string_view payload);

// Incremental frame splitter for a byte stream. Append what read() returned, then call Next() until
// it yields nullopt (need more bytes). After an error the stream is unusable (framing is lost): the
// caller must drop the connection. Memory held is bounded by kHeaderSize + kMaxPayload plus the
// last Append.
class FrameReader {
 public:
  void Append(std::string_view bytes);
  Result<std::optional<Frame>> Next();
  size_t buffered() const { return buf_.size() - pos_; }

 private:
  std::string buf_;
  size_t pos_ = 0;
};

// Parses one header (exactly kHeaderSize bytes). Exposed for tests and the fuzzer.
struct Header {
  MsgType type;
  uint64_t request_id;
  uint32_t payload_len;
};
Result<Header> DecodeHeader(std::string_view bytes);

}  // namespace agentfense::runtime::proto
