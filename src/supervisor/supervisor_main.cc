// agentfense-supervisor --spec RUN_DIR/spec.json [--ready-fd N]
//
// Started by the server, one per running sandbox. Detaches into its own session so that the
// server can restart without taking the sandbox down. When --ready-fd is given, writes "ok\n" or
// "error: <reason>\n" there once the sandbox is up (or failed), then closes it.
#include <fcntl.h>
#include <malloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "base/log.h"
#include "supervisor/spec.h"
#include "supervisor/supervisor.h"

namespace {

void Report(int fd, const std::string& text) {
  if (fd < 0) return;
  std::string line = text + "\n";
  (void)!::write(fd, line.data(), line.size());
  ::close(fd);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace agentfense;
  // One malloc arena for all threads. glibc gives threads arenas of their own (up to 8 per
  // core), each a 64 MiB reservation whose first pages and page table are touched for good:
  // three of them cost an idle supervisor 48 KiB (one per sandbox). Its threads are one FUSE
  // worker and socket relays that allocate little; their thread caches (tcache) take most
  // allocations without the arena's lock.
  ::mallopt(M_ARENA_MAX, 1);
  std::string spec_path;
  int ready_fd = -1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--spec" && i + 1 < argc) {
      spec_path = argv[++i];
    } else if (a == "--ready-fd" && i + 1 < argc) {
      // The whole argument, a descriptor number (atoi would turn junk into 0, our stdin).
      const char* v = argv[++i];
      const char* end = v + std::strlen(v);
      auto [ptr, ec] = std::from_chars(v, end, ready_fd);
      if (ec != std::errc() || ptr != end || ptr == v || ready_fd < 0) {
        (void)std::fprintf(stderr, "agentfense-supervisor: bad --ready-fd %s\n", v);
        return 2;
      }
    } else {
      (void)std::fprintf(stderr, "usage: agentfense-supervisor --spec FILE [--ready-fd N]\n");
      return 2;
    }
  }
  if (spec_path.empty()) {
    (void)std::fprintf(stderr, "usage: agentfense-supervisor --spec FILE [--ready-fd N]\n");
    return 2;
  }
  // Detach: the server waits only for this first process to exit (so it leaves no zombie), while
  // the grandchild runs in its own session, reparented away from the server, and survives a
  // server restart. Single-threaded here, so fork() is safe.
  pid_t child = ::fork();
  if (child < 0) {
    Report(ready_fd, "error: fork failed");
    return 1;
  }
  if (child > 0) ::_exit(0);
  ::setsid();
  (void)InitLogging("info");

  std::ifstream in(spec_path);
  std::stringstream text;
  text << in.rdbuf();
  if (!in) {
    Report(ready_fd, "error: cannot read " + spec_path);
    return 2;
  }
  auto spec = supervisor::SpecFromJson(text.str());
  if (!spec.ok()) {
    Report(ready_fd, "error: " + spec.error().ToString());
    return 2;
  }
  auto sup = supervisor::Supervisor::Start(std::move(*spec));
  if (!sup.ok()) {
    AF_LOG_ERROR("{}", sup.error().ToString());
    Report(ready_fd, "error: " + std::to_string(static_cast<int>(sup.error().code())) + " " +
                         sup.error().ToString());
    return 1;
  }
  Report(ready_fd, "ok");
  // Starting leaves about 300 KiB of freed heap behind (still holding the spec's JSON, bwrap's
  // arguments, the seccomp allow-list's syscall names), touched and so resident, in every idle
  // sandbox: glibc returns only the top of the heap by itself. malloc_trim(3) gives back every free page, once,
  // after the server has its answer (docs/PERFORMANCE.md, "Where an idle sandbox's memory goes").
  ::malloc_trim(0);
  return (*sup)->Serve();
}
