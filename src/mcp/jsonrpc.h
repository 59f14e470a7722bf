// The one JSON-RPC 2.0 codec of the MCP server, shared by its stdio and Streamable HTTP
// transports. Everything a client sends is hostile input: Decode bounds the size and the nesting
// before any parser runs, then checks the envelope strictly (jsonrpc "2.0", an id that is a string
// or an integer, a non-empty method, params an object, no unknown or duplicated members) and says
// why a message is refused with the JSON-RPC code a client understands. Encode* always produce
// one line of valid UTF-8 JSON (invalid bytes in strings are replaced), never an embedded newline:
// that is the stdio framing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

namespace agentfense::mcp::jsonrpc {

using Json = nlohmann::json;

inline constexpr size_t kMaxMessageBytes = 8u << 20;  // a write_file of several MiB fits
inline constexpr int kMaxDepth = 64;

// JSON-RPC 2.0 codes, and those MCP 2026-07-28 reserves (-32020..-32099).
inline constexpr int kParseError = -32700;
inline constexpr int kInvalidRequest = -32600;
inline constexpr int kMethodNotFound = -32601;
inline constexpr int kInvalidParams = -32602;
inline constexpr int kInternalError = -32603;
inline constexpr int kHeaderMismatch = -32020;
inline constexpr int kMissingRequiredClientCapability = -32021;
inline constexpr int kUnsupportedProtocolVersion = -32022;

// A request id: a string or an integer (MCP forbids null; fractions mean nothing here). Kept as
// the JSON value it arrived as, so the reply echoes it exactly.
class Id {
 public:
  // Nullopt when `v` is not a valid id.
  static std::optional<Id> From(const Json& v);
  const Json& json() const { return value_; }
  // A map key that tells 1 from "1".
  std::string Key() const;

 private:
  explicit Id(Json v) : value_(std::move(v)) {}
  Json value_;
};

struct Message {
  enum class Kind { kRequest, kNotification, kResponse };
  Kind kind = Kind::kNotification;
  std::optional<Id> id;  // requests and responses
  std::string method;    // requests and notifications
  Json params;           // an object, or null when absent
};

struct DecodeError {
  int code = kInvalidRequest;
  std::string message;
  std::optional<Id> id;  // when the id could be read: the error answers that request
};

struct Decoded {
  std::optional<Message> message;
  DecodeError error;  // meaningful when !message
};

// Parses one message (one stdio line, one HTTP body). Batches (arrays) are refused: MCP dropped
// them in 2025-06-18 and the official SDKs never send them.
Decoded Decode(std::string_view text, size_t max_bytes = kMaxMessageBytes);

std::string EncodeResult(const Id& id, Json result);
std::string EncodeError(const std::optional<Id>& id, int code, std::string_view message,
                        const Json& data = Json());
std::string EncodeNotification(std::string_view method, const Json& params);
// One line of JSON for any value (invalid UTF-8 replaced), as nlohmann's compact dump writes it.
std::string Dump(const Json& value);

}  // namespace agentfense::mcp::jsonrpc
