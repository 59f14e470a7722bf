// Real-mount tests of the `ask` level (docs/PERMISSIONS.md, "ask"): an access waits for a
// decision (allow once, deny, allow read for a write, timeout, a policy change, a caller killed
// while it waits, a stopping mount) while the rest of the mount keeps being served, 50 at once.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "fs_test_util.h"

namespace agentfense::fs::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::steady_clock;

struct Events {
  std::mutex mu;
  std::vector<AskEvent> all;
  size_t Count(AskState s) {
    std::lock_guard lock(mu);
    size_t n = 0;
    for (const auto& e : all) n += e.state == s;
    return n;
  }
};

class AskTest : public ::testing::Test {
 protected:
  void SetUp() override { AF_REQUIRE_FUSE(); }
  void Mount(const std::vector<std::string>& rules, milliseconds timeout = milliseconds(20'000)) {
    FsOptions o;
    o.ask_timeout = timeout;
    auto events = events_;
    o.ask_events = [events](const AskEvent& e) {
      std::lock_guard lock(events->mu);
      events->all.push_back(e);
    };
    m_ = MountedFs::Start(MakePolicy(rules), o);
    ASSERT_TRUE(m_);
  }
  // Waits until `n` accesses are held; returns them.
  std::vector<AccessRequest> WaitPending(size_t n) {
    auto until = steady_clock::now() + std::chrono::seconds(10);
    while (steady_clock::now() < until) {
      auto p = m_->fs().PendingAsks();
      if (p.size() >= n) return p;
      std::this_thread::sleep_for(milliseconds(2));
    }
    ADD_FAILURE() << "fewer than " << n << " accesses held";
    return m_->fs().PendingAsks();
  }
  // read() of a whole file in another thread: the content, or "errno:<name>".
  std::future<std::string> ReadLater(const std::string& path) {
    return std::async(std::launch::async, [path] {
      auto r = ReadFile(path);
      return r ? *r : std::string("errno:") + strerrorname_np(errno);
    });
  }
  std::unique_ptr<MountedFs> m_;
  std::shared_ptr<Events> events_ = std::make_shared<Events>();
};

TEST_F(AskTest, AReadWaitsForItsDecisionAndAllowOnceIsOnce) {
  Mount({"**/*=read", "/secret=ask@10"});
  WriteFile(m_->src("secret"), "s3cret\n");
  struct stat st;
  ASSERT_EQ(::stat(m_->mnt("secret").c_str(), &st), 0) << "visible as with view";
  EXPECT_EQ(::access(m_->mnt("secret").c_str(), R_OK), 0) << "access(2) never waits";
  auto read = ReadLater(m_->mnt("secret"));
  auto held = WaitPending(1);
  ASSERT_EQ(held.size(), 1u);
  EXPECT_EQ(held[0].path, "/secret");
  EXPECT_EQ(held[0].op, "open");
  EXPECT_EQ(held[0].need, policy::Level::kRead);
  EXPECT_GT(held[0].pid, 0);
  EXPECT_NE(held[0].command.find("ask"), std::string::npos) << held[0].command;
  EXPECT_EQ(held[0].id.rfind("ap_", 0), 0u);
  EXPECT_GT(held[0].deadline_ns, held[0].since_ns);
  EXPECT_EQ(read.wait_for(milliseconds(100)), std::future_status::timeout) << "it waits";
  ASSERT_TRUE(m_->fs().AnswerAsk(held[0].id, {policy::Level::kRead, "test", ""}).ok());
  EXPECT_EQ(read.get(), "s3cret\n");
  EXPECT_EQ(m_->fs().AnswerAsk(held[0].id, {policy::Level::kRead, "test", ""}).error().code(),
            ErrorCode::kNotFound);
  // Once means once: the next read asks again.
  auto again = ReadLater(m_->mnt("secret"));
  auto second = WaitPending(1);
  EXPECT_NE(second[0].id, held[0].id);
  ASSERT_TRUE(m_->fs().AnswerAsk(second[0].id, {policy::Level::kNone, "test", ""}).ok());
  EXPECT_EQ(again.get(), "errno:EACCES");
  EXPECT_EQ(events_->Count(AskState::kPending), 2u);
  EXPECT_EQ(events_->Count(AskState::kAllowed), 1u);
  EXPECT_EQ(events_->Count(AskState::kDenied), 1u);
}

TEST_F(AskTest, WritesNeedAWriteDecisionAndTheHandleKeepsIt) {
  Mount({"**/*=read", "/out/**=ask@10"});
  ::mkdir(m_->src("out").c_str(), 0755);
  WriteFile(m_->src("out/f"), "old\n");
  // Allowing read does not allow a write.
  auto denied = std::async(std::launch::async, [this] {
    int fd = ::open(m_->mnt("out/f").c_str(), O_WRONLY | O_TRUNC);
    int e = errno;
    if (fd >= 0) ::close(fd);
    return fd >= 0 ? 0 : e;
  });
  auto held = WaitPending(1);
  EXPECT_EQ(held[0].need, policy::Level::kWrite);
  ASSERT_TRUE(m_->fs().AnswerAsk(held[0].id, {policy::Level::kRead, "test", ""}).ok());
  EXPECT_EQ(denied.get(), EACCES);
  EXPECT_EQ(ReadFile(m_->src("out/f")), "old\n");
  // Creating a new file asks too; the handle then writes and truncates without asking again.
  auto created = std::async(std::launch::async, [this] {
    int fd = ::open(m_->mnt("out/new").c_str(), O_WRONLY | O_CREAT | O_EXCL, 0644);
    if (fd < 0) return errno;
    int r = ::write(fd, "abc", 3) == 3 && ::ftruncate(fd, 2) == 0 ? 0 : errno;
    ::close(fd);
    return r;
  });
  held = WaitPending(1);
  EXPECT_EQ(held[0].op, "create");
  ASSERT_TRUE(m_->fs().AnswerAsk(held[0].id, {policy::Level::kWrite, "test", ""}).ok());
  EXPECT_EQ(created.get(), 0);
  EXPECT_EQ(ReadFile(m_->src("out/new")), "ab");
  EXPECT_TRUE(m_->fs().PendingAsks().empty());
}

TEST_F(AskTest, NobodyAnsweringDeniesAtTheTimeout) {
  Mount({"**/*=read", "/secret=ask@10"}, milliseconds(300));
  WriteFile(m_->src("secret"), "s\n");
  auto start = steady_clock::now();
  auto r = ReadFile(m_->mnt("secret"));
  int e = errno;
  auto waited = steady_clock::now() - start;
  EXPECT_FALSE(r);
  EXPECT_EQ(e, EACCES);
  EXPECT_GE(waited, milliseconds(250));
  EXPECT_LT(waited, milliseconds(5000));
  EXPECT_EQ(events_->Count(AskState::kTimedOut), 1u);
}

TEST_F(AskTest, AHeldRequestBlocksNothingElseOfTheMount) {
  Mount({"**/*=read", "/secret=ask@10"});
  WriteFile(m_->src("secret"), "s\n");
  WriteFile(m_->src("other"), "other\n");
  ASSERT_EQ(m_->fs().options().threads, 1) << "one worker: the held request must not occupy it";
  auto read = ReadLater(m_->mnt("secret"));
  auto held = WaitPending(1);
  auto start = steady_clock::now();
  auto listing = std::async(std::launch::async, [this] {
    return std::system(("ls -la " + m_->mnt() + " >/dev/null").c_str());
  });
  ASSERT_EQ(listing.wait_for(std::chrono::seconds(5)), std::future_status::ready);
  EXPECT_EQ(listing.get(), 0);
  EXPECT_EQ(ReadFile(m_->mnt("other")), "other\n");
  EXPECT_LT(steady_clock::now() - start, std::chrono::seconds(2));
  ASSERT_TRUE(m_->fs().AnswerAsk(held[0].id, {policy::Level::kRead, "test", ""}).ok());
  EXPECT_EQ(read.get(), "s\n");
}

TEST_F(AskTest, FiftyAccessesWaitAtOnceAndAreAnsweredInAnyOrder) {
  Mount({"**/*=read", "/asked/**=ask@10"});
  ::mkdir(m_->src("asked").c_str(), 0755);
  constexpr int kN = 50;
  for (int i = 0; i < kN; ++i) WriteFile(m_->src("asked/" + std::to_string(i)), std::to_string(i));
  std::vector<std::future<std::string>> reads;
  for (int i = 0; i < kN; ++i) reads.push_back(ReadLater(m_->mnt("asked/" + std::to_string(i))));
  auto held = WaitPending(kN);
  ASSERT_EQ(held.size(), static_cast<size_t>(kN));
  // Even paths allowed, odd ones denied, newest first.
  for (auto it = held.rbegin(); it != held.rend(); ++it) {
    const int i = std::stoi(it->path.substr(std::string("/asked/").size()));
    policy::Level grant = i % 2 == 0 ? policy::Level::kRead : policy::Level::kNone;
    ASSERT_TRUE(m_->fs().AnswerAsk(it->id, {grant, "test", ""}).ok());
  }
  for (int i = 0; i < kN; ++i) {
    EXPECT_EQ(reads[i].get(), i % 2 == 0 ? std::to_string(i) : "errno:EACCES") << i;
  }
}

TEST_F(AskTest, APolicyChangeDecidesWhatItCovers) {
  Mount({"**/*=read", "/a=ask@10", "/b=ask@10"});
  WriteFile(m_->src("a"), "a\n");
  WriteFile(m_->src("b"), "b\n");
  auto a = ReadLater(m_->mnt("a"));
  auto b = ReadLater(m_->mnt("b"));
  WaitPending(2);
  m_->fs().SetPolicy(MakePolicy({"**/*=read", "/a=read@20", "/b=ask@10"}));
  EXPECT_EQ(a.get(), "a\n");
  auto left = WaitPending(1);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(left[0].path, "/b");
  m_->fs().SetPolicy(MakePolicy({"**/*=read", "/b=view@20"}));
  EXPECT_EQ(b.get(), "errno:EACCES");
}

TEST_F(AskTest, ACallerKilledWhileWaitingIsLetGo) {
  Mount({"**/*=read", "/secret=ask@10"});
  WriteFile(m_->src("secret"), "s\n");
  pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    int fd = ::open(m_->mnt("secret").c_str(), O_RDONLY);
    ::_exit(fd >= 0 ? 0 : 1);
  }
  WaitPending(1);
  ASSERT_EQ(::kill(child, SIGKILL), 0);
  int status = 0;
  auto start = steady_clock::now();
  ASSERT_EQ(::waitpid(child, &status, 0), child);
  EXPECT_LT(steady_clock::now() - start, std::chrono::seconds(5)) << "not kept until the timeout";
  EXPECT_TRUE(WIFSIGNALED(status));
  EXPECT_TRUE(m_->fs().PendingAsks().empty());
  EXPECT_EQ(events_->Count(AskState::kCancelled), 1u);
}

// The kernel sends FUSE_INTERRUPT once, at the first signal: a caller that survives that
// signal (handled, or SIGSTOP) stays held under the same id, and when it is killed afterwards,
// with no second interrupt, it is still let go within the broker's check, not at the timeout.
TEST_F(AskTest, ACallerSignalledThenKilledWhileWaitingIsLetGo) {
  Mount({"**/*=read", "/secret=ask@10"});
  WriteFile(m_->src("secret"), "s\n");
  for (int first : {SIGUSR1, SIGSTOP}) {
    SCOPED_TRACE(strsignal(first));
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      struct sigaction sa {};
      sa.sa_handler = [](int) {};
      sa.sa_flags = SA_RESTART;
      ::sigaction(SIGUSR1, &sa, nullptr);
      int fd = ::open(m_->mnt("secret").c_str(), O_RDONLY);
      ::_exit(fd >= 0 ? 0 : 1);
    }
    auto held = WaitPending(1);
    ASSERT_EQ(held.size(), 1u);
    const size_t cancelled = events_->Count(AskState::kCancelled);
    ASSERT_EQ(::kill(child, first), 0);
    std::this_thread::sleep_for(milliseconds(400));
    auto still = m_->fs().PendingAsks();
    ASSERT_EQ(still.size(), 1u) << "a caller that survives its signal stays held";
    EXPECT_EQ(still[0].id, held[0].id) << "and is not asked again";
    ASSERT_EQ(::kill(child, SIGKILL), 0);
    int status = 0;
    auto start = steady_clock::now();
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    EXPECT_LT(steady_clock::now() - start, std::chrono::seconds(3)) << "kept until the timeout";
    EXPECT_TRUE(WIFSIGNALED(status));
    EXPECT_TRUE(m_->fs().PendingAsks().empty());
    EXPECT_EQ(events_->Count(AskState::kCancelled), cancelled + 1);
  }
}

TEST_F(AskTest, StoppingTheMountReleasesEveryWaiterWithEacces) {
  Mount({"**/*=read", "/asked/**=ask@10"});
  ::mkdir(m_->src("asked").c_str(), 0755);
  std::vector<std::future<std::string>> reads;
  for (int i = 0; i < 3; ++i) {
    WriteFile(m_->src("asked/" + std::to_string(i)), "x");
    reads.push_back(ReadLater(m_->mnt("asked/" + std::to_string(i))));
  }
  WaitPending(3);
  auto start = steady_clock::now();
  m_->Unmount();
  for (auto& r : reads) EXPECT_EQ(r.get(), "errno:EACCES");
  EXPECT_LT(steady_clock::now() - start, std::chrono::seconds(5));
}

}  // namespace
}  // namespace agentfense::fs::testing
