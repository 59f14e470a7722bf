#include "base/utf8.h"

#include <gtest/gtest.h>

namespace agentfense {
namespace {

const std::string kFffd = "\xEF\xBF\xBD";

TEST(Utf8, ValidInputIsUnchanged) {
  for (const std::string& s : {std::string(""), std::string("plain ascii\n"),
                               std::string("h\xC3\xA9llo"), std::string("\xE2\x82\xAC"),
                               std::string("\xF0\x9F\x98\x80"), std::string("nul\0inside", 10)}) {
    EXPECT_TRUE(IsValidUtf8(s)) << s;
    EXPECT_EQ(ToValidUtf8(s), s);
  }
}

TEST(Utf8, IllFormedSequencesAreReplaced) {
  struct Case {
    std::string in, out;
  } cases[] = {
      {"a\xFF" "b", "a" + kFffd + "b"},                 // never a lead byte
      {"\xC0\xAF", kFffd + kFffd},                      // overlong lead bytes are invalid alone
      {"\xE0\x80\xAF", kFffd + kFffd + kFffd},          // overlong 3-byte form
      {"\xED\xA0\x80", kFffd + kFffd + kFffd},          // UTF-16 surrogate
      {"\xF4\x90\x80\x80", kFffd + kFffd + kFffd + kFffd},  // above U+10FFFF
      {"\xE2\x82", kFffd},                              // truncated at the end: one unit
      {"\xE2\x82x", kFffd + "x"},                       // truncated before ASCII
      {"\x80\x80", kFffd + kFffd},                      // lone continuation bytes
      {"ok\xF0\x9F\x98", "ok" + kFffd},
  };
  for (const auto& c : cases) {
    EXPECT_FALSE(IsValidUtf8(c.in));
    std::string got = ToValidUtf8(c.in);
    EXPECT_EQ(got, c.out) << "input of " << c.in.size() << " bytes";
    EXPECT_TRUE(IsValidUtf8(got));
  }
}

TEST(Utf8, EveryByteStringBecomesValid) {
  // All two-byte strings: the repair always yields valid UTF-8 and never drops ASCII.
  for (int a = 0; a < 256; ++a) {
    for (int b = 0; b < 256; ++b) {
      std::string s{static_cast<char>(a), static_cast<char>(b)};
      std::string got = ToValidUtf8(s);
      ASSERT_TRUE(IsValidUtf8(got)) << a << "," << b;
      if (b < 0x80) {
        ASSERT_EQ(got.back(), static_cast<char>(b));
      }
    }
  }
}

TEST(Utf8, ForTerminalNeutralizesWhatCouldRewriteTheScreen) {
  EXPECT_EQ(ForTerminal("/src/a.py"), "/src/a.py");
  EXPECT_EQ(ForTerminal("caf\xC3\xA9"), "caf\xC3\xA9");  // printable UTF-8 stays
  EXPECT_EQ(ForTerminal("a\x1b[2Kb\r\n"), "a\\x1b[2Kb\\x0d\\x0a");
  EXPECT_EQ(ForTerminal("\xC2\x9b" "31m"), "\\xc2\\x9b31m");      // C1 CSI
  EXPECT_EQ(ForTerminal("x\xE2\x80\xAEtxt.exe"), "x\\u{202e}txt.exe");  // right-to-left override
  EXPECT_EQ(ForTerminal("\xFF\x7f"), "\\xff\\x7f");
  EXPECT_EQ(ForTerminal("a\\x41"), "a\\\\x41") << "a literal backslash cannot fake an escape";
  EXPECT_EQ(ForTerminal(std::string("n\0ul", 4)), "n\\x00ul");
}

}  // namespace
}  // namespace agentfense
