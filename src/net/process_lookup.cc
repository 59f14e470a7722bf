#include "net/process_lookup.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "base/unique_fd.h"

namespace agentfense::net {
namespace {

constexpr int kMaxProcesses = 8192;

void PutAddress(const policy::IpAddress& a, __be32* out) {
  std::memcpy(out, a.bytes.data(), a.size());
}

uint64_t SocketInode(int diag_fd, const SocketTuple& t) {
  struct {
    nlmsghdr nlh;
    inet_diag_req_v2 req;
  } msg{};
  msg.nlh.nlmsg_len = sizeof(msg);
  msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  msg.nlh.nlmsg_flags = NLM_F_REQUEST;  // one exact lookup, no dump
  msg.req.sdiag_family = t.local.v6 ? AF_INET6 : AF_INET;
  msg.req.sdiag_protocol = t.udp ? IPPROTO_UDP : IPPROTO_TCP;
  msg.req.idiag_states = ~0U;
  msg.req.id.idiag_cookie[0] = INET_DIAG_NOCOOKIE;
  msg.req.id.idiag_cookie[1] = INET_DIAG_NOCOOKIE;
  if (t.udp) {
    // udp_diag looks up the socket that would *receive* from src:sport to dst:dport.
    PutAddress(t.remote, msg.req.id.idiag_src);
    msg.req.id.idiag_sport = htons(t.remote_port);
    PutAddress(t.local, msg.req.id.idiag_dst);
    msg.req.id.idiag_dport = htons(t.local_port);
  } else {
    PutAddress(t.local, msg.req.id.idiag_src);
    msg.req.id.idiag_sport = htons(t.local_port);
    PutAddress(t.remote, msg.req.id.idiag_dst);
    msg.req.id.idiag_dport = htons(t.remote_port);
  }
  if (::send(diag_fd, &msg, sizeof(msg), 0) < 0) return 0;
  alignas(nlmsghdr) char buf[8192];
  ssize_t n = ::recv(diag_fd, buf, sizeof(buf), MSG_DONTWAIT);
  if (n < 0 && errno == EAGAIN) {
    // The kernel answers synchronously; EAGAIN means nothing matched.
    return 0;
  }
  if (n <= 0) return 0;
  // An exact lookup answers with one message: the socket, or an error.
  nlmsghdr h{};
  if (static_cast<size_t>(n) < NLMSG_HDRLEN + sizeof(inet_diag_msg)) return 0;
  std::memcpy(&h, buf, sizeof(h));
  if (h.nlmsg_type != SOCK_DIAG_BY_FAMILY || h.nlmsg_len > static_cast<size_t>(n)) return 0;
  inet_diag_msg r{};
  std::memcpy(&r, buf + NLMSG_HDRLEN, sizeof(r));
  return r.idiag_inode;
}

std::string Cmdline(pid_t pid) {
  std::string path = "/proc/" + std::to_string(pid) + "/cmdline";
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return "";
  char buf[256];
  ssize_t n = ::read(fd.get(), buf, sizeof(buf));
  if (n <= 0) return "";
  std::string out(buf, static_cast<size_t>(n));
  while (!out.empty() && out.back() == '\0') out.pop_back();
  for (char& c : out) {
    if (c == '\0') c = ' ';
  }
  return out;
}

}  // namespace

ProcessInfo FindSocketOwner(int diag_fd, int netns_fd, const SocketTuple& tuple) {
  ProcessInfo info;
  uint64_t inode = SocketInode(diag_fd, tuple);
  struct stat ns {};
  if (inode == 0 || ::fstat(netns_fd, &ns) != 0) return info;
  const std::string want = "socket:[" + std::to_string(inode) + "]";
  DIR* proc = ::opendir("/proc");
  if (!proc) return info;
  int seen = 0;
  while (dirent* e = ::readdir(proc)) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9' || ++seen > kMaxProcesses) continue;
    std::string base = std::string("/proc/") + e->d_name;
    struct stat st {};
    if (::stat((base + "/ns/net").c_str(), &st) != 0 || st.st_ino != ns.st_ino ||
        st.st_dev != ns.st_dev) {
      continue;
    }
    DIR* fds = ::opendir((base + "/fd").c_str());
    if (!fds) continue;
    bool found = false;
    while (dirent* f = ::readdir(fds)) {
      if (f->d_name[0] == '.') continue;
      char link[64];
      ssize_t n = ::readlinkat(::dirfd(fds), f->d_name, link, sizeof(link) - 1);
      if (n > 0 && want.compare(0, std::string::npos, link, static_cast<size_t>(n)) == 0) {
        found = true;
        break;
      }
    }
    ::closedir(fds);
    if (found) {
      info.pid = static_cast<pid_t>(std::strtol(e->d_name, nullptr, 10));
      info.command = Cmdline(info.pid);
      break;
    }
  }
  ::closedir(proc);
  return info;
}

}  // namespace agentfense::net
