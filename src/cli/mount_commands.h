// `agentfense mount` / `agentfense umount`: the permission filesystem alone (no sandbox), for
// inspection and benchmarks. The mount runs in this process (foreground) or in a detached child
// (-d); `umount` detaches it, which ends the serving process.
#pragma once

#include <optional>
#include <ostream>
#include <string>

#include "cli/rules_input.h"

namespace agentfense::cli {

struct MountOptions {
  RuleSources sources;
  std::string source;
  std::string mountpoint;
  bool background = false;
  int threads = 1;
  std::optional<int> busy_poll_us;  // unset: fs::FsOptions::busy_poll_us's default
  // Serve every local user, the host's permission bits enforced for them (default: the invoking
  // user alone; fs::MountAccess).
  bool allow_other = false;
  std::string delta_dir;  // "" = writes go straight to SOURCE; else a copy-on-write delta there
};

int RunMount(const MountOptions& options, std::ostream& out, std::ostream& err);
int RunUmount(const std::string& mountpoint, std::ostream& out, std::ostream& err);

}  // namespace agentfense::cli
