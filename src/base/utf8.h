// UTF-8 repair for protobuf `string` fields. The wire contract types ExecResult.stdout/stderr as
// `string`, which protobuf requires to be valid UTF-8: a command printing arbitrary bytes would make
// clients generated from the reference protos reject the whole response (the command already ran;
// its result would be lost). Streams carry `bytes` and stay raw.
#pragma once

#include <string>
#include <string_view>

namespace agentfense {

// True when `s` is well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, ≤ U+10FFFF).
bool IsValidUtf8(std::string_view s);

// `s` with every ill-formed sequence replaced by U+FFFD (one per maximal invalid subpart, as the
// Unicode standard recommends). Valid input is returned unchanged.
std::string ToValidUtf8(std::string_view s);

// `s` made safe to print on a terminal when someone else chose it (an agent's file name or command
// line in a prompt): every byte of an ill-formed sequence, every C0/C1 control character and DEL
// become \xNN, and the bidirectional overrides and isolates (U+202A-202E, U+2066-2069) become
// \u{NNNN}, so the text can neither move the cursor, recolour, clear or rewrite the screen, nor
// reorder what it is printed next to. A backslash is doubled, so the result is unambiguous.
std::string ForTerminal(std::string_view s);

}  // namespace agentfense
