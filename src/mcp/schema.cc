#include "mcp/schema.h"

#include <fmt/format.h>

#include <cmath>

namespace agentfense::mcp {
namespace {

using Json = nlohmann::json;

Error Invalid(const std::string& where, const std::string& why) {
  return Error(ErrorCode::kInvalidArgument, where + ": " + why);
}

bool HasType(const Json& value, const std::string& type) {
  if (type == "object") return value.is_object();
  if (type == "array") return value.is_array();
  if (type == "string") return value.is_string();
  if (type == "boolean") return value.is_boolean();
  if (type == "null") return value.is_null();
  if (type == "integer") {
    if (value.is_number_integer()) return true;
    // JSON Schema counts 2.0 as an integer; clients written in JavaScript may send it so.
    if (!value.is_number_float()) return false;
    double d = value.get<double>();
    return std::trunc(d) == d && std::fabs(d) < 9007199254740992.0;  // 2^53
  }
  if (type == "number") return value.is_number();
  return false;
}

size_t CodePoints(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string Short(const Json& v) {
  std::string s = v.dump(-1, ' ', false, Json::error_handler_t::replace);
  return s.size() > 40 ? s.substr(0, 40) + "..." : s;
}

}  // namespace

Status ValidateJson(const Json& schema, const Json& value, const std::string& where) {
  for (const auto& [key, unused] : schema.items()) {
    static const char* const kKnown[] = {
        "type",    "properties", "required",  "additionalProperties", "items",
        "enum",    "minimum",    "maximum",   "minLength",            "maxLength",
        "description", "title",  "default"};
    bool known = false;
    for (const char* k : kKnown) known |= key == k;
    if (!known) return Error(ErrorCode::kInternal, "schema keyword not supported: " + key);
  }
  if (auto t = schema.find("type"); t != schema.end()) {
    bool ok = false;
    std::string names;
    for (const auto& name : t->is_array() ? *t : Json::array({*t})) {
      ok |= HasType(value, name.get<std::string>());
      names += (names.empty() ? "" : " or ") + name.get<std::string>();
    }
    if (!ok) return Invalid(where, "must be of type " + names);
  }
  if (auto e = schema.find("enum"); e != schema.end()) {
    bool found = false;
    for (const auto& allowed : *e) found |= allowed == value;
    if (!found) return Invalid(where, "must be one of " + Short(*e));
  }
  if (value.is_number()) {
    if (auto m = schema.find("minimum"); m != schema.end() && value.get<double>() < m->get<double>()) {
      return Invalid(where, fmt::format("must be >= {}", m->dump()));
    }
    if (auto m = schema.find("maximum"); m != schema.end() && value.get<double>() > m->get<double>()) {
      return Invalid(where, fmt::format("must be <= {}", m->dump()));
    }
  }
  if (value.is_string()) {
    size_t n = CodePoints(value.get_ref<const std::string&>());
    if (auto m = schema.find("minLength"); m != schema.end() && n < m->get<size_t>()) {
      return Invalid(where, fmt::format("must be at least {} characters long", m->get<size_t>()));
    }
    if (auto m = schema.find("maxLength"); m != schema.end() && n > m->get<size_t>()) {
      return Invalid(where, fmt::format("must be at most {} characters long", m->get<size_t>()));
    }
  }
  if (value.is_object()) {
    const Json empty = Json::object();
    const Json& props = schema.contains("properties") ? schema["properties"] : empty;
    if (auto r = schema.find("required"); r != schema.end()) {
      for (const auto& name : *r) {
        if (!value.contains(name.get<std::string>())) {
          return Invalid(where, "missing required property \"" + name.get<std::string>() + "\"");
        }
      }
    }
    const bool closed = schema.contains("additionalProperties") &&
                        schema["additionalProperties"].is_boolean() &&
                        !schema["additionalProperties"].get<bool>();
    for (const auto& [name, v] : value.items()) {
      auto p = props.find(name);
      if (p == props.end()) {
        if (closed) return Invalid(where, "unknown property \"" + name.substr(0, 64) + "\"");
        continue;
      }
      std::string sub = where;
      sub += '.';
      sub += name;
      AF_RETURN_IF_ERROR(ValidateJson(*p, v, sub));
    }
  }
  if (value.is_array()) {
    if (auto items = schema.find("items"); items != schema.end()) {
      for (size_t i = 0; i < value.size(); ++i) {
        AF_RETURN_IF_ERROR(ValidateJson(*items, value[i], fmt::format("{}[{}]", where, i)));
      }
    }
  }
  return OkStatus();
}

}  // namespace agentfense::mcp
