#include "runtime/agent_protocol.h"

#include <gtest/gtest.h>

namespace agentfense::runtime::proto {
namespace {

Frame OneFrame(const std::string& bytes) {
  FrameReader r;
  r.Append(bytes);
  auto f = r.Next();
  EXPECT_TRUE(f.ok());
  EXPECT_TRUE(f.ok() && f->has_value());
  EXPECT_EQ(r.buffered(), 0u);
  return f.ok() && f->has_value() ? **f : Frame{};
}

TEST(AgentProtocol, ExecRoundTrip) {
  Exec m;
  m.argv = {"/bin/echo", "a b", std::string("\xff\x01", 2)};
  m.stdin_data = std::string("in\0put", 6);
  m.env = {{"A", "1"}, {"B", "x=y"}, {"EMPTY", ""}};
  m.workdir = "/workspace/sub";
  m.timeout_ms = 1234;
  m.output_cap = 99;
  auto bytes = Encode(42, m);
  ASSERT_TRUE(bytes.ok());
  Frame f = OneFrame(*bytes);
  EXPECT_EQ(f.type, MsgType::kExec);
  EXPECT_EQ(f.request_id, 42u);
  auto d = DecodeExec(f.payload);
  ASSERT_TRUE(d.ok()) << d.error().ToString();
  EXPECT_EQ(d->argv, m.argv);
  EXPECT_EQ(d->stdin_data, m.stdin_data);
  EXPECT_EQ(d->env, m.env);
  EXPECT_EQ(d->workdir, m.workdir);
  EXPECT_EQ(d->timeout_ms, 1234u);
  EXPECT_EQ(d->output_cap, 99u);
  EXPECT_TRUE(d->shell_command.empty());
}

TEST(AgentProtocol, OtherMessagesRoundTrip) {
  Exit e{-3, 9, 777, true, true, true};
  auto de = DecodeExit(OneFrame(*Encode(1, e)).payload);
  ASSERT_TRUE(de.ok());
  EXPECT_EQ(de->exit_code, -3);
  EXPECT_EQ(de->signal, 9);
  EXPECT_EQ(de->duration_us, 777u);
  EXPECT_TRUE(de->timed_out && de->truncated && de->oom);

  Output o{Stream::kStderr, std::string("\0bin\xff", 5)};
  auto dout = DecodeOutput(OneFrame(*Encode(2, o)).payload);
  ASSERT_TRUE(dout.ok());
  EXPECT_EQ(dout->stream, Stream::kStderr);
  EXPECT_EQ(dout->data, o.data);

  SessionExec se{7, "cd /tmp\ncat <<EOF\nx\nEOF\n", 5, 6};
  auto dse = DecodeSessionExec(OneFrame(*Encode(3, se)).payload);
  ASSERT_TRUE(dse.ok());
  EXPECT_EQ(dse->session_id, 7u);
  EXPECT_EQ(dse->command, se.command);

  Hello h;
  h.software = "x";
  h.has_bash = true;
  auto dh = DecodeHello(OneFrame(*Encode(0, h)).payload);
  ASSERT_TRUE(dh.ok());
  EXPECT_TRUE(dh->has_bash);
  EXPECT_EQ(dh->max_version, kVersion);

  auto derr = DecodeError(OneFrame(*Encode(4, ErrorMsg{5, "nope"})).payload);
  ASSERT_TRUE(derr.ok());
  EXPECT_EQ(derr->code, 5u);
  EXPECT_EQ(derr->message, "nope");

  SessionOpen so;
  so.env = {{"K", "V"}};
  auto dso = DecodeSessionOpen(OneFrame(*Encode(5, so)).payload);
  ASSERT_TRUE(dso.ok());
  EXPECT_EQ(dso->env, so.env);
}

TEST(AgentProtocol, ByteByByteFeedingYieldsFrames) {
  std::string all = *Encode(1, Output{Stream::kStdout, "abc"}) + *Encode(2, Ok{});
  FrameReader r;
  std::vector<Frame> got;
  for (char c : all) {
    r.Append(std::string_view(&c, 1));
    auto f = r.Next();
    ASSERT_TRUE(f.ok());
    if (*f) got.push_back(**f);
  }
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].request_id, 1u);
  EXPECT_EQ(got[1].type, MsgType::kOk);
}

TEST(AgentProtocol, TruncatedFrameWaits) {
  std::string b = *Encode(1, Output{Stream::kStdout, "abcdef"});
  FrameReader r;
  r.Append(b.substr(0, b.size() - 1));
  auto f = r.Next();
  ASSERT_TRUE(f.ok());
  EXPECT_FALSE(f->has_value());
}

TEST(AgentProtocol, RejectsBadHeaders) {
  std::string good = *Encode(1, Ok{});
  auto mutate = [&](size_t off, char v) {
    std::string b = good;
    b[off] = v;
    FrameReader r;
    r.Append(b);
    return r.Next();
  };
  EXPECT_FALSE(mutate(0, 'X').ok());  // magic
  EXPECT_FALSE(mutate(4, 2).ok());    // version 2
  EXPECT_FALSE(mutate(6, 99).ok());   // unknown type
  EXPECT_FALSE(mutate(6, 0).ok());    // type 0
  EXPECT_FALSE(mutate(8, 1).ok());    // flags
  // Oversize payload length is refused from the header alone, without waiting for the bytes.
  std::string big = good;
  big[23] = 0x7f;
  FrameReader r;
  r.Append(big);
  auto f = r.Next();
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.error().message().find("exceeds"), std::string::npos);
}

TEST(AgentProtocol, EncoderRefusesOversize) {
  Exec m;
  m.shell_command = "true";
  m.stdin_data.assign(kMaxPayload + 1, 'x');
  auto b = Encode(1, m);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.error().code(), ErrorCode::kResourceExhausted);
}

TEST(AgentProtocol, RejectsBadPayloads) {
  // Field length beyond payload.
  EXPECT_FALSE(DecodeExit(std::string("\x1e\x00\xff\x00\x00\x00", 6)).ok());
  // Truncated field header.
  EXPECT_FALSE(DecodeExit(std::string("\x1e\x00\x08", 3)).ok());
  // Integer of wrong width.
  EXPECT_FALSE(DecodeExit(std::string("\x1e\x00\x01\x00\x00\x00\x05", 7)).ok());
  // Both argv and shell command, or neither.
  Exec both;
  both.argv = {"a"};
  both.shell_command = "b";
  EXPECT_FALSE(DecodeExec(OneFrame(*Encode(1, both)).payload).ok());
  Exec neither;
  EXPECT_FALSE(DecodeExec(OneFrame(*Encode(1, neither)).payload).ok());
  // NUL inside an argument would be cut by execve.
  Exec nul;
  nul.argv = {std::string("a\0b", 3)};
  EXPECT_FALSE(DecodeExec(OneFrame(*Encode(1, nul)).payload).ok());
  // Env key with '=' or empty.
  Exec badenv;
  badenv.shell_command = "x";
  badenv.env = {{"A=B", "c"}};
  EXPECT_FALSE(DecodeExec(OneFrame(*Encode(1, badenv)).payload).ok());
  badenv.env = {{"", "c"}};
  EXPECT_FALSE(DecodeExec(OneFrame(*Encode(1, badenv)).payload).ok());
  // Duplicate scalar field.
  std::string p = OneFrame(*Encode(1, SessionClose{5})).payload;
  EXPECT_FALSE(DecodeSessionClose(p + p).ok());
  // Missing required field.
  EXPECT_FALSE(DecodeSessionClose("").ok());
  EXPECT_FALSE(DecodeHello("").ok());
}

TEST(AgentProtocol, UnknownFieldsAreSkipped) {
  std::string p = OneFrame(*Encode(1, SessionClose{5})).payload;
  std::string extra("\x99\x01\x02\x00\x00\x00zz", 8);
  auto d = DecodeSessionClose(extra + p);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->session_id, 5u);
}

// Appends one raw TLV field (tag, bytes) to a payload, as a hostile peer would.
std::string Field(uint16_t tag, std::string_view v) {
  std::string f;
  f.push_back(static_cast<char>(tag & 0xff));
  f.push_back(static_cast<char>(tag >> 8));
  uint32_t len = static_cast<uint32_t>(v.size());
  for (int i = 0; i < 4; ++i) f.push_back(static_cast<char>((len >> (8 * i)) & 0xff));
  f.append(v);
  return f;
}
std::string U64Bytes(uint64_t v) {
  std::string b;
  for (int i = 0; i < 8; ++i) b.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
  return b;
}
// Wire tags of the PTY fields (part of the format: these numbers must never change).
constexpr uint16_t kRowsTag = 60, kColsTag = 61, kDataTag = 21, kArgvTag = 10;

TEST(AgentProtocol, PtyMessagesRoundTrip) {
  PtyOpen o;
  o.argv = {"/bin/bash", "-i"};
  o.env = {{"TERM", "xterm"}, {"A", "b=c"}};
  o.workdir = "sub";
  o.rows = 50;
  o.cols = 132;
  Frame f = OneFrame(*Encode(77, o));
  EXPECT_EQ(f.type, MsgType::kPtyOpen);
  EXPECT_EQ(f.request_id, 77u);
  auto d = DecodePtyOpen(f.payload);
  ASSERT_TRUE(d.ok()) << d.error().ToString();
  EXPECT_EQ(d->argv, o.argv);
  EXPECT_EQ(d->env, o.env);
  EXPECT_EQ(d->workdir, "sub");
  EXPECT_EQ(d->rows, 50);
  EXPECT_EQ(d->cols, 132);
  // Default shell: no argv at all.
  PtyOpen dflt;
  auto dd = DecodePtyOpen(OneFrame(*Encode(1, dflt)).payload);
  ASSERT_TRUE(dd.ok());
  EXPECT_TRUE(dd->argv.empty());
  EXPECT_EQ(dd->rows, 24);
  EXPECT_EQ(dd->cols, 80);

  std::string bytes("\x03\x00\x1b[A\xff", 6);
  Frame fi = OneFrame(*Encode(77, PtyInput{bytes}));
  EXPECT_EQ(fi.type, MsgType::kPtyInput);
  auto di = DecodePtyInput(fi.payload);
  ASSERT_TRUE(di.ok());
  EXPECT_EQ(di->data, bytes);

  Frame fr = OneFrame(*Encode(77, PtyResize{kMaxPtyDimension, 1}));
  EXPECT_EQ(fr.type, MsgType::kPtyResize);
  auto dr = DecodePtyResize(fr.payload);
  ASSERT_TRUE(dr.ok());
  EXPECT_EQ(dr->rows, kMaxPtyDimension);
  EXPECT_EQ(dr->cols, 1);

  Frame fo = OneFrame(*Encode(77, PtyOpened{}));
  EXPECT_EQ(fo.type, MsgType::kPtyOpened);
  EXPECT_TRUE(DecodePtyOpened(fo.payload).ok());

  // The capability travels in Hello only when set, and decodes back.
  Hello h;
  EXPECT_FALSE(DecodeHello(OneFrame(*Encode(0, h)).payload)->has_pty);
  h.has_pty = true;
  EXPECT_TRUE(DecodeHello(OneFrame(*Encode(0, h)).payload)->has_pty);
}

TEST(AgentProtocol, PtyMessagesRefuseBadInput) {
  // Sizes: zero, beyond the bound, beyond 16 bits, missing.
  for (auto [r, c] : std::vector<std::pair<uint16_t, uint16_t>>{
           {0, 80}, {24, 0}, {kMaxPtyDimension + 1, 80}, {24, 65535}}) {
    EXPECT_FALSE(Encode(1, PtyResize{r, c}).ok()) << r << "x" << c;
    PtyOpen o;
    o.rows = r;
    o.cols = c;
    EXPECT_FALSE(Encode(1, o).ok());
  }
  EXPECT_FALSE(DecodePtyResize(Field(kRowsTag, U64Bytes(24))).ok());  // no cols
  EXPECT_FALSE(
      DecodePtyResize(Field(kRowsTag, U64Bytes(uint64_t{1} << 20)) + Field(kColsTag, U64Bytes(80)))
          .ok());
  EXPECT_FALSE(
      DecodePtyResize(Field(kRowsTag, U64Bytes(65536 + 24)) + Field(kColsTag, U64Bytes(80)))
          .ok());                        // would truncate to 24 in 16 bits
  EXPECT_FALSE(DecodePtyOpen("").ok());  // no size
  EXPECT_FALSE(
      DecodePtyResize(Field(kRowsTag, "\x18") + Field(kColsTag, U64Bytes(80))).ok());  // 1 byte
  // Duplicate size fields could make a checker and a user disagree.
  std::string good = Field(kRowsTag, U64Bytes(24)) + Field(kColsTag, U64Bytes(80));
  EXPECT_TRUE(DecodePtyResize(good).ok());
  EXPECT_FALSE(DecodePtyResize(good + Field(kRowsTag, U64Bytes(25))).ok());
  // NUL inside argv, an empty program name, a bad env entry.
  EXPECT_FALSE(DecodePtyOpen(good + Field(kArgvTag, std::string("sh\0x", 4))).ok());
  EXPECT_FALSE(DecodePtyOpen(good + Field(kArgvTag, "")).ok());
  PtyOpen badenv;
  badenv.env = {{"A=B", "c"}};
  EXPECT_FALSE(DecodePtyOpen(OneFrame(*Encode(1, badenv)).payload).ok());
  // Too many arguments is refused by both sides.
  PtyOpen many;
  many.argv.assign(kMaxArgs + 1, "x");
  EXPECT_FALSE(Encode(1, many).ok());
  std::string many_payload = good;
  for (size_t i = 0; i <= kMaxArgs; ++i) many_payload += Field(kArgvTag, "x");
  EXPECT_FALSE(DecodePtyOpen(many_payload).ok());
  // Input: bounded per frame, data required, duplicates refused.
  EXPECT_TRUE(Encode(1, PtyInput{std::string(kMaxPtyInput, 'a')}).ok());
  EXPECT_FALSE(Encode(1, PtyInput{std::string(kMaxPtyInput + 1, 'a')}).ok());
  EXPECT_FALSE(DecodePtyInput(Field(kDataTag, std::string(kMaxPtyInput + 1, 'a'))).ok());
  EXPECT_FALSE(DecodePtyInput("").ok());
  EXPECT_FALSE(DecodePtyInput(Field(kDataTag, "a") + Field(kDataTag, "b")).ok());
  // Truncated TLV.
  EXPECT_FALSE(DecodePtyInput(Field(kDataTag, "abc").substr(0, 7)).ok());
  EXPECT_FALSE(DecodePtyOpened("\x01").ok());
  // Unknown fields are skipped (forward compatibility).
  auto skip = DecodePtyResize(Field(999, "future") + good);
  ASSERT_TRUE(skip.ok());
  EXPECT_EQ(skip->rows, 24);
}

TEST(AgentProtocol, PtyFrameTypesAreKnownToTheFramer) {
  // The header check accepts the new types and still refuses the next unassigned one.
  std::string hdr = *Encode(1, PtyOpened{});
  EXPECT_TRUE(DecodeHeader(hdr).ok());
  hdr[6] = static_cast<char>(kMaxMsgType + 1);
  EXPECT_FALSE(DecodeHeader(hdr).ok());
  EXPECT_EQ(static_cast<uint16_t>(MsgType::kFileResult), kMaxMsgType);
}

TEST(AgentProtocol, FileMessagesRoundTrip) {
  FileOp op;
  op.op = FileOpKind::kEdit;
  op.path = "src/a b.py";
  op.offset = 5;
  op.limit = 7;
  op.depth = 2;
  op.flags = kFileEditAll;
  op.data = std::string("old\0x", 5);
  op.replacement = "new";
  auto d = DecodeFileOp(OneFrame(*Encode(9, op)).payload);
  ASSERT_TRUE(d.ok()) << d.error().ToString();
  EXPECT_EQ(d->op, FileOpKind::kEdit);
  EXPECT_EQ(d->path, op.path);
  EXPECT_EQ(d->offset, 5u);
  EXPECT_EQ(d->flags, kFileEditAll);
  EXPECT_EQ(d->data, op.data);
  EXPECT_EQ(d->replacement, "new");

  FileResult r;
  r.stat = FileEntry{"src", FileType::kDirectory, 4096, 0755, 1234567890123};
  r.data = std::string("\xff\0bytes", 7);
  r.eof = true;
  r.truncated = true;
  r.count = 3;
  r.entries = {FileEntry{"a.py", FileType::kFile, 12, 0644, -1},
               FileEntry{"link", FileType::kSymlink, 3, 0777, 0}};
  auto dr = DecodeFileResult(OneFrame(*Encode(10, r)).payload);
  ASSERT_TRUE(dr.ok()) << dr.error().ToString();
  EXPECT_EQ(dr->stat.path, "src");
  EXPECT_EQ(dr->stat.type, FileType::kDirectory);
  EXPECT_EQ(dr->stat.mode, 0755u);
  EXPECT_EQ(dr->stat.mtime_ns, 1234567890123);
  EXPECT_EQ(dr->data, r.data);
  EXPECT_TRUE(dr->eof && dr->truncated);
  EXPECT_EQ(dr->count, 3u);
  ASSERT_EQ(dr->entries.size(), 2u);
  EXPECT_EQ(dr->entries[0].path, "a.py");
  EXPECT_EQ(dr->entries[0].mtime_ns, -1);
  EXPECT_EQ(dr->entries[1].type, FileType::kSymlink);

  // The errno of a failed operation travels beside the code; a nonsense one is dropped.
  ErrorMsg e{5, "/workspace/x", 13};
  auto de = DecodeError(OneFrame(*Encode(11, e)).payload);
  ASSERT_TRUE(de.ok());
  EXPECT_EQ(de->sys_errno, 13);
  e.sys_errno = -4;
  EXPECT_EQ(DecodeError(OneFrame(*Encode(12, e)).payload)->sys_errno, 0);

  Hello h;
  h.has_files = true;
  EXPECT_TRUE(DecodeHello(OneFrame(*Encode(0, h)).payload)->has_files);
  EXPECT_FALSE(DecodeHello(OneFrame(*Encode(0, Hello{})).payload)->has_files);
}

TEST(AgentProtocol, FileMessagesRefuseBadInput) {
  auto decode = [](const FileOp& op) { return DecodeFileOp(OneFrame(*Encode(1, op)).payload); };
  FileOp read;
  read.op = FileOpKind::kRead;
  read.path = "a";
  read.limit = kMaxFileChunk;
  EXPECT_TRUE(decode(read).ok());
  read.limit = 0;
  EXPECT_FALSE(decode(read).ok());
  read.limit = kMaxFileChunk + 1;
  EXPECT_FALSE(decode(read).ok());
  read.limit = 1;
  read.offset = uint64_t{1} << 63;  // beyond off_t
  EXPECT_FALSE(decode(read).ok());
  FileOp list;
  list.op = FileOpKind::kList;
  list.limit = 10;
  list.depth = 0;
  EXPECT_FALSE(decode(list).ok());
  list.depth = kMaxListDepth + 1;
  EXPECT_FALSE(decode(list).ok());
  FileOp edit;
  edit.op = FileOpKind::kEdit;
  edit.path = "a";
  EXPECT_FALSE(decode(edit).ok());  // nothing to find
  FileOp write;
  write.op = FileOpKind::kWrite;
  write.path = "a";
  write.flags = 4;
  EXPECT_FALSE(decode(write).ok());
  FileOp nul;
  nul.path = std::string("a\0b", 3);
  EXPECT_FALSE(decode(nul).ok());
  // An operation number this build does not know, and a result without its stat.
  EXPECT_FALSE(DecodeFileOp(Field(70, std::string(8, '\x09')) + Field(71, "a")).ok());
  EXPECT_FALSE(DecodeFileResult("").ok());
  FileOp huge;
  huge.op = FileOpKind::kWrite;
  huge.data.assign(kMaxFileChunk + 1, 'x');
  EXPECT_FALSE(Encode(1, huge).ok());
}

}  // namespace
}  // namespace agentfense::runtime::proto
