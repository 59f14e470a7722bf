#include "server/peer_watch.h"

#include <dirent.h>
#include <httplib.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <vector>

namespace agentfense::server {
namespace {

// The numeric host and port of an address, as httplib renders them.
bool HostPort(const sockaddr_storage& addr, socklen_t len, std::string* host, int* port) {
  char buf[NI_MAXHOST];
  if (::getnameinfo(reinterpret_cast<const sockaddr*>(&addr), len, buf, sizeof(buf), nullptr, 0,
                    NI_NUMERICHOST) != 0) {
    return false;
  }
  *host = buf;
  if (addr.ss_family == AF_INET) {
    *port = ntohs(reinterpret_cast<const sockaddr_in*>(&addr)->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    *port = ntohs(reinterpret_cast<const sockaddr_in6*>(&addr)->sin6_port);
  } else {
    return false;
  }
  return true;
}

}  // namespace

PeerWatch::PeerWatch() : thread_([this] { Loop(); }) {}

PeerWatch::~PeerWatch() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

int PeerWatch::FindSocket(const std::string& local_addr, int local_port,
                          const std::string& remote_addr, int remote_port) {
  DIR* dir = ::opendir("/proc/self/fd");
  if (dir == nullptr) return -1;
  int found = -1;
  while (dirent* e = ::readdir(dir)) {
    char* end = nullptr;
    long fd = std::strtol(e->d_name, &end, 10);
    if (end == e->d_name || *end != '\0' || fd == ::dirfd(dir)) continue;
    struct stat st {};
    if (::fstat(static_cast<int>(fd), &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    sockaddr_storage addr{};
    socklen_t len = sizeof(addr);
    std::string host;
    int port = 0;
    if (::getpeername(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
        !HostPort(addr, len, &host, &port) || port != remote_port || host != remote_addr) {
      continue;
    }
    len = sizeof(addr);
    if (::getsockname(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
        !HostPort(addr, len, &host, &port) || port != local_port || host != local_addr) {
      continue;
    }
    found = static_cast<int>(fd);  // a TCP 4-tuple names at most one connected socket
    break;
  }
  ::closedir(dir);
  return found;
}

std::shared_ptr<void> PeerWatch::Watch(const httplib::Request& req,
                                       std::shared_ptr<std::atomic<bool>> cancelled) {
  // The handler runs on the connection's own thread, so the socket stays open meanwhile.
  int fd = FindSocket(req.local_addr, req.local_port, req.remote_addr, req.remote_port);
  if (fd < 0 || !cancelled) return nullptr;
  uint64_t id = 0;
  {
    std::lock_guard lock(mu_);
    id = next_id_++;
    entries_[id] = Entry{fd, std::move(cancelled)};
  }
  // Non-null (it points at us; the deleter only unregisters), so callers can test it.
  return std::shared_ptr<void>(this, [this, id](void*) { Unwatch(id); });
}

void PeerWatch::Unwatch(uint64_t id) {
  std::lock_guard lock(mu_);
  entries_.erase(id);
}

void PeerWatch::Loop() {
  std::unique_lock lock(mu_);
  std::vector<pollfd> fds;
  while (!stop_) {
    cv_.wait_for(lock, std::chrono::milliseconds(100));
    if (entries_.empty()) continue;
    fds.clear();
    for (const auto& [id, e] : entries_) fds.push_back({e.fd, POLLRDHUP, 0});
    if (::poll(fds.data(), fds.size(), 0) <= 0) continue;
    size_t i = 0;
    for (auto it = entries_.begin(); it != entries_.end(); ++i) {
      if ((fds[i].revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)) != 0) {
        it->second.cancelled->store(true);
        it = entries_.erase(it);
      } else {
        ++it;
      }
    }
  }
}

}  // namespace agentfense::server
