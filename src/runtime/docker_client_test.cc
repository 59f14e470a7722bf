// Unit tests of the Docker API client's pure parts, and of its transport against a fake daemon on a
// temporary Unix socket (timeouts, size caps, version negotiation, a dead socket). No dockerd
// needed.
#include "runtime/docker_client.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "base/unique_fd.h"

namespace agentfense::runtime {
namespace {

using namespace std::chrono_literals;

TEST(DockerClient, ParseDockerHost) {
  auto u = ParseDockerHost("unix:///var/run/docker.sock");
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->socket_path, "/var/run/docker.sock");
  EXPECT_EQ(u->base_url, "http://docker");
  auto t = ParseDockerHost("tcp://127.0.0.1:2375");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->socket_path, "");
  EXPECT_EQ(t->base_url, "http://127.0.0.1:2375");
  for (const char* bad : {"", "/var/run/docker.sock", "unix://relative", "http://x", "tcp://a b",
                          "tcp://x/../y", "ssh://host", "unix://"}) {
    auto r = ParseDockerHost(bad);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.error().code(), ErrorCode::kInvalidArgument) << bad;
  }
}

TEST(DockerClient, NegotiateApiVersion) {
  EXPECT_EQ(NegotiateApiVersion("1.41", "1.12").value_or("?"), "1.41");
  EXPECT_EQ(NegotiateApiVersion("1.50", "1.24").value_or("?"), std::string(kMaxDockerApi));
  EXPECT_EQ(NegotiateApiVersion("1.30", "").value_or("?"), "1.30");
  auto old = NegotiateApiVersion("1.24", "1.12");
  ASSERT_FALSE(old.ok());
  EXPECT_EQ(old.error().code(), ErrorCode::kFailedPrecondition);
  auto too_new = NegotiateApiVersion("1.60", "1.50");
  ASSERT_FALSE(too_new.ok());
  EXPECT_EQ(too_new.error().code(), ErrorCode::kFailedPrecondition);
  EXPECT_FALSE(NegotiateApiVersion("x.y", "").ok());
  EXPECT_FALSE(ParseApiVersion("1").ok());
  EXPECT_FALSE(ParseApiVersion("1.").ok());
  EXPECT_FALSE(ParseApiVersion("1.2.3").ok());
  EXPECT_FALSE(ParseApiVersion("99999.1").ok());
  // 1.9 < 1.30: compared as numbers, not strings.
  EXPECT_FALSE(NegotiateApiVersion("1.9", "").ok());
}

TEST(DockerClient, HttpStatusToError) {
  Error e = HttpStatusToError(404, R"({"message":"No such image: nope:latest"})", "GET x");
  EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  EXPECT_NE(e.ToString().find("No such image: nope:latest"), std::string::npos);
  EXPECT_EQ(HttpStatusToError(
                409, R"({"message":"Conflict. The container name \"/a\" is already in use"})", "")
                .code(),
            ErrorCode::kAlreadyExists);
  EXPECT_EQ(HttpStatusToError(409, R"({"message":"container is paused"})", "").code(),
            ErrorCode::kFailedPrecondition);
  EXPECT_EQ(HttpStatusToError(400, "bad\n", "").code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(HttpStatusToError(500, "", "").code(), ErrorCode::kInternal);
  EXPECT_NE(HttpStatusToError(500, "", "").ToString().find("HTTP 500"), std::string::npos);
  EXPECT_EQ(HttpStatusToError(418, "{}", "").code(), ErrorCode::kUnknown);
}

TEST(DockerClient, RefValidation) {
  EXPECT_TRUE(ValidateContainerRef("agentfense-default-abc_123").ok());
  EXPECT_TRUE(ValidateContainerRef(std::string(64, 'f')).ok());
  for (const char* bad : {"", "-x", "a/b", "a?b", "a b", "../x", "a%2F"}) {
    EXPECT_FALSE(ValidateContainerRef(bad).ok()) << bad;
  }
  EXPECT_TRUE(ValidateImageRef("agentfense-test/busybox:latest").ok());
  EXPECT_TRUE(ValidateImageRef("registry:5000/a/b@sha256:abcdef").ok());
  for (const char* bad : {"", "/abs", "a b", "a/../../containers/x", "a?x=1", "a#b", "a\nb"}) {
    EXPECT_FALSE(ValidateImageRef(bad).ok()) << bad;
  }
}

TEST(DockerClient, JsonNesting) {
  EXPECT_TRUE(JsonNestingWithin(R"({"a":[1,2,{"b":3}]})", 3));
  EXPECT_FALSE(JsonNestingWithin(R"({"a":[1,2,{"b":3}]})", 2));
  // Brackets inside strings (with escaped quotes) do not count.
  EXPECT_TRUE(JsonNestingWithin(R"({"a":"[[[[\"[[[[{{{{"})", 1));
  EXPECT_FALSE(JsonNestingWithin(std::string(100000, '['), 64));
  EXPECT_TRUE(JsonNestingWithin("", 1));
}

std::string Frame(uint8_t stream, std::string_view data) {
  std::string f = {static_cast<char>(stream),
                   0,
                   0,
                   0,
                   static_cast<char>((data.size() >> 24) & 0xff),
                   static_cast<char>((data.size() >> 16) & 0xff),
                   static_cast<char>((data.size() >> 8) & 0xff),
                   static_cast<char>(data.size() & 0xff)};
  return f + std::string(data);
}

TEST(DockerClient, DemuxStream) {
  ContainerLogs logs;
  ASSERT_TRUE(
      DemuxDockerStream(Frame(1, "out1\n") + Frame(2, "err\n") + Frame(1, "out2\n"), 1 << 20, &logs)
          .ok());
  EXPECT_EQ(logs.stdout_data, "out1\nout2\n");
  EXPECT_EQ(logs.stderr_data, "err\n");

  ContainerLogs capped;
  ASSERT_TRUE(DemuxDockerStream(Frame(1, "0123456789") + Frame(1, "abc"), 4, &capped).ok());
  EXPECT_EQ(capped.stdout_data, "0123");

  ContainerLogs bad;
  EXPECT_EQ(DemuxDockerStream(Frame(1, "abc").substr(0, 9), 100, &bad).error().code(),
            ErrorCode::kDataLoss);
  EXPECT_EQ(DemuxDockerStream(std::string("\x01\x00\x00", 3), 100, &bad).error().code(),
            ErrorCode::kDataLoss);
  EXPECT_EQ(DemuxDockerStream(Frame(7, "x"), 100, &bad).error().code(), ErrorCode::kDataLoss);
  // A huge announced size with little data is truncation, not an allocation.
  std::string huge = {1, 0, 0, 0, '\xff', '\xff', '\xff', '\xff', 'x'};
  EXPECT_EQ(DemuxDockerStream(huge, 100, &bad).error().code(), ErrorCode::kDataLoss);
}

TEST(DockerClient, ParseContainerInfo) {
  auto inspect = nlohmann::json::parse(R"({
    "Id": "abc123", "Name": "/agentfense-t-sbx_00000001",
    "Config": {"Image": "img:1", "Labels": {"agentfense.sandbox": "sbx_00000001"}},
    "State": {"Status": "exited", "Running": false, "OOMKilled": true, "ExitCode": 137,
              "Pid": 0, "Error": ""},
    "HostConfig": {"CgroupParent": "/custom"}})");
  auto info = ParseContainerInfo(inspect);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->id, "abc123");
  EXPECT_EQ(info->name, "agentfense-t-sbx_00000001");
  EXPECT_EQ(info->image, "img:1");
  EXPECT_EQ(info->labels.at("agentfense.sandbox"), "sbx_00000001");
  EXPECT_EQ(info->status, "exited");
  EXPECT_FALSE(info->running);
  EXPECT_TRUE(info->oom_killed);
  EXPECT_EQ(info->exit_code, 137);
  EXPECT_EQ(info->cgroup_parent, "/custom");

  auto list = nlohmann::json::parse(R"({
    "Id": "def", "Names": ["/n1"], "Image": "img:2", "Labels": {"k": "v"}, "State": "running"})");
  info = ParseContainerInfo(list);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->name, "n1");
  EXPECT_EQ(info->image, "img:2");
  EXPECT_TRUE(info->running);
  EXPECT_EQ(info->labels.at("k"), "v");

  EXPECT_FALSE(ParseContainerInfo(nlohmann::json::parse("[]")).ok());
  EXPECT_FALSE(ParseContainerInfo(nlohmann::json::parse(R"({"Name":"x"})")).ok());
  // Wrong types are ignored, not thrown.
  auto odd = ParseContainerInfo(nlohmann::json::parse(
      R"({"Id":"x","Name":5,"State":{"Running":"yes","ExitCode":"1"},"Config":{"Labels":[1]}})"));
  ASSERT_TRUE(odd.ok());
  EXPECT_FALSE(odd->running);
}

TEST(DockerClient, DaemonDownIsUnavailable) {
  DockerClientOptions o;
  o.host = "unix:///nonexistent/agentfense-test/docker.sock";
  auto c = DockerClient::Connect(o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code(), ErrorCode::kUnavailable);
  EXPECT_NE(c.error().ToString().find(
                "docker daemon not reachable at unix:///nonexistent/agentfense-test/docker.sock"),
            std::string::npos)
      << c.error().ToString();
}

// A one-connection-at-a-time fake daemon: answers every request with `reply` (or stays silent).
class FakeDaemon {
 public:
  explicit FakeDaemon(std::string reply) : reply_(std::move(reply)) {
    char tmpl[] = "/tmp/af-fake-docker-XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    path_ = dir_ + "/docker.sock";
    listen_ = UniqueFd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    (void)std::snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path_.c_str());
    EXPECT_EQ(::bind(listen_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
    EXPECT_EQ(::listen(listen_.get(), 8), 0);
    thread_ = std::thread([this] { Serve(); });
  }
  ~FakeDaemon() {
    stop_ = true;
    ::shutdown(listen_.get(), SHUT_RDWR);
    thread_.join();
    ::unlink(path_.c_str());
    ::rmdir(dir_.c_str());
  }
  std::string host() const { return "unix://" + path_; }
  int requests() const { return requests_.load(); }
  std::string last_request() {
    std::lock_guard<std::mutex> l(mu_);
    return last_;
  }

 private:
  void Serve() {
    while (!stop_) {
      UniqueFd c(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (!c) return;
      std::string req;
      char buf[4096];
      while (req.find("\r\n\r\n") == std::string::npos) {
        ssize_t n = ::read(c.get(), buf, sizeof(buf));
        if (n <= 0) break;
        req.append(buf, static_cast<size_t>(n));
      }
      {
        std::lock_guard<std::mutex> l(mu_);
        last_ = req;
      }
      ++requests_;
      if (reply_.empty()) {
        // Silent: hold the connection until the client gives up.
        while (::read(c.get(), buf, sizeof(buf)) > 0) {
        }
        continue;
      }
      size_t off = 0;
      while (off < reply_.size()) {
        ssize_t n = ::send(c.get(), reply_.data() + off, reply_.size() - off, MSG_NOSIGNAL);
        if (n <= 0) break;
        off += static_cast<size_t>(n);
      }
    }
  }

  std::string reply_;
  std::string dir_, path_;
  UniqueFd listen_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> requests_{0};
  std::mutex mu_;
  std::string last_;
};

std::string HttpReply(std::string_view body) {
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " +
         std::to_string(body.size()) + "\r\nConnection: close\r\n\r\n" + std::string(body);
}

TEST(DockerClient, NegotiatesWithFakeDaemon) {
  FakeDaemon d(HttpReply(R"({"Version":"99.0","ApiVersion":"1.47","MinAPIVersion":"1.24"})"));
  DockerClientOptions o;
  o.host = d.host();
  auto c = DockerClient::Connect(o);
  ASSERT_TRUE(c.ok()) << c.error().ToString();
  EXPECT_EQ((*c)->api_version(), kMaxDockerApi);
  EXPECT_EQ((*c)->version().server_version, "99.0");
  EXPECT_NE(d.last_request().find("GET /version HTTP/1.1"), std::string::npos);
  // Later calls carry the negotiated prefix.
  ASSERT_TRUE((*c)->Ping().ok());
  EXPECT_NE(d.last_request().find("GET /v1.43/_ping"), std::string::npos) << d.last_request();
}

TEST(DockerClient, OldDaemonRefused) {
  FakeDaemon d(HttpReply(R"({"Version":"1.13","ApiVersion":"1.25","MinAPIVersion":"1.12"})"));
  DockerClientOptions o;
  o.host = d.host();
  auto c = DockerClient::Connect(o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code(), ErrorCode::kFailedPrecondition);
}

TEST(DockerClient, SilentDaemonTimesOut) {
  FakeDaemon d("");
  DockerClientOptions o;
  o.host = d.host();
  o.request_timeout = 300ms;
  auto start = std::chrono::steady_clock::now();
  auto c = DockerClient::Connect(o);
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code(), ErrorCode::kDeadlineExceeded) << c.error().ToString();
  EXPECT_LT(took, 5s);
}

TEST(DockerClient, OversizedResponseRefused) {
  std::string big =
      R"({"Version":"x","ApiVersion":"1.41","Pad":")" + std::string(200000, 'a') + "\"}";
  FakeDaemon d(HttpReply(big));
  DockerClientOptions o;
  o.host = d.host();
  o.max_response_bytes = 64 * 1024;
  auto c = DockerClient::Connect(o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code(), ErrorCode::kResourceExhausted) << c.error().ToString();
}

TEST(DockerClient, NonJsonVersionIsUnavailable) {
  FakeDaemon d(HttpReply("<html>not docker</html>"));
  DockerClientOptions o;
  o.host = d.host();
  auto c = DockerClient::Connect(o);
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().code(), ErrorCode::kUnavailable);
}

}  // namespace
}  // namespace agentfense::runtime
