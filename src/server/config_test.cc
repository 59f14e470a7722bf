#include "server/config.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

namespace agentfense::server {
namespace {

TEST(Config, EmbeddedDefaultsAreLoopbackAndValid) {
  auto c = LoadConfig({}, "");
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ(c->server.grpc_addr, "127.0.0.1:9000");
  EXPECT_EQ(c->server.http_addr, "127.0.0.1:8080");
  EXPECT_EQ(c->runtime.type, RuntimeKind::kBwrap);
  EXPECT_EQ(c->storage.db_path, "/var/lib/agentfense/agentfense.db");
  EXPECT_EQ(c->source, "embedded defaults");
}

TEST(Config, ParsesEveryReferenceKey) {
  const char* yaml = R"(
server:
  grpc_addr: "127.0.0.1:19000"
  http_addr: "localhost:18080"
storage:
  codebase_path: /srv/af/codebases
  mount_path: /srv/af/mounts
  db_path: /srv/af/meta.db
runtime:
  type: docker
  bwrap_path: /usr/bin/bwrap
  default_timeout: 45s
  max_timeout: 1h
  docker:
    host: unix:///run/docker.sock
    default_image: img:1
    network_mode: bridge
    enable_networking: true
sandbox:
  default_expiration: 2h
  max_per_user: 7
  cleanup_interval: 30s
logging:
  level: debug
  format: json
)";
  auto c = ParseConfig(yaml, "test.yaml");
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ(c->server.grpc_addr, "127.0.0.1:19000");
  EXPECT_EQ(c->server.http_addr, "localhost:18080");
  EXPECT_EQ(c->storage.codebase_path, "/srv/af/codebases");
  EXPECT_EQ(c->storage.mount_path, "/srv/af/mounts");
  EXPECT_EQ(c->storage.db_path, "/srv/af/meta.db");
  EXPECT_EQ(c->runtime.type, RuntimeKind::kDocker);
  EXPECT_EQ(c->runtime.bwrap_path, "/usr/bin/bwrap");
  EXPECT_EQ(c->runtime.default_timeout, std::chrono::seconds(45));
  EXPECT_EQ(c->runtime.max_timeout, std::chrono::hours(1));
  EXPECT_EQ(c->runtime.docker.host, "unix:///run/docker.sock");
  EXPECT_EQ(c->runtime.docker.default_image, "img:1");
  EXPECT_EQ(c->runtime.docker.network_mode, "bridge");
  EXPECT_TRUE(c->runtime.docker.enable_networking);
  EXPECT_EQ(c->sandbox.default_expiration, std::chrono::hours(2));
  EXPECT_EQ(c->sandbox.max_per_user, 7);
  EXPECT_EQ(c->sandbox.cleanup_interval, std::chrono::seconds(30));
  EXPECT_EQ(c->logging.level, "debug");
  EXPECT_EQ(c->logging.format, LogFormatKind::kJson);
  EXPECT_TRUE(c->unknown_keys.empty());
  EXPECT_TRUE(ValidateConfig(*c).ok());
}

TEST(Config, UploadAndBodyLimits) {
  auto c = ParseConfig("server:\n  max_body_bytes: 64K\n  max_upload_bytes: 2GiB\n", "t");
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ(c->server.max_body_bytes, 64u << 10);
  EXPECT_EQ(c->server.max_upload_bytes, 2ull << 30);
  EXPECT_TRUE(c->unknown_keys.empty());
  auto d = ParseConfig("", "t");
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->server.max_upload_bytes, 0u);  // unlimited by default
  EXPECT_FALSE(ParseConfig("server:\n  max_upload_bytes: lots\n", "t").ok());
}

TEST(Config, ReportsUnknownKeys) {
  auto c = ParseConfig("server:\n  grpc_adr: x\nfoo: 1\n", "t");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->unknown_keys, (std::vector<std::string>{"server.grpc_adr", "foo"}));
}

TEST(Config, BadValuesNameTheKey) {
  struct Case {
    const char* yaml;
    const char* key;
  } cases[] = {
      {"runtime:\n  type: qemu\n", "runtime.type"},
      {"runtime:\n  default_timeout: soon\n", "runtime.default_timeout"},
      {"sandbox:\n  max_per_user: many\n", "sandbox.max_per_user"},
      {"logging:\n  format: xml\n", "logging.format"},
      {"server:\n  grpc_addr: [1, 2]\n", "server.grpc_addr"},
      {"sandbox:\n  fuse_busy_poll_us: soon\n", "sandbox.fuse_busy_poll_us"},
  };
  for (const auto& tc : cases) {
    auto c = ParseConfig(tc.yaml, "t");
    ASSERT_FALSE(c.ok()) << tc.yaml;
    EXPECT_NE(c.error().message().find(tc.key), std::string::npos) << c.error().message();
  }
  EXPECT_FALSE(ParseConfig("a: [", "t").ok());
  EXPECT_FALSE(ParseConfig("- 1\n- 2\n", "t").ok());
}

TEST(Config, NetworkKeys) {
  auto c = ParseConfig(
      "network:\n  dns_servers: [\"198.51.100.53\", \"[2001:db8::53]:5353\"]\n"
      "  public_cidrs: 198.51.100.0/24\n",
      "t");
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ(c->network.dns_servers,
            (std::vector<std::string>{"198.51.100.53", "[2001:db8::53]:5353"}));
  EXPECT_EQ(c->network.public_cidrs, (std::vector<std::string>{"198.51.100.0/24"}));
  EXPECT_TRUE(c->unknown_keys.empty());
  EXPECT_TRUE(ValidateConfig(*c).ok());
  for (const char* bad : {"network:\n  dns_servers: [dns.example]\n",
                          "network:\n  public_cidrs: [127.0.0.0/8]\n",
                          "network:\n  public_cidrs: [10.0.0.1/8]\n",
                          "network:\n  dns_servers: {a: 1}\n"}) {
    auto r = ParseConfig(bad, "t");
    Status st = r.ok() ? ValidateConfig(*r) : Status(r.error());
    ASSERT_FALSE(st.ok()) << bad;
    EXPECT_NE(st.error().message().find("network."), std::string::npos) << st.error().message();
  }
}

TEST(Config, RemoteBindNeedsTokenOrOptIn) {
  ConfigOverrides o;
  o.grpc_addr = "0.0.0.0:9000";
  auto c = LoadConfig(o, "");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().message().find("beyond loopback"), std::string::npos);
  EXPECT_TRUE(LoadConfig(o, "secret-token").ok());
}

TEST(Config, FuseBusyPollDefaultAndBounds) {
  auto d = ParseConfig("", "t");
  ASSERT_TRUE(d.ok()) << d.error().ToString();
  EXPECT_EQ(d->sandbox.fuse_busy_poll_us, fs::kDefaultBusyPollUs);
  auto z = ParseConfig("sandbox:\n  fuse_busy_poll_us: 25\n", "t");
  ASSERT_TRUE(z.ok()) << z.error().ToString();
  EXPECT_EQ(z->sandbox.fuse_busy_poll_us, 25);
  EXPECT_TRUE(ValidateConfig(*z).ok());
  for (int bad : {-1, fs::kMaxBusyPollUs + 1}) {
    Config c;
    c.sandbox.fuse_busy_poll_us = bad;
    Status st = ValidateConfig(c);
    ASSERT_FALSE(st.ok()) << bad;
    EXPECT_NE(st.error().message().find("sandbox.fuse_busy_poll_us"), std::string::npos);
  }
}

TEST(Config, ValidationOfLimits) {
  Config c;
  c.runtime.max_timeout = std::chrono::seconds(1);
  EXPECT_FALSE(ValidateConfig(c).ok());
  c = Config();
  c.server.http_addr = "8080";
  EXPECT_FALSE(ValidateConfig(c).ok());
  c = Config();
  c.sandbox.max_per_user = 0;
  EXPECT_FALSE(ValidateConfig(c).ok());
}

TEST(Config, FlagsOverrideFileAndEnvToken) {
  char path[] = "/tmp/af-config-XXXXXX";
  int fd = mkstemp(path);
  ASSERT_GE(fd, 0);
  close(fd);
  std::ofstream(path) << "server:\n  grpc_addr: 127.0.0.1:1\nruntime:\n  type: docker\n";
  ConfigOverrides o;
  o.config_path = path;
  o.grpc_addr = "127.0.0.1:2";
  o.runtime = "bwrap";
  o.codebase_path = "/x/cb";
  auto c = LoadConfig(o, "tok");
  (void)std::remove(path);
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ(c->server.grpc_addr, "127.0.0.1:2");
  EXPECT_EQ(c->runtime.type, RuntimeKind::kBwrap);
  EXPECT_EQ(c->storage.codebase_path, "/x/cb");
  EXPECT_EQ(c->server.auth_token, "tok");
  EXPECT_EQ(c->source, path);
  o.config_path = "/nonexistent/af.yaml";
  EXPECT_EQ(LoadConfig(o, "").error().code(), ErrorCode::kNotFound);
  o.config_path.clear();
  o.runtime = "lxc";
  EXPECT_FALSE(LoadConfig(o, "").ok());
}

TEST(Config, LoopbackDetection) {
  EXPECT_TRUE(IsLoopbackAddress("127.0.0.1:9000"));
  EXPECT_TRUE(IsLoopbackAddress("localhost:1"));
  EXPECT_TRUE(IsLoopbackAddress("[::1]:9000"));
  EXPECT_FALSE(IsLoopbackAddress("0.0.0.0:9000"));
  EXPECT_FALSE(IsLoopbackAddress(":9000"));
  EXPECT_FALSE(IsLoopbackAddress("[::]:9000"));
  EXPECT_FALSE(IsLoopbackAddress("10.0.0.1:9000"));
}

}  // namespace
}  // namespace agentfense::server

namespace agentfense::server {
namespace {

TEST(ConfigDefaults, RootlessDataDirIsTheUsersOwn) {
  EXPECT_EQ(DefaultDataDir(0, "/x", "/home/a"), "/var/lib/agentfense");
  EXPECT_EQ(DefaultDataDir(1000, "/home/a/.data", "/home/a"), "/home/a/.data/agentfense");
  EXPECT_EQ(DefaultDataDir(1000, "", "/home/a"), "/home/a/.local/share/agentfense");
  EXPECT_EQ(DefaultDataDir(1000, "relative", ""), "/tmp/agentfense-1000");
  ConfigOverrides o;
  o.default_data_dir = "/home/a/.local/share/agentfense";
  auto c = LoadConfig(o, "");
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ(c->storage.data_dir, "/home/a/.local/share/agentfense");
  EXPECT_EQ(c->storage.mount_path, "/home/a/.local/share/agentfense/mounts");
}

}  // namespace
}  // namespace agentfense::server
