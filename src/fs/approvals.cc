#include "fs/approvals.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <sstream>

#include "base/ids.h"
#include "base/log.h"
#include "base/unique_fd.h"

namespace agentfense::fs {
namespace {

using Clock = std::chrono::system_clock;

// How often the broker looks whether an interrupted caller is being killed (Held::interrupted).
constexpr int64_t kDyingCheckNs = 100'000'000;

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

std::string NewId() {
  if (auto id = NewApprovalId(); id.ok()) return *id;
  // getrandom(2) failing: unique still, from the time and the pid (the shape base/ids.h checks).
  const uint64_t v = static_cast<uint64_t>(NowNs()) ^ (static_cast<uint64_t>(::getpid()) << 32);
  char buf[24];
  (void)std::snprintf(buf, sizeof(buf), "ap_%016" PRIx64, v);
  return buf;
}

// The caller's command line as the kernel shows it (agent-controlled text: shown, never trusted).
std::string CommandOf(pid_t pid) {
  if (pid <= 0) return {};
  UniqueFd fd(::open(("/proc/" + std::to_string(pid) + "/cmdline").c_str(),
                     O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
  if (!fd) return {};
  char buf[256];
  ssize_t n = ::read(fd.get(), buf, sizeof(buf));
  if (n <= 0) return {};
  std::string out(buf, static_cast<size_t>(n));
  while (!out.empty() && out.back() == '\0') out.pop_back();
  for (char& c : out) {
    if (c == '\0') c = ' ';
  }
  return out;
}

// True when `pid` (a thread id) has SIGKILL pending: it is being killed (a fatal signal, or a
// default-action one the kernel turned into SIGKILL) and can never use an answer.
bool Dying(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  if (!in) return true;  // gone already
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("SigPnd:", 0) != 0 && line.rfind("ShdPnd:", 0) != 0) continue;
    unsigned long long mask = std::strtoull(line.c_str() + 7, nullptr, 16);
    if (mask & (1ull << (SIGKILL - 1))) return true;
  }
  return false;
}

}  // namespace

AskBroker::AskBroker(std::chrono::milliseconds timeout, AskSink sink)
    : sink_(std::move(sink)), timeout_(timeout.count() > 0 ? timeout : kDefaultAskTimeout) {}

AskBroker::~AskBroker() { Stop(); }

void AskBroker::set_timeout(std::chrono::milliseconds t) {
  std::lock_guard lock(mu_);
  timeout_ = t.count() > 0 ? t : kDefaultAskTimeout;
}

void AskBroker::Emit(const Held& h, AskState state, const AskAnswer& a) const {
  if (!sink_) return;
  AskEvent e{h.request, state, a.grant, a.by, a.remember, NowNs()};
  try {
    sink_(e);
  } catch (...) {
    AF_LOG_WARN("ask event sink threw; event for {} dropped", h.request.path);
  }
}

bool AskBroker::Hold(fuse_req_t req, AccessRequest r, Resume resume) {
  r.id = NewId();
  r.since_ns = NowNs();
  r.command = CommandOf(r.pid);
  Held h;
  h.req = req;
  h.resume = std::move(resume);
  {
    std::lock_guard lock(mu_);
    if (stopping_ || pending_.size() >= kMaxPendingAsks) return false;
    r.deadline_ns = r.since_ns + std::chrono::nanoseconds(timeout_).count();
    if (auto it = running_.find(req); it != running_.end()) h.grants = it->second;
    h.request = std::move(r);
    by_req_[req] = h.request.id;
    if (!thread_.joinable()) thread_ = std::thread([this] { Loop(); });
    pending_.emplace(h.request.id, h);
  }
  cv_.notify_all();
  Emit(h, AskState::kPending, {});
  // Outside mu_: when the request was already interrupted, libfuse calls OnInterrupt right here.
  fuse_req_interrupt_func(req, &AskBroker::OnInterrupt, this);
  return true;
}

std::vector<AccessRequest> AskBroker::Pending() const {
  std::vector<AccessRequest> out;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, h] : pending_) out.push_back(h.request);
  }
  std::sort(out.begin(), out.end(), [](const AccessRequest& a, const AccessRequest& b) {
    return a.since_ns < b.since_ns;
  });
  return out;
}

Status AskBroker::Answer(const std::string& id, const AskAnswer& answer) {
  Held h;
  {
    std::lock_guard lock(mu_);
    auto it = pending_.find(id);
    if (it == pending_.end()) {
      return Error(ErrorCode::kNotFound,
                   "no pending access " + id.substr(0, 64) + " (answered, timed out or cancelled)");
    }
    h = std::move(it->second);
    pending_.erase(it);
    by_req_.erase(h.req);
  }
  // Every event is out (audited) before the caller can see the outcome.
  const bool allowed = answer.grant >= h.request.need;
  Emit(h, allowed ? AskState::kAllowed : AskState::kDenied, answer);
  if (!allowed) {
    fuse_reply_err(h.req, EACCES);
    return OkStatus();
  }
  h.grants.emplace_back(h.request.path, answer.grant);
  {
    std::lock_guard lock(mu_);
    tasks_.push_back({h.req, h.resume, h.grants});
  }
  cv_.notify_all();
  return OkStatus();
}

void AskBroker::Reconsider(const std::function<policy::Level(const AccessRequest&)>& level_now) {
  std::vector<std::pair<Held, policy::Level>> decided;
  {
    std::lock_guard lock(mu_);
    for (auto it = pending_.begin(); it != pending_.end();) {
      const policy::Level level = level_now(it->second.request);
      if (level == policy::Level::kAsk) {
        ++it;
        continue;
      }
      by_req_.erase(it->second.req);
      decided.emplace_back(std::move(it->second), level);
      it = pending_.erase(it);
    }
  }
  if (decided.empty()) return;
  for (const auto& [h, level] : decided) {
    AskAnswer a{level, "policy", ""};
    Emit(h, level >= h.request.need ? AskState::kAllowed : AskState::kDenied, a);
  }
  {
    std::lock_guard lock(mu_);
    for (auto& [h, level] : decided) tasks_.push_back({h.req, h.resume, h.grants});
  }
  cv_.notify_all();
}

void AskBroker::OnInterrupt(fuse_req_t req, void* broker) {
  static_cast<AskBroker*>(broker)->Interrupted(req);
}

void AskBroker::Interrupted(fuse_req_t req) {
  Held h;
  {
    std::lock_guard lock(mu_);
    auto id = by_req_.find(req);
    if (id == by_req_.end()) return;  // answered meanwhile: its reply is on its way
    auto it = pending_.find(id->second);
    if (it == pending_.end()) return;
    // A signal the caller will survive (SIGCHLD, a handled SIGINT, SIGSTOP...) leaves the
    // request held: answering EINTR would make an SA_RESTART caller ask again under a new id.
    // Only a caller that is being killed is let go, now or, as no second interrupt comes, when
    // the broker's thread sees it dying later.
    if (!Dying(it->second.request.pid)) {
      it->second.interrupted = true;
      cv_.notify_all();
      return;
    }
    h = std::move(it->second);
    pending_.erase(it);
    by_req_.erase(id);
  }
  Emit(h, AskState::kCancelled, {policy::Level::kNone, "interrupted", ""});
  fuse_reply_err(req, EINTR);
}

void AskBroker::ReleaseDying() {
  std::vector<std::pair<std::string, pid_t>> watched;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, h] : pending_) {
      if (h.interrupted) watched.emplace_back(id, h.request.pid);
    }
  }
  for (const auto& [id, pid] : watched) {
    if (!Dying(pid)) continue;  // reads /proc: never under mu_
    Held h;
    {
      std::lock_guard lock(mu_);
      auto it = pending_.find(id);
      if (it == pending_.end()) continue;  // answered meanwhile
      h = std::move(it->second);
      pending_.erase(it);
      by_req_.erase(h.req);
    }
    Emit(h, AskState::kCancelled, {policy::Level::kNone, "interrupted", ""});
    fuse_reply_err(h.req, EINTR);
  }
}

void AskBroker::Stop() {
  std::vector<Held> all;
  {
    std::lock_guard lock(mu_);
    if (stopping_ && !thread_.joinable()) return;
    stopping_ = true;
    for (auto& [id, h] : pending_) all.push_back(std::move(h));
    pending_.clear();
    by_req_.clear();
  }
  cv_.notify_all();
  for (const Held& h : all) {
    Emit(h, AskState::kCancelled, {policy::Level::kNone, "sandbox stopped", ""});
    fuse_reply_err(h.req, EACCES);
  }
  if (thread_.joinable()) thread_.join();
}

policy::Level AskBroker::GrantFor(fuse_req_t req, const std::string& path) const {
  std::lock_guard lock(mu_);
  auto it = running_.find(req);
  if (it == running_.end()) return policy::Level::kNone;
  policy::Level best = policy::Level::kNone;
  for (const auto& [p, level] : it->second) {
    if (p == path && level > best) best = level;
  }
  return best;
}

void AskBroker::Loop() {
  std::unique_lock lock(mu_);
  int64_t last_dying_check = 0;
  while (true) {
    if (!tasks_.empty()) {
      Task t = std::move(tasks_.front());
      tasks_.pop_front();
      if (stopping_) {
        // Decided, but the mount is going away: the operation must not run any more.
        lock.unlock();
        fuse_reply_err(t.req, EACCES);
        lock.lock();
        continue;
      }
      running_[t.req] = t.grants;
      lock.unlock();
      t.resume(t.req);  // the handler replies (or holds the request again)
      lock.lock();
      running_.erase(t.req);
      continue;
    }
    if (stopping_) return;
    // Timeouts: the earliest deadline first; interrupted callers every kDyingCheckNs.
    const int64_t now = NowNs();
    int64_t next = INT64_MAX;
    bool watching = false;
    std::vector<Held> expired;
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (it->second.request.deadline_ns <= now) {
        by_req_.erase(it->second.req);
        expired.push_back(std::move(it->second));
        it = pending_.erase(it);
      } else {
        next = std::min(next, it->second.request.deadline_ns);
        watching = watching || it->second.interrupted;
        ++it;
      }
    }
    if (!expired.empty()) {
      lock.unlock();
      for (const Held& h : expired) {
        Emit(h, AskState::kTimedOut, {policy::Level::kNone, "timeout", ""});
        fuse_reply_err(h.req, EACCES);
      }
      lock.lock();
      continue;
    }
    if (watching && now >= last_dying_check + kDyingCheckNs) {
      lock.unlock();
      ReleaseDying();
      lock.lock();
      last_dying_check = now;
      continue;  // what changed meanwhile is looked at again, under mu_
    }
    if (watching) next = std::min(next, last_dying_check + kDyingCheckNs);
    if (next == INT64_MAX) {
      cv_.wait(lock);
    } else {
      cv_.wait_for(lock, std::chrono::nanoseconds(next - now));
    }
  }
}

}  // namespace agentfense::fs
