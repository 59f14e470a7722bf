#include "runtime/bwrap_plan.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>

#include "base/ids.h"

namespace agentfense::runtime {
namespace {

// System directories that may exist at the top of the host root. Each is bound read-only if a
// directory, recreated as the same symlink if a symlink, skipped if absent.
constexpr const char* kSystemDirs[] = {"/usr",   "/bin",   "/sbin",  "/lib",
                                       "/lib32", "/lib64", "/libx32"};
// /etc files every program may need. ld.so.cache for the dynamic loader; alternatives because
// Debian's /usr/bin/awk and friends are symlinks through it (it holds only symlinks).
constexpr const char* kEtcAlways[] = {"/etc/ld.so.cache", "/etc/alternatives", "/etc/localtime"};
// Only with network: name resolution and TLS trust (resolv.conf is generated: the sandbox's
// resolver is the supervisor's, whatever the host uses).
constexpr const char* kEtcNetwork[] = {"/etc/nsswitch.conf", "/etc/gai.conf", "/etc/ssl",
                                       "/etc/ca-certificates", "/etc/pki"};

bool SafeResolver(const std::string& ip) {
  return !ip.empty() && ip.size() <= 15 && std::all_of(ip.begin(), ip.end(), [](char c) {
    return std::isdigit(static_cast<unsigned char>(c)) || c == '.';
  });
}

bool SafeHostPath(const std::string& p) {
  // Absolute, normalized, nothing a bwrap argument parser or a mount could misread.
  if (p.empty() || p[0] != '/' || p.find('\0') != std::string::npos) return false;
  if (p.find("//") != std::string::npos || p.find("/./") != std::string::npos ||
      p.find("/../") != std::string::npos) {
    return false;
  }
  if (p.size() >= 3 && (p.compare(p.size() - 3, 3, "/..") == 0)) return false;
  if (p.size() >= 2 && (p.compare(p.size() - 2, 2, "/.") == 0)) return false;
  return true;
}

}  // namespace

HostLayout ProbeHostLayout() {
  HostLayout h;
  auto probe = [&](const std::string& p) {
    HostLayout::Entry e;
    struct stat st;
    if (::lstat(p.c_str(), &st) == 0) {
      if (S_ISLNK(st.st_mode)) {
        char buf[4096];
        ssize_t n = ::readlink(p.c_str(), buf, sizeof(buf) - 1);
        if (n > 0) {
          e.kind = HostLayout::Entry::kSymlink;
          e.target.assign(buf, static_cast<size_t>(n));
        }
      } else if (S_ISDIR(st.st_mode)) {
        e.kind = HostLayout::Entry::kDir;
      } else if (S_ISREG(st.st_mode)) {
        e.kind = HostLayout::Entry::kFile;
      }
    }
    h.entries[p] = e;
  };
  for (const char* p : kSystemDirs) probe(p);
  for (const char* p : kEtcAlways) probe(p);
  for (const char* p : kEtcNetwork) probe(p);
  return h;
}

Result<BwrapPlan> BuildBwrapPlan(const SandboxSpec& spec, const HostLayout& host) {
  auto bad = [](const std::string& why) {
    return Error(ErrorCode::kInvalidArgument, "sandbox spec: " + why);
  };
  if (!IsValidSandboxId(spec.id)) return bad("bad id '" + spec.id + "'");
  if (!SafeHostPath(spec.workspace_dir))
    return bad("workspace must be an absolute normalized path");
  if (!SafeHostPath(spec.agent_path)) return bad("agent path must be an absolute normalized path");
  if (!SafeHostPath(spec.bwrap_path)) return bad("bwrap path must be an absolute normalized path");
  if (spec.host_uid == 0 || spec.host_gid == 0) {
    return bad("host uid/gid 0 would run sandboxed commands as root on the host");
  }
  if (spec.host_uid == 65534 || spec.host_gid == 65534) {
    return bad("host uid/gid 65534 is the host's nobody, shared with everything else");
  }
  if (spec.uid == 0 || spec.gid == 0) return bad("uid/gid inside the sandbox must be non-zero");
  if (spec.tmp_size_bytes == 0) return bad("tmp size must be positive");
  if (spec.network && spec.netns_fd < 0) {
    return bad("network on needs the sandbox's own prepared network namespace, never the host's");
  }
  if (spec.network && !SafeResolver(spec.resolver)) return bad("bad resolver address");
  for (char c : spec.hostname) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '-') return bad("bad hostname");
  }

  BwrapPlan plan;
  auto& a = plan.argv;
  auto add = [&a](std::initializer_list<std::string> xs) { a.insert(a.end(), xs); };
  a.push_back(spec.bwrap_path);
  // Namespaces. --unshare-user matters even though bwrap runs unprivileged: it is what makes
  // --uid/--gid and --disable-userns possible. The mount namespace is always new with bwrap.
  add({"--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup"});
  if (!spec.network) add({"--unshare-net"});
  add({"--uid", std::to_string(spec.uid), "--gid", std::to_string(spec.gid)});
  if (!spec.hostname.empty()) add({"--hostname", spec.hostname});
  add({"--disable-userns", "--assert-userns-disabled"});
  add({"--cap-drop", "ALL"});
  // --new-session: no TIOCSTI into a terminal of ours (CVE-2017-5226). --as-pid-1: the agent is
  // init and reaps orphans itself.
  add({"--new-session", "--die-with-parent", "--as-pid-1"});
  // bwrap's own environment is already empty (the launcher execs it with none); the agent gets a
  // minimal one and builds each command's from scratch anyway.
  add({"--clearenv", "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "LANG",
       "C.UTF-8"});

  for (const char* p : kSystemDirs) {
    auto it = host.entries.find(p);
    if (it == host.entries.end()) continue;
    const auto& e = it->second;
    if (e.kind == HostLayout::Entry::kDir) add({"--ro-bind", p, p});
    if (e.kind == HostLayout::Entry::kSymlink) add({"--symlink", e.target, p});
  }
  if (host.entries.count("/usr") == 0 || host.entries.at("/usr").kind != HostLayout::Entry::kDir) {
    return Error(ErrorCode::kFailedPrecondition, "host has no /usr directory to expose");
  }
  auto bind_etc = [&](const char* p) {
    auto it = host.entries.find(p);
    if (it == host.entries.end() || it->second.kind == HostLayout::Entry::kAbsent) return;
    // --ro-bind-try: a file that vanishes between probe and start is not fatal.
    add({"--ro-bind-try", p, p});
  };
  for (const char* p : kEtcAlways) bind_etc(p);
  if (spec.network) {
    for (const char* p : kEtcNetwork) bind_etc(p);
  }
  // Generated identity files: only the sandbox user (and root/nobody so tools print names).
  plan.file_fds[kPasswdFd] =
      "root:x:0:0:root:/nonexistent:/usr/sbin/nologin\n"
      "sandbox:x:" +
      std::to_string(spec.uid) + ":" + std::to_string(spec.gid) +
      ":sandbox:/tmp:/bin/sh\n"
      "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
  plan.file_fds[kGroupFd] =
      "root:x:0:\nsandbox:x:" + std::to_string(spec.gid) + ":\nnogroup:x:65534:\n";
  plan.file_fds[kHostsFd] = "127.0.0.1\tlocalhost " + spec.hostname + "\n::1\tlocalhost\n";
  add({"--perms", "0444", "--file", std::to_string(kPasswdFd), "/etc/passwd"});
  add({"--perms", "0444", "--file", std::to_string(kGroupFd), "/etc/group"});
  add({"--perms", "0444", "--file", std::to_string(kHostsFd), "/etc/hosts"});
  if (spec.network) {
    plan.file_fds[kResolvFd] = "nameserver " + spec.resolver + "\n";
    add({"--perms", "0444", "--file", std::to_string(kResolvFd), "/etc/resolv.conf"});
  }

  add({"--proc", "/proc", "--dev", "/dev"});
  add({"--size", std::to_string(spec.tmp_size_bytes), "--perms", "1777", "--tmpfs", "/tmp"});
  add({"--bind", spec.stage_workspace ? kWorkspaceStage : spec.workspace_dir, "/workspace"});
  add({"--ro-bind", spec.agent_path, kAgentPathInside});
  // bwrap's root is a tmpfs the sandbox user could write to (/etc/x, /run/...): freeze it. /tmp,
  // /workspace, /dev and /proc are their own mounts and keep their modes.
  add({"--remount-ro", "/"});
  add({"--chdir", "/workspace"});
  add({"--seccomp", std::to_string(kSeccompFd)});
  // Everything after "--" is the command, never an option (CVE-2024-32462).
  add({"--", kAgentPathInside, "--fd", std::to_string(kAgentSocketFd), "--workspace", "/workspace",
       "--home", "/tmp", "--user", "sandbox"});
  return plan;
}

}  // namespace agentfense::runtime
