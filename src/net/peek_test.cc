// The names a TCP client announces: TLS server_name, HTTP Host, CONNECT target.
#include "net/peek.h"

#include <gtest/gtest.h>

namespace agentfense::net {
namespace {

using Kind = PeekResult::Kind;

// A minimal TLS 1.2 record with a ClientHello carrying `sni` (or none).
std::string ClientHello(const std::string& sni) {
  std::string ext;
  if (!sni.empty()) {
    std::string list;
    list += '\0';  // host_name
    list += static_cast<char>(sni.size() >> 8);
    list += static_cast<char>(sni.size());
    list += sni;
    std::string body;
    body += static_cast<char>(list.size() >> 8);
    body += static_cast<char>(list.size());
    body += list;
    ext += std::string("\x00\x00", 2);
    ext += static_cast<char>(body.size() >> 8);
    ext += static_cast<char>(body.size());
    ext += body;
  }
  std::string hello = std::string("\x03\x03", 2) + std::string(32, 'r') + std::string(1, '\0') +
                      std::string("\x00\x02\x13\x01", 4) + std::string("\x01\x00", 2);
  hello += static_cast<char>(ext.size() >> 8);
  hello += static_cast<char>(ext.size());
  hello += ext;
  std::string hs = std::string(1, '\x01') + '\0' + static_cast<char>(hello.size() >> 8) +
                   static_cast<char>(hello.size()) + hello;
  return std::string("\x16\x03\x01", 3) + static_cast<char>(hs.size() >> 8) +
         static_cast<char>(hs.size()) + hs;
}

TEST(Peek, TlsServerName) {
  std::string hello = ClientHello("Files.PyPI.org");
  auto r = PeekHostName(hello);
  EXPECT_EQ(r.kind, Kind::kTls);
  EXPECT_EQ(r.name, "files.pypi.org");
  // Every prefix asks for more; nothing is decided on half a hello.
  for (size_t n = 1; n < hello.size(); ++n) {
    EXPECT_EQ(PeekHostName(hello.substr(0, n)).kind, Kind::kNeedMore) << n;
  }
  auto none = PeekHostName(ClientHello(""));
  EXPECT_EQ(none.kind, Kind::kTls);
  EXPECT_EQ(none.name, "");
  auto literal = PeekHostName(ClientHello("10.0.0.1"));
  EXPECT_EQ(literal.name, "");
  EXPECT_EQ(literal.literal, "10.0.0.1");
}

TEST(Peek, HttpHost) {
  auto r = PeekHostName("GET /x HTTP/1.1\r\nUser-Agent: t\r\nHOST: Example.test:8080\r\n\r\n");
  EXPECT_EQ(r.kind, Kind::kHttp);
  EXPECT_EQ(r.name, "example.test");
  EXPECT_EQ(PeekHostName("GET / HTTP/1.1\r\nHost: exam").kind, Kind::kNeedMore);
  auto ip = PeekHostName("GET / HTTP/1.1\r\nHost: 198.51.100.10\r\n\r\n");
  EXPECT_EQ(ip.kind, Kind::kHttp);
  EXPECT_EQ(ip.name, "");
  EXPECT_EQ(ip.literal, "198.51.100.10");
  auto v6 = PeekHostName("GET / HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n");
  EXPECT_EQ(v6.literal, "2001:db8::1");
  auto nohost = PeekHostName("GET / HTTP/1.0\r\n\r\n");
  EXPECT_EQ(nohost.kind, Kind::kHttp);
  EXPECT_EQ(nohost.name, "");
}

TEST(Peek, Connect) {
  std::string req = "CONNECT github.com:443 HTTP/1.1\r\nHost: github.com:443\r\n\r\nTLS";
  auto r = PeekHostName(req);
  EXPECT_EQ(r.kind, Kind::kConnect);
  EXPECT_EQ(r.name, "github.com");
  EXPECT_EQ(r.port, 443);
  EXPECT_EQ(req.substr(r.consumed), "TLS");
  EXPECT_EQ(PeekHostName("CONNECT github.com HTTP/1.1\r\n\r\n").kind, Kind::kOther);  // no port
}

TEST(Peek, OtherProtocols) {
  EXPECT_EQ(PeekHostName("SSH-2.0-OpenSSH_9.2\r\n").kind, Kind::kOther);
  EXPECT_EQ(PeekHostName(std::string("\x00\x1c\x12\x34", 4)).kind, Kind::kOther);  // DNS/TCP
  EXPECT_EQ(PeekHostName(std::string("\x16\x02\x00", 3)).kind, Kind::kOther);
  EXPECT_EQ(PeekHostName("").kind, Kind::kNeedMore);
  EXPECT_EQ(PeekHostName("GET").kind, Kind::kNeedMore);
  // An endless header block is given up at the bound, not buffered forever.
  std::string big = "GET / HTTP/1.1\r\n" + std::string(kMaxPeekBytes, 'a');
  EXPECT_EQ(PeekHostName(big).kind, Kind::kOther);
}

}  // namespace
}  // namespace agentfense::net
