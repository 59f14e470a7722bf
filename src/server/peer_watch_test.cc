#include "server/peer_watch.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <thread>

namespace agentfense::server {
namespace {

// A connected loopback TCP pair, as a server sees it: `server_fd` accepted from `client_fd`.
struct Conn {
  int listen_fd = -1, client_fd = -1, server_fd = -1;
  int listen_port = 0, client_port = 0;
  Conn() {
    listen_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    EXPECT_EQ(::bind(listen_fd, reinterpret_cast<sockaddr*>(&a), len), 0);
    EXPECT_EQ(::listen(listen_fd, 4), 0);
    EXPECT_EQ(::getsockname(listen_fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
    listen_port = ntohs(a.sin_port);
    client_fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    EXPECT_EQ(::connect(client_fd, reinterpret_cast<sockaddr*>(&a), len), 0);
    server_fd = ::accept4(listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    EXPECT_GE(server_fd, 0);
    sockaddr_in c{};
    len = sizeof(c);
    EXPECT_EQ(::getsockname(client_fd, reinterpret_cast<sockaddr*>(&c), &len), 0);
    client_port = ntohs(c.sin_port);
  }
  ~Conn() {
    for (int fd : {listen_fd, client_fd, server_fd}) {
      if (fd >= 0) ::close(fd);
    }
  }
  httplib::Request Request() const {
    httplib::Request r;
    r.local_addr = "127.0.0.1";
    r.local_port = listen_port;
    r.remote_addr = "127.0.0.1";
    r.remote_port = client_port;
    return r;
  }
};

bool WaitFor(const std::atomic<bool>& flag, std::chrono::milliseconds max) {
  auto end = std::chrono::steady_clock::now() + max;
  while (!flag.load() && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return flag.load();
}

TEST(PeerWatchTest, FindsTheServerSideSocketOfAConnection) {
  Conn conn;
  // Both ends live in this process: the 4-tuple tells the accepted socket from the client's.
  EXPECT_EQ(PeerWatch::FindSocket("127.0.0.1", conn.listen_port, "127.0.0.1", conn.client_port),
            conn.server_fd);
  EXPECT_EQ(PeerWatch::FindSocket("127.0.0.1", conn.client_port, "127.0.0.1", conn.listen_port),
            conn.client_fd);
  EXPECT_EQ(PeerWatch::FindSocket("127.0.0.1", conn.listen_port, "127.0.0.1", 1), -1);
  EXPECT_EQ(PeerWatch::FindSocket("127.0.0.2", conn.listen_port, "127.0.0.1", conn.client_port),
            -1);
}

TEST(PeerWatchTest, SetsTheFlagWhenThePeerHangsUp) {
  PeerWatch watch;
  Conn conn;
  auto flag = std::make_shared<std::atomic<bool>>(false);
  auto handle = watch.Watch(conn.Request(), flag);
  ASSERT_NE(handle, nullptr);
  // A live, idle peer is not "gone", nor is one that sends more bytes.
  ASSERT_EQ(::write(conn.client_fd, "x", 1), 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_FALSE(flag->load());
  ::close(conn.client_fd);
  conn.client_fd = -1;
  EXPECT_TRUE(WaitFor(*flag, std::chrono::milliseconds(2000)));
}

TEST(PeerWatchTest, StopsWatchingWhenTheHandleIsGone) {
  PeerWatch watch;
  Conn conn;
  auto flag = std::make_shared<std::atomic<bool>>(false);
  watch.Watch(conn.Request(), flag).reset();
  ::close(conn.client_fd);
  conn.client_fd = -1;
  EXPECT_FALSE(WaitFor(*flag, std::chrono::milliseconds(400)));
}

TEST(PeerWatchTest, UnknownConnectionWatchesNothing) {
  PeerWatch watch;
  httplib::Request r;
  r.local_addr = "127.0.0.1";
  r.local_port = 1;
  r.remote_addr = "127.0.0.1";
  r.remote_port = 2;
  EXPECT_EQ(watch.Watch(r, std::make_shared<std::atomic<bool>>(false)), nullptr);
}

}  // namespace
}  // namespace agentfense::server
