// The server's own shared-state classes under concurrent use (issue 10). Built into server_test
// and, alone with peer_watch_test, into server_threads_test: the small TSan target CI can afford
// (no gRPC, no store; scripts/sanitize).
#include <gtest/gtest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "server/executor.h"
#include "server/metrics.h"

namespace agentfense::server {
namespace {

TEST(ExecutorThreadsTest, ConcurrentSubmittersAndTasksThatSubmit) {
  std::atomic<int> done{0};
  {
    Executor ex(8);
    std::vector<std::thread> submitters;
    submitters.reserve(4);
    for (int t = 0; t < 4; ++t) {
      submitters.emplace_back([&] {
        for (int i = 0; i < 50; ++i) {
          ex.Submit([&] {
            ++done;
            ex.Submit([&] { ++done; });  // a task that queues more work (RPC completions do)
          });
          if (i % 10 == 0) (void)ex.thread_count();
        }
      });
    }
    for (auto& s : submitters) s.join();
  }  // the destructor runs what is queued, including work queued while it drains
  EXPECT_EQ(done.load(), 400);
}

TEST(ExecutorThreadsTest, SubmitDuringShutdownRunsInline) {
  std::atomic<int> done{0};
  std::atomic<bool> go{false};
  auto ex = std::make_unique<Executor>(2);
  Executor* raw = ex.get();
  // A task that keeps submitting while the destructor stops the executor: after shutdown began,
  // Submit runs the task on the caller's thread instead of queueing it forever.
  raw->Submit([&] {
    while (!go.load()) std::this_thread::yield();
    for (int i = 0; i < 100; ++i) raw->Submit([&] { ++done; });
  });
  std::thread stopper([&] { ex.reset(); });
  go.store(true);
  stopper.join();
  EXPECT_EQ(done.load(), 100);
}

TEST(MetricsThreadsTest, RecordRenderAndCollectorsConcurrently) {
  Metrics m;
  std::atomic<int> collected{0};
  std::vector<std::thread> threads;
  threads.reserve(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i) {
        m.RecordRequest(t % 2 == 0 ? "rest" : "grpc", "/r" + std::to_string(i % 3), "OK", 0.01);
        if (i % 50 == 0) {
          m.AddCollector([&] {
            ++collected;
            return std::string();
          });
        }
      }
    });
  }
  threads.emplace_back([&] {
    for (int i = 0; i < 50; ++i) (void)m.Render();
  });
  for (auto& t : threads) t.join();
  std::string text = m.Render();
  // Two "rest" threads, 67 of their 200 requests each on /r0.
  EXPECT_NE(text.find(R"(_seconds_count{transport="rest",route="/r0"} 134)"), std::string::npos)
      << text;
  EXPECT_GT(collected.load(), 0);
}

}  // namespace
}  // namespace agentfense::server
