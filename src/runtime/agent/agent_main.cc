// agentfense-agent [--fd N | --listen PATH] [--workspace DIR] [--home DIR] [--user NAME]
// The init process of a sandbox; see runtime/agent/agent.h and docs/RUNTIMES.md.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "runtime/agent/agent.h"

int main(int argc, char** argv) {
  agentfense::runtime::agent::AgentOptions options;
  if (argc > 0) {  // the arguments lie back to back from argv[0]
    options.title_area = argv[0];
    options.title_size = static_cast<size_t>(argv[argc - 1] + std::strlen(argv[argc - 1]) + 1 -
                                             argv[0]);
  }
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        (void)std::fprintf(stderr, "agentfense-agent: %s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--fd") {
      std::string v = value();
      char* end = nullptr;
      long fd = std::strtol(v.c_str(), &end, 10);
      if (end == v.c_str() || *end != '\0' || fd < 0 || fd > 65535) {
        (void)std::fprintf(stderr, "agentfense-agent: bad --fd\n");
        return 2;
      }
      options.serve_fd = static_cast<int>(fd);
    } else if (a == "--listen") {
      options.listen_path = value();
    } else if (a == "--workspace") {
      options.workspace = value();
    } else if (a == "--home") {
      options.home = value();
    } else if (a == "--user") {
      options.user = value();
    } else if (a == "--version") {
      std::puts("agentfense-agent 0.1 (protocol 1)");
      return 0;
    } else {
      (void)std::fprintf(stderr, "agentfense-agent: unknown argument %s\n", a.c_str());
      return 2;
    }
  }
  agentfense::runtime::agent::Agent agent(options);
  auto st = agent.Run();
  if (!st.ok()) {
    (void)std::fprintf(stderr, "agentfense-agent: %s\n", st.error().ToString().c_str());
    return 1;
  }
  return 0;
}
