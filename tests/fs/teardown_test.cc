// Mount teardown (issue 3): Unmount() while the mount is busy, mounts made while another is
// being torn down, files held open across the unmount, notifications racing the unmount. The
// daemon must never serve a request after Unmount() returned, never read or answer on a
// /dev/fuse descriptor that is no longer its own (the number is reused by the next mount at
// once), and never wait on the kernel or on processes that hold the mount open.
#include <dirent.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fs_test_util.h"

namespace agentfense::fs::testing {
namespace {

using Clock = std::chrono::steady_clock;

size_t ThreadCount() {
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/task")) ++n;
  return n;
}

// Aborts the whole binary (a hang cannot be failed any other way) when `progress` stops moving
// for `limit`.
class Watchdog {
 public:
  explicit Watchdog(std::chrono::seconds limit)
      : thread_([this, limit] {
          uint64_t seen = progress_.load();
          auto since = Clock::now();
          while (!done_.load()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
            uint64_t now = progress_.load();
            if (now != seen) {
              seen = now;
              since = Clock::now();
            } else if (Clock::now() - since > limit) {
              std::fprintf(stderr, "teardown_test: no progress for %llds at step %llu: hang\n",
                           static_cast<long long>(limit.count()),
                           static_cast<unsigned long long>(now));
              std::abort();
            }
          }
        }) {}
  ~Watchdog() {
    done_ = true;
    thread_.join();
  }
  void Tick() { progress_++; }

 private:
  std::atomic<uint64_t> progress_{0};
  std::atomic<bool> done_{false};
  std::thread thread_;
};

// Issues syscalls on one mount until stopped: path lookups, a fresh open + read, a listing and
// a pread on a descriptor held open the whole time. Failures are expected once the mount is
// being torn down; content that is not this mount's never is.
class Hammer {
 public:
  Hammer(std::string mnt, std::string content)
      : mnt_(std::move(mnt)), content_(std::move(content)), thread_([this] { Run(); }) {}
  ~Hammer() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  // Blocks until the first read served this mount's content (the descriptor is held by then).
  void WaitForFirst() const {
    while (ok_.load() == 0 && !stop_.load()) {
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }
  uint64_t ok() const { return ok_.load(); }
  uint64_t wrong() const { return wrong_.load(); }

 private:
  void Check(std::string_view got) {
    if (got == content_) {
      ok_++;
    } else {
      wrong_++;
    }
  }
  void Run() {
    std::string f = mnt_ + "/f";
    int held = ::open(f.c_str(), O_RDONLY | O_CLOEXEC);
    char buf[256];
    while (!stop_.load()) {
      struct stat st;
      if (::stat(f.c_str(), &st) == 0 && st.st_size != static_cast<off_t>(content_.size())) {
        wrong_++;
      }
      if (auto c = ReadFile(f)) Check(*c);
      if (held >= 0) {
        ssize_t n = ::pread(held, buf, sizeof(buf), 0);
        if (n >= 0) Check(std::string_view(buf, static_cast<size_t>(n)));
      }
      if (DIR* d = ::opendir(mnt_.c_str())) {
        while (dirent* de = ::readdir(d)) {
          std::string_view name = de->d_name;
          if (name != "." && name != ".." && name != "f") wrong_++;
        }
        ::closedir(d);
      }
    }
    if (held >= 0) ::close(held);
  }

  std::string mnt_;
  std::string content_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> ok_{0};
  std::atomic<uint64_t> wrong_{0};
  std::thread thread_;
};

struct Live {
  std::unique_ptr<TempDir> delta;  // outlives the mount
  std::unique_ptr<MountedFs> m;
  std::string content;
  std::unique_ptr<Hammer> hammer;
};

// Mounts number `i`: plain or delta-backed, one or three workers, its own file content.
Live StartLive(int i) {
  Live l;
  FsOptions opts;
  opts.threads = i % 3 == 0 ? 3 : 1;
  if (i % 2 == 1) {
    l.delta = std::make_unique<TempDir>();
    opts.delta_dir = *l.delta / "d";
  }
  l.m = MountedFs::Start(PresetPolicy("full-access"), opts);
  if (l.m == nullptr) return l;
  l.content = "mount-" + std::to_string(i) + "-content";
  WriteFile(l.m->src("f"), l.content);
  return l;
}

// 200 generations: each mount is torn down on another thread while the next one is being made
// (so the new /dev/fuse descriptor takes the number the old one frees) and while a thread keeps
// issuing syscalls on the old mount through a path and through a descriptor held open. Every
// mount must serve only its own content, the new one everything, and no step may hang.
TEST(Teardown, UnmountWhileBusyAndRemountingConcurrently) {
  AF_REQUIRE_FUSE();
  constexpr int kGenerations = 200;
  Watchdog dog(std::chrono::seconds(120));
  size_t threads_before = ThreadCount();
  Live prev = StartLive(0);
  ASSERT_NE(prev.m, nullptr);
  prev.hammer = std::make_unique<Hammer>(prev.m->mnt(), prev.content);
  prev.hammer->WaitForFirst();
  for (int i = 1; i <= kGenerations; ++i) {
    dog.Tick();
    // Let the hammer get more requests into flight first (up to 1.2 ms, varying).
    std::this_thread::sleep_for(std::chrono::microseconds(200 * (i % 7)));
    Clock::duration took{};
    std::thread down([&prev, &took] {
      auto t0 = Clock::now();
      prev.m->mount().Unmount();
      took = Clock::now() - t0;
    });
    Live cur = StartLive(i);
    ASSERT_NE(cur.m, nullptr) << "generation " << i;
    // The new mount answers everything, with its own data (a loop of the old mount reading the
    // new mount's descriptor would steal these requests or answer them from the wrong tree).
    for (int k = 0; k < 3; ++k) {
      ASSERT_EQ(ReadFile(cur.m->mnt("f")).value_or("<unreadable>"), cur.content)
          << "generation " << i;
      struct stat st;
      ASSERT_EQ(::stat(cur.m->mnt("f").c_str(), &st), 0) << "generation " << i;
    }
    down.join();
    dog.Tick();
    // Unmount() waits for the handlers in flight only, not for the hammer's open descriptor.
    EXPECT_LT(took, std::chrono::seconds(5)) << "generation " << i - 1 << " Unmount() waited";
    // After Unmount() returned, nothing serves the old mount: not a FUSE mount point any more.
    EXPECT_FALSE(IsFuseMountPoint(prev.m->mnt())) << "generation " << i;
    prev.hammer->Stop();
    EXPECT_EQ(prev.hammer->wrong(), 0u) << "generation " << i - 1 << " served foreign data";
    EXPECT_GT(prev.hammer->ok(), 0u) << "generation " << i - 1 << " never served its hammer";
    prev.hammer.reset();
    prev.m.reset();
    prev = std::move(cur);
    prev.hammer = std::make_unique<Hammer>(prev.m->mnt(), prev.content);
    prev.hammer->WaitForFirst();
    if (::testing::Test::HasFailure()) break;
  }
  prev.m->mount().Unmount();
  prev.hammer->Stop();
  EXPECT_EQ(prev.hammer->wrong(), 0u);
  prev.hammer.reset();
  prev.m.reset();
  // No worker or loop thread outlives its mount.
  EXPECT_EQ(ThreadCount(), threads_before);
}

// A descriptor held open on the mount does not keep the daemon serving (nor Unmount() waiting):
// Unmount() returns at once, every later request through the descriptor fails, no thread is
// left behind.
TEST(Teardown, FileHeldOpenDoesNotDelayUnmount) {
  AF_REQUIRE_FUSE();
  for (int threads : {1, 3}) {
    size_t threads_before = ThreadCount();
    FsOptions opts;
    opts.threads = threads;
    auto m = MountedFs::Start(PresetPolicy("full-access"), opts);
    ASSERT_NE(m, nullptr);
    ASSERT_EQ(::mkdir(m->src("dir").c_str(), 0755), 0);
    int dir = ::open(m->mnt("dir").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    ASSERT_GE(dir, 0);
    ASSERT_EQ(::mkdirat(dir, "before", 0755), 0);
    auto t0 = Clock::now();
    m->mount().Unmount();
    auto took = Clock::now() - t0;
    EXPECT_LT(took, std::chrono::seconds(3)) << "Unmount waited on the open descriptor";
    EXPECT_FALSE(IsFuseMountPoint(m->mnt()));
    // A request the daemon would have to answer: the connection is gone.
    errno = 0;
    EXPECT_NE(::mkdirat(dir, "after", 0755), 0);
    EXPECT_TRUE(errno == ENOTCONN || errno == ECONNABORTED) << std::strerror(errno);
    ::close(dir);
    EXPECT_EQ(ThreadCount(), threads_before);
    struct stat st;
    EXPECT_NE(::stat(m->src("dir/after").c_str(), &st), 0) << "served after Unmount()";
  }
}

double ProcessCpuMs() {
  timespec ts{};
  ::clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) * 1e3 + static_cast<double>(ts.tv_nsec) / 1e6;
}

// FsOptions::busy_poll_us: after a burst of requests a worker keeps reading for that long, then
// sleeps. An idle mount must cost no CPU: a worker that never stopped spinning would burn the
// whole idle window below. Both settings serve requests alike, and Unmount() reaches a spinning
// worker as it reaches a sleeping one.
TEST(BusyPoll, WorkersSleepOnceRequestsStop) {
  AF_REQUIRE_FUSE();
  for (int busy_poll_us : {0, 25, kMaxBusyPollUs}) {
    SCOPED_TRACE(busy_poll_us);
    FsOptions opts;
    opts.busy_poll_us = busy_poll_us;
    opts.threads = busy_poll_us == 25 ? 2 : 1;
    auto m = MountedFs::Start(PresetPolicy("full-access"), opts);
    ASSERT_NE(m, nullptr);
    WriteFile(m->src("f"), "data");
    // Each getxattr of a non-user name is a request the kernel never caches.
    for (int i = 0; i < 500; ++i) {
      char v[8];
      ASSERT_LT(::getxattr(m->mnt("f").c_str(), "security.af_test", v, sizeof(v)), 0);
    }
    EXPECT_EQ(ReadFile(m->mnt("f")), "data");
    const double before = ProcessCpuMs();
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    const double idle_cpu = ProcessCpuMs() - before;
    // At most the spin window (10 ms) plus noise; a worker that kept spinning: ~500 ms.
    EXPECT_LT(idle_cpu, 100.0) << "CPU used while the mount was idle";
    ASSERT_EQ(::getxattr(m->mnt("f").c_str(), "security.af_test", nullptr, 0), -1);
    auto t0 = Clock::now();
    m->mount().Unmount();
    EXPECT_LT(Clock::now() - t0, std::chrono::seconds(3));
  }
}

// `umount` from outside ends serving (Wait() returns: agentfense-mount turns that into a clean
// exit); the later Unmount() only releases the session.
TEST(Teardown, UnmountFromOutsideEndsWait) {
  AF_REQUIRE_FUSE();
  auto m = MountedFs::Start(PresetPolicy("full-access"));
  ASSERT_NE(m, nullptr);
  WriteFile(m->src("f"), "x");
  ASSERT_EQ(ReadFile(m->mnt("f")).value_or(""), "x");
  std::atomic<bool> waited{false};
  std::thread waiter([&] {
    m->mount().Wait();
    waited = true;
  });
  ASSERT_EQ(::umount2(m->mnt().c_str(), MNT_DETACH), 0) << std::strerror(errno);
  auto deadline = Clock::now() + std::chrono::seconds(30);
  while (!waited && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_TRUE(waited.load()) << "Wait() did not return after an external umount";
  if (!waited) m->mount().Unmount();  // unblocks the waiter either way
  waiter.join();
  m->mount().Unmount();
}

// SetPolicy and InvalidatePath (notifications written to /dev/fuse from other threads) racing
// Unmount(): no notification may touch the session once it is being destroyed.
TEST(Teardown, NotificationsRacingUnmount) {
  AF_REQUIRE_FUSE();
  for (int round = 0; round < 20; ++round) {
    auto m = MountedFs::Start(PresetPolicy("full-access"));
    ASSERT_NE(m, nullptr);
    ASSERT_EQ(::mkdir(m->src("d").c_str(), 0755), 0);
    WriteFile(m->src("d/f"), "x");
    ASSERT_EQ(ReadFile(m->mnt("d/f")).value_or(""), "x");  // known inodes to notify about
    std::atomic<bool> stop{false};
    PermFs& fs = m->fs();
    std::thread notifier([&] {
      bool flip = false;
      while (!stop) {
        fs.SetPolicy(PresetPolicy(flip ? "read-only" : "full-access"));
        EXPECT_TRUE(fs.InvalidatePath("/d").ok());
        flip = !flip;
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(round % 5));
    m->mount().Unmount();
    stop = true;
    notifier.join();
    EXPECT_FALSE(IsFuseMountPoint(m->mnt()));
  }
}

}  // namespace
}  // namespace agentfense::fs::testing
