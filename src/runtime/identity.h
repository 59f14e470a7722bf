// The host identity a sandbox runs as (SPEC §5): a uid and gid of its own, never 0 or 65534, never
// shared by two live sandboxes on the host, whichever process (a server, an `agentfense run`)
// started them.
//
// Identities come from one configured range (default 524288-589823: the 64 Ki block just past
// the first 64 Ki of systemd's container range; docs/OPERATIONS.md says how to size and move it).
// A live sandbox holds a *lease*: an exclusive flock(2) on <lease_dir>/<uid>, taken by its
// supervisor and held for as long as that process lives, so a crashed supervisor can never leave
// an identity taken, and two processes can never hold the same one. The uid and gid are the same
// number.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"
#include "base/unique_fd.h"

namespace agentfense::runtime {

struct IdentityRange {
  uint32_t first = 524288;
  uint32_t count = 65536;

  // "FIRST-LAST" (inclusive), e.g. "524288-589823".
  static Result<IdentityRange> Parse(std::string_view text);
  std::string ToString() const;
  bool Contains(uint32_t id) const { return id >= first && id - first < count; }
};

// Where leases live: root-only, on tmpfs (a reboot drops them all, as it drops every sandbox).
inline constexpr const char* kDefaultLeaseDir = "/run/agentfense/identities";

// Checks that `range` is usable: at least one id, below 2^31-1 (kernel uid limit), excluding 0
// and 65534, and overlapping no user or group of the host (`etc` holds passwd, group, subuid and
// subgid: a uid that belongs to a person or to a /etc/subuid delegation must never be handed to a
// sandbox). Errors name the conflict and the setting to change.
Status ValidateIdentityRange(const IdentityRange& range, const std::string& etc = "/etc");

class IdentityLease {
 public:
  IdentityLease() = default;
  // Takes `preferred` when it is in the range and free, else the first free id probing from a
  // start derived from `key` (the sandbox id), so restarts and concurrent starts rarely collide.
  // kResourceExhausted when every id is leased. Writes `key` into the lease file (diagnostics).
  static Result<IdentityLease> Acquire(const IdentityRange& range, const std::string& lease_dir,
                                       uint32_t preferred, std::string_view key);

  uid_t uid() const { return id_; }
  gid_t gid() const { return id_; }
  bool held() const { return lock_.valid(); }

 private:
  uint32_t id_ = 0;
  UniqueFd lock_;  // the flock; closing it releases the identity
};

}  // namespace agentfense::runtime
