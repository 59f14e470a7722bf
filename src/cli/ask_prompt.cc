#include "cli/ask_prompt.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <deque>
#include <optional>
#include <set>

#include <fmt/format.h>

#include "base/utf8.h"

namespace agentfense::cli {
namespace {

void WriteFd(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    data.remove_prefix(static_cast<size_t>(n));
  }
}

std::string Describe(const fs::AccessRequest& r) {
  std::string who = fmt::format("pid {}", r.pid);
  if (!r.command.empty()) who += ": " + ForTerminal(r.command);
  return fmt::format("{} {} ({}, {})", r.need == policy::Level::kWrite ? "write" : "read",
                     ForTerminal(r.path), ForTerminal(r.op), who);
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Result<AskMode> ParseAskMode(const std::string& value) {
  if (value.empty() || value == "prompt") return AskMode::kPrompt;
  if (value == "deny") return AskMode::kDeny;
  return Error(ErrorCode::kInvalidArgument,
               "--ask=" + value + ": expected --ask (answer on the terminal) or --ask=deny");
}

AskPrompter::AskPrompter(const supervisor::SupervisorControl& control, AskMode mode,
                         std::vector<policy::Rule> rules, bool raw, std::string answered_by)
    : control_(control), mode_(mode), rules_(std::move(rules)), raw_(raw),
      by_(std::move(answered_by)) {}

Result<std::unique_ptr<AskPrompter>> AskPrompter::Start(const supervisor::SupervisorControl& control,
                                                        AskMode mode,
                                                        std::vector<policy::Rule> rules, bool raw,
                                                        std::string answered_by) {
  std::unique_ptr<AskPrompter> p(
      new AskPrompter(control, mode, std::move(rules), raw, std::move(answered_by)));
  p->stop_.Reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!p->stop_) return Error::FromErrno(errno, "eventfd");
  if (mode == AskMode::kPrompt) {
    if (raw) {
      int fds[2];
      if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) return Error::FromErrno(errno, "pipe");
      p->keys_[0].Reset(fds[0]);
      p->keys_[1].Reset(fds[1]);
    } else {
      p->tty_.Reset(::open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC));
      if (!p->tty_) {
        return Error(ErrorCode::kFailedPrecondition,
                     "--ask answers on the terminal, and this process has none (/dev/tty): use "
                     "--ask=deny for unattended runs");
      }
    }
  }
  AF_ASSIGN_OR_RETURN(auto watch, control.WatchApprovals());
  p->watch_ = std::make_unique<supervisor::ApprovalWatch>(std::move(watch));
  p->thread_ = std::thread([raw_p = p.get()] { raw_p->Loop(); });
  return p;
}

AskPrompter::~AskPrompter() {
  uint64_t one = 1;
  (void)!::write(stop_.get(), &one, sizeof(one));
  if (thread_.joinable()) thread_.join();
}

void AskPrompter::Feed(std::string_view bytes) { WriteFd(keys_[1].get(), bytes); }

void AskPrompter::Say(const std::string& text) const {
  if (raw_) {
    WriteFd(1, "\r\n" + text + "\r\n");
  } else if (tty_) {
    WriteFd(tty_.get(), text + "\n");
  } else {
    WriteFd(2, text + "\n");
  }
}

bool AskPrompter::Decide(const fs::AccessRequest& r, char key) {
  fs::AskAnswer a;
  switch (std::tolower(static_cast<unsigned char>(key))) {
    case 'r': a.grant = policy::Level::kRead; break;
    case 'w': a.grant = policy::Level::kWrite; break;
    case 'd': a.grant = policy::Level::kNone; break;
    default: return false;
  }
  a.by = by_;
  const bool remember = std::isupper(static_cast<unsigned char>(key)) != 0;
  std::optional<policy::Rule> rule;
  if (remember) {
    auto current = policy::Policy::Compile(rules_);
    if (current.ok()) {
      const policy::Level level = a.grant == policy::Level::kNone ? policy::Level::kView : a.grant;
      auto made = policy::RememberRule(*current, r.path, r.op == "mkdir" || r.op == "rmdir", level,
                                       "path", std::nullopt);
      if (made.ok()) {
        rule = *made;
        a.remember = fmt::format("{}={}@{} (file)", rule->pattern, policy::LevelName(rule->level),
                                 rule->priority);
      } else {
        Say("agentfense: cannot remember it (" + made.error().message() + "); answered once");
      }
    }
  }
  Status st = control_.Answer(r.id, a);
  if (!st.ok()) {
    Say("agentfense: too late: " + ForTerminal(st.error().message()));
    return true;
  }
  if (rule) {
    rules_.push_back(*rule);
    if (Status set = control_.SetPolicy(rules_); !set.ok()) {
      rules_.pop_back();
      Say("agentfense: the rule was not added: " + set.error().message());
    }
  }
  Say(fmt::format("agentfense: {} {}{}",
                  a.grant == policy::Level::kNone ? "denied" : "allowed",
                  ForTerminal(r.path), rule ? " (remembered: " + ForTerminal(a.remember) + ")" : ""));
  return true;
}

void AskPrompter::Loop() {
  std::deque<fs::AccessRequest> queue;
  std::set<std::string> seen;
  std::optional<fs::AccessRequest> asking;
  std::string line;
  const int input = raw_ ? keys_[0].get() : tty_.get();
  while (true) {
    if (!asking && !queue.empty()) {
      asking = std::move(queue.front());
      queue.pop_front();
      const int64_t left_s = std::max<int64_t>(0, (asking->deadline_ns - NowNs()) / 1'000'000'000);
      std::string q = fmt::format(
          "agentfense: the sandbox asks to {}. Allow? [r]ead [w]rite [d]eny (R/W/D: remember for "
          "this path; denied in {} s): ",
          Describe(*asking), left_s);
      if (raw_) {
        WriteFd(1, "\r\n" + q);
      } else {
        WriteFd(tty_.get(), q);
      }
      line.clear();
      active_ = true;
    }
    pollfd fds[3] = {{watch_->fd(), POLLIN, 0},
                     {stop_.get(), POLLIN, 0},
                     {asking && input >= 0 ? input : -1, POLLIN, 0}};
    if (::poll(fds, 3, watch_->pending() ? 0 : -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[1].revents != 0) break;
    if (fds[0].revents != 0 || watch_->pending()) {
      bool ended = false;
      while (true) {
        auto ev = watch_->Next(std::chrono::milliseconds(0));
        if (!ev.ok()) {
          ended = true;  // the sandbox stopped
          break;
        }
        if (!ev->has_value()) break;
        const fs::AskEvent& e = **ev;
        if (e.state == fs::AskState::kPending) {
          if (!seen.insert(e.request.id).second) continue;
          if (mode_ == AskMode::kDeny) {
            (void)control_.Answer(e.request.id, {policy::Level::kNone, by_, ""});
            WriteFd(2, "agentfense: denied " + Describe(e.request) +
                           " (an ask rule; --ask answers on the terminal)\n");
          } else {
            queue.push_back(e.request);
          }
          continue;
        }
        // Decided elsewhere (a timeout, a policy change, the caller killed): drop the question.
        std::erase_if(queue, [&](const fs::AccessRequest& r) { return r.id == e.request.id; });
        if (asking && asking->id == e.request.id && e.by != by_) {
          Say(fmt::format("agentfense: {}: {}", ForTerminal(e.request.path),
                          fs::AskStateName(e.state)));
          asking.reset();
          active_ = false;
        }
      }
      if (ended) break;
    }
    if (asking && fds[2].revents != 0) {
      char buf[256];
      ssize_t n = ::read(input, buf, sizeof(buf));
      if (n <= 0) {
        if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
        // The terminal is gone: nobody will answer; the access times out.
        active_ = false;
        break;
      }
      for (ssize_t i = 0; i < n && asking; ++i) {
        char c = buf[i];
        if (!raw_) {
          if (c != '\n') {
            line += c;
            continue;
          }
          size_t k = line.find_first_not_of(" \t\r");
          c = k == std::string::npos ? '\0' : line[k];
          line.clear();
        }
        if (Decide(*asking, c)) {
          asking.reset();
          active_ = false;
        } else if (c != '\0' || !raw_) {
          std::string again = "agentfense: answer r, w or d (R, W, D remember it for the path): ";
          if (raw_) {
            WriteFd(1, "\r\n" + again);
          } else {
            WriteFd(tty_.get(), again);
          }
        }
      }
    }
  }
  active_ = false;
}

}  // namespace agentfense::cli
