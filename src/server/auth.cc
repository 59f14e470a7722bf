#include "server/auth.h"

#include <algorithm>
#include <cctype>

namespace agentfense::server {

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  // Length is not secret enough to hide (tokens have a fixed format); content is.
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  size_t n = std::max(a.size(), b.size());
  for (size_t i = 0; i < n; ++i) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

bool CheckBearer(std::string_view authorization, const std::string& expected) {
  if (expected.empty()) return true;
  constexpr std::string_view kScheme = "bearer ";
  if (authorization.size() <= kScheme.size()) return false;
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != kScheme[i]) return false;
  }
  std::string_view token = authorization.substr(kScheme.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) token.remove_suffix(1);
  return ConstantTimeEquals(token, expected);
}

namespace {

// "host:port" / "[v6]:port" / "host" → host (lowercase, brackets kept for v6).
std::string HostPart(std::string_view h) {
  std::string_view host = h;
  if (!h.empty() && h.front() == '[') {
    size_t close = h.find(']');
    if (close == std::string_view::npos) return "";
    host = h.substr(0, close + 1);
    std::string_view rest = h.substr(close + 1);
    if (!rest.empty() && rest.front() != ':') return "";
  } else {
    size_t colon = h.rfind(':');
    if (colon != std::string_view::npos) host = h.substr(0, colon);
  }
  std::string out(host);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  if (!out.empty() && out.back() == '.') out.pop_back();  // "localhost." is localhost
  return out;
}

}  // namespace

bool IsAllowedHost(std::string_view host_header, const std::vector<std::string>& extra) {
  std::string host = HostPart(host_header);
  if (host.empty()) return false;
  if (host == "localhost" || host == "127.0.0.1" || host == "[::1]") return true;
  for (const auto& e : extra) {
    if (!e.empty() && host == HostPart(e)) return true;
  }
  return false;
}

bool IsAllowedOrigin(std::string_view origin, const std::vector<std::string>& extra) {
  std::string_view rest;
  for (std::string_view scheme : {"http://", "https://"}) {
    if (origin.size() > scheme.size()) {
      bool same = true;
      for (size_t i = 0; i < scheme.size(); ++i) {
        same &= std::tolower(static_cast<unsigned char>(origin[i])) == scheme[i];
      }
      if (same) rest = origin.substr(scheme.size());
    }
  }
  // An origin is scheme://host[:port], nothing more: no path, user info or query.
  if (rest.empty() || rest.find_first_of("/?#@ \t") != std::string_view::npos) return false;
  return IsAllowedHost(rest, extra);
}

}  // namespace agentfense::server
