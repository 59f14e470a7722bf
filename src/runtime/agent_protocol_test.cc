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

}  // namespace
}  // namespace agentfense::runtime::proto
