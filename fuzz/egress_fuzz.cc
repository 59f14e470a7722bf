// libFuzzer target: everything of the network filter that a sandboxed process or an API client
// feeds with bytes of its choosing (docs/NETWORK.md): egress rules (CreateSandbox, UpdateEgress,
// --allow-net), DNS questions and the answers of an upstream server, and the first bytes of a TCP
// connection (TLS ClientHello, HTTP request, CONNECT). Besides "never crash or overread", it
// checks:
//   - a rule's canonical text parses again to the same text (what is stored means what was said);
//   - an answer built for a parsed question parses as a question's answer of the same id and name;
//   - a name read from a connection's first bytes is a valid, lower-case host name.
//
// Input: byte 0 picks the parser; the rest is its input.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "net/dns_message.h"
#include "net/peek.h"
#include "policy/egress.h"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace agentfense;
  if (size == 0) return 0;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0: {
      auto rule = policy::ParseEgressRule(in);
      if (rule.ok()) {
        auto again = policy::ParseEgressRule(rule->text);
        Check(again.ok() && again->text == rule->text);
      }
      break;
    }
    case 1: {
      auto q = net::ParseQuery(in);
      if (q) {
        std::string answer = net::BuildAnswer(*q, net::Rcode::kRefused, {}, 0, "why");
        Check(answer.size() >= 12 && answer[0] == static_cast<char>(q->id >> 8));
        (void)net::ParseUpstreamAnswer(answer, q->name);
      }
      break;
    }
    case 2:
      (void)net::ParseUpstreamAnswer(in, "a.test");
      break;
    default: {
      auto r = net::PeekHostName(in);
      if (!r.name.empty()) Check(policy::NormalizeHostName(r.name) == r.name);
      break;
    }
  }
  return 0;
}
