// libFuzzer target: REST JSON decoding (server/json_codec.h), the first code that touches a
// browser's or client's body. Besides "never crash" (ASan/UBSan, and no stack exhaustion: the
// depth guard must stop deep documents before protobuf's recursive parser sees them), it checks
// that whatever decodes re-encodes to JSON that decodes to the same message (nothing the server
// accepted is altered on the way back out).
//
// Input: byte 0 picks the request type; the rest is the body.
#include <google/protobuf/message.h>
#include <google/protobuf/util/message_differencer.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "sandbox/v1/codebase.pb.h"
#include "sandbox/v1/sandbox.pb.h"
#include "server/json_codec.h"

namespace {

namespace v1 = sandbox::v1;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

std::unique_ptr<google::protobuf::Message> NewRequest(uint8_t which) {
  switch (which % 8) {
    case 0: return std::make_unique<v1::CreateSandboxRequest>();
    case 1: return std::make_unique<v1::ExecRequest>();
    case 2: return std::make_unique<v1::CreateCodebaseRequest>();
    case 3: return std::make_unique<v1::UpdatePermissionsRequest>();
    case 4: return std::make_unique<v1::SessionExecRequest>();
    case 5: return std::make_unique<v1::CreateSessionRequest>();
    case 6: return std::make_unique<v1::ListSandboxesRequest>();
    default: return std::make_unique<v1::Sandbox>();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  auto msg = NewRequest(data[0]);
  auto st = agentfense::server::JsonToMessage(body, msg.get());
  if (!st.ok()) return 0;
  std::string json = agentfense::server::MessageToJson(*msg);
  auto again = NewRequest(data[0]);
  auto st2 = agentfense::server::JsonToMessage(json, again.get());
  // Only invalid UTF-8 inside a bytes-free string can make the response unencodable; then the
  // server answers an error object, which is not a request.
  if (!st2.ok()) return 0;
  Check(google::protobuf::util::MessageDifferencer::Equals(*msg, *again));
  return 0;
}
