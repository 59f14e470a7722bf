#include "mcp/jsonrpc.h"

#include <gtest/gtest.h>

namespace agentfense::mcp::jsonrpc {
namespace {
// NOLINTBEGIN(bugprone-unchecked-optional-access): every optional read here follows an
// ASSERT_TRUE on it, which ends the test when it is empty; the check does not model gtest.

Decoded D(std::string_view text) { return Decode(text); }

TEST(JsonRpc, DecodesRequestsNotificationsAndResponses) {
  auto r = D(R"({"jsonrpc":"2.0","id":7,"method":"tools/list","params":{"cursor":"x"}})");
  ASSERT_TRUE(r.message);
  EXPECT_EQ(r.message->kind, Message::Kind::kRequest);
  EXPECT_EQ(r.message->method, "tools/list");
  EXPECT_EQ(r.message->id->json(), 7);
  EXPECT_EQ(r.message->params["cursor"], "x");

  auto s = D(R"({"jsonrpc":"2.0","id":"abc","method":"ping"})");
  ASSERT_TRUE(s.message);
  EXPECT_TRUE(s.message->params.is_null());
  EXPECT_EQ(s.message->id->Key(), "s:abc");

  auto n = D(R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
  ASSERT_TRUE(n.message);
  EXPECT_EQ(n.message->kind, Message::Kind::kNotification);
  EXPECT_FALSE(n.message->id);

  auto resp = D(R"({"jsonrpc":"2.0","id":1,"result":{}})");
  ASSERT_TRUE(resp.message);
  EXPECT_EQ(resp.message->kind, Message::Kind::kResponse);
  auto err = D(R"({"jsonrpc":"2.0","id":null,"error":{"code":1,"message":"x"}})");
  ASSERT_TRUE(err.message);
}

TEST(JsonRpc, IdKeysTellNumbersFromStrings) {
  auto a = Id::From(Json(1));
  auto b = Id::From(Json("1"));
  ASSERT_TRUE(a && b);
  EXPECT_NE(a->Key(), b->Key());
  EXPECT_TRUE(Id::From(Json(-5)));
  EXPECT_TRUE(Id::From(Json(18446744073709551615ull)));
  EXPECT_FALSE(Id::From(Json(1.5)));
  EXPECT_FALSE(Id::From(Json(nullptr)));
  EXPECT_FALSE(Id::From(Json(true)));
  EXPECT_FALSE(Id::From(Json::array()));
  EXPECT_FALSE(Id::From(Json(std::string(1025, 'x'))));
}

struct Bad {
  const char* text;
  int code;
  bool keeps_id;
};

TEST(JsonRpc, RefusesMalformedMessagesWithTheRightCode) {
  const Bad cases[] = {
      {"", kParseError, false},
      {"{", kParseError, false},
      {"not json", kParseError, false},
      {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\"} trailing", kParseError, false},
      {"\"just a string\"", kInvalidRequest, false},
      {"42", kInvalidRequest, false},
      {R"([{"jsonrpc":"2.0","id":1,"method":"ping"}])", kInvalidRequest, false},
      {R"({"id":1,"method":"ping"})", kInvalidRequest, true},
      {R"({"jsonrpc":"1.0","id":1,"method":"ping"})", kInvalidRequest, true},
      {R"({"jsonrpc":2.0,"id":1,"method":"ping"})", kInvalidRequest, true},
      {R"({"jsonrpc":"2.0","id":1,"method":""})", kInvalidRequest, true},
      {R"({"jsonrpc":"2.0","id":1,"method":7})", kInvalidRequest, true},
      {R"({"jsonrpc":"2.0","id":null,"method":"ping"})", kInvalidRequest, false},
      {R"({"jsonrpc":"2.0","id":1.5,"method":"ping"})", kInvalidRequest, false},
      {R"({"jsonrpc":"2.0","id":{},"method":"ping"})", kInvalidRequest, false},
      {R"({"jsonrpc":"2.0","id":1,"method":"ping","params":[1,2]})", kInvalidRequest, true},
      {R"({"jsonrpc":"2.0","id":1,"method":"ping","params":"x"})", kInvalidRequest, true},
      {R"({"jsonrpc":"2.0","id":1,"method":"ping","extra":1})", kInvalidRequest, true},
      {R"({"jsonrpc":"2.0","id":1,"method":"ping","result":{}})", kInvalidRequest, true},
      {R"({"jsonrpc":"2.0","id":1,"method":"a","method":"b"})", kInvalidRequest, true},
      {R"({"jsonrpc":"2.0","id":1,"method":"x","params":{"a":1,"a":2}})", kInvalidRequest, true},
      {R"({"jsonrpc":"2.0","id":1,"result":{},"error":{}})", kInvalidRequest, true},
      {R"({"jsonrpc":"2.0","result":{}})", kInvalidRequest, false},
      {R"({"jsonrpc":"2.0"})", kInvalidRequest, false},
      {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\"}", kParseError, false},
  };
  for (const Bad& b : cases) {
    Decoded d = D(b.text);
    EXPECT_FALSE(d.message) << b.text;
    EXPECT_EQ(d.error.code, b.code) << b.text;
    EXPECT_EQ(d.error.id.has_value(), b.keeps_id) << b.text;
    EXPECT_FALSE(d.error.message.empty());
  }
}

TEST(JsonRpc, BoundsSizeAndDepthBeforeParsing) {
  std::string big = R"({"jsonrpc":"2.0","id":1,"method":"x","params":{"a":")" +
                    std::string(2000, 'a') + "\"}}";
  EXPECT_TRUE(Decode(big, 4096).message);
  Decoded d = Decode(big, 1000);
  EXPECT_FALSE(d.message);
  EXPECT_EQ(d.error.code, kInvalidRequest);

  std::string deep = R"({"jsonrpc":"2.0","id":1,"method":"x","params":)";
  for (int i = 0; i < 100; ++i) deep += "{\"a\":";
  deep += "1";
  for (int i = 0; i < 100; ++i) deep += "}";
  deep += "}";
  Decoded dd = D(deep);
  EXPECT_FALSE(dd.message);
  EXPECT_EQ(dd.error.code, kInvalidRequest);
  // A million nested brackets cost no recursion: refused by the linear pre-scan.
  EXPECT_FALSE(D(std::string(1000000, '[')).message);
}

TEST(JsonRpc, EncodesOneLineOfValidJson) {
  auto id = Id::From(Json("req-1"));
  std::string r = EncodeResult(*id, Json{{"text", std::string("a\nb\xff", 4)}});
  EXPECT_EQ(r.find('\n'), std::string::npos);
  Json back = Json::parse(r);
  EXPECT_EQ(back["id"], "req-1");
  EXPECT_EQ(back["result"]["text"], "a\nb\xEF\xBF\xBD");  // invalid byte replaced by U+FFFD

  Json e = Json::parse(EncodeError(std::nullopt, kParseError, "parse error"));
  EXPECT_TRUE(e["id"].is_null());
  EXPECT_EQ(e["error"]["code"], kParseError);
  EXPECT_FALSE(e["error"].contains("data"));
  Json e2 = Json::parse(EncodeError(Id::From(Json(3)), -32022, "x", Json{{"supported", {"a"}}}));
  EXPECT_EQ(e2["id"], 3);
  EXPECT_EQ(e2["error"]["data"]["supported"][0], "a");

  Json n = Json::parse(EncodeNotification("notifications/progress", Json{{"progress", 1}}));
  EXPECT_FALSE(n.contains("id"));
  EXPECT_EQ(n["method"], "notifications/progress");
}

// Dump's fast string path writes exactly what nlohmann's compact dump writes.
TEST(JsonRpc, DumpMatchesNlohmann) {
  std::string all_bytes;
  for (int c = 1; c < 128; ++c) all_bytes += static_cast<char>(c);
  const Json values[] = {
      Json(nullptr), Json(true), Json(-3), Json(18446744073709551615ull), Json(0.1), Json(1e300),
      Json(""), Json(all_bytes), Json("é \u00e9 \U0001f600 \"q\" \\"), Json::array(),
      Json::object(), Json{{"b", {1, 2.5, "x\n"}}, {"a", {{"nested", Json::object()}}}},
      Json{{"k\tey", std::string("\0ctl\x1f", 5)}}};
  for (const Json& v : values) {
    EXPECT_EQ(Dump(v), v.dump(-1, ' ', false, Json::error_handler_t::replace)) << v.dump();
  }
  // Invalid UTF-8 is replaced, as nlohmann's replace handler does.
  Json bad = std::string("a\xff" "b");
  EXPECT_EQ(Dump(bad), bad.dump(-1, ' ', false, Json::error_handler_t::replace));
}

TEST(JsonRpc, DecodeRoundTripsWhatEncodeProduces) {
  auto id = Id::From(Json(12));
  Decoded d = D(EncodeResult(*id, Json{{"x", 1}}));
  ASSERT_TRUE(d.message);
  EXPECT_EQ(d.message->kind, Message::Kind::kResponse);
  EXPECT_EQ(d.message->id->Key(), id->Key());
}

// NOLINTEND(bugprone-unchecked-optional-access)
}  // namespace
}  // namespace agentfense::mcp::jsonrpc
