// AskBroker: accesses to `ask` paths held until someone decides (docs/PERMISSIONS.md, "ask").
//
// A FUSE request whose path is at `ask` and that needs read or write is not answered by the worker
// that received it: PermFs hands it here (Hold) and the worker goes on serving other requests.
// The request is answered later, from another thread: a decision (Answer) runs the held operation
// again on the broker's own thread with the grant in place (GrantFor), a denial, a timeout or a
// stop answers EACCES, and a caller that is being killed gets EINTR (FUSE_INTERRUPT). libfuse's
// low-level API allows a reply from any thread at any time; the broker only makes sure that
// exactly one of those paths replies to each request (whoever removes it from `pending_`).
//
// Thread-safety: every method. Lock order: PermFs::policy_mu_ (held by the handler calling Hold
// or GrantFor) before mu_; mu_ is never held while a request is replied to or re-run.
#pragma once

#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>
#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "base/result.h"
#include "fs/ask_types.h"
#include "policy/policy.h"

namespace agentfense::fs {

class AskBroker {
 public:
  // Runs the held operation again (the same handler, same arguments) for `req`.
  using Resume = std::function<void(fuse_req_t)>;

  AskBroker(std::chrono::milliseconds timeout, AskSink sink);
  ~AskBroker();  // Stop()
  AskBroker(const AskBroker&) = delete;
  AskBroker& operator=(const AskBroker&) = delete;

  // Holds `req` for the access `r` (id, times and command are filled here). False when nothing
  // was held (stopping, or kMaxPendingAsks reached): the caller then denies at once.
  bool Hold(fuse_req_t req, AccessRequest r, Resume resume);
  // The pending accesses, oldest first.
  std::vector<AccessRequest> Pending() const;
  // Decides the pending access `id` (kNotFound when it is not pending any more). A grant that
  // covers what the access needs re-runs it; anything else denies it (EACCES).
  Status Answer(const std::string& id, const AskAnswer& answer);
  // After a policy change: every held access that the new policy decides by itself (`level_now`
  // is not kAsk any more) is re-run, so that the policy answers it.
  void Reconsider(const std::function<policy::Level(const AccessRequest&)>& level_now);
  // Denies everything held (EACCES) and stops the broker's thread; later Hold() calls fail.
  void Stop();

  // The grant given to `req` for `path` while it is being re-run (kNone when there is none).
  policy::Level GrantFor(fuse_req_t req, const std::string& path) const;
  void set_timeout(std::chrono::milliseconds t);

 private:
  struct Held {
    AccessRequest request;
    fuse_req_t req = nullptr;
    Resume resume;
    std::vector<std::pair<std::string, policy::Level>> grants;  // earlier grants of this request
    // The kernel sent FUSE_INTERRUPT for a signal the caller survives. It sends one only: a
    // later SIGKILL brings none, so the broker's thread re-checks such a caller (kDyingCheckNs).
    bool interrupted = false;
  };
  struct Task {
    fuse_req_t req = nullptr;
    Resume resume;
    std::vector<std::pair<std::string, policy::Level>> grants;
  };

  static void OnInterrupt(fuse_req_t req, void* broker);
  void Interrupted(fuse_req_t req);
  void Loop();
  // Lets go (EINTR) every held request whose interrupted caller is being killed now; called by
  // Loop() without mu_.
  void ReleaseDying();
  void Emit(const Held& h, AskState state, const AskAnswer& a) const;

  const AskSink sink_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::chrono::milliseconds timeout_;          // guarded by mu_
  std::map<std::string, Held> pending_;        // by id
  std::unordered_map<fuse_req_t, std::string> by_req_;
  std::deque<Task> tasks_;                     // re-runs waiting for the thread
  // Grants of the requests being re-run right now, by request.
  std::unordered_map<fuse_req_t, std::vector<std::pair<std::string, policy::Level>>> running_;
  bool stopping_ = false;
  std::thread thread_;  // started with the first Hold
};

}  // namespace agentfense::fs
