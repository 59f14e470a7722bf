// Threads one owner starts so that a slow request does not hold up its reading loop (the
// supervisor's relay, MCP over stdio). Finished ones are joined as new ones start, so a long-lived
// connection does not accumulate them; JoinAll waits for the rest.
#pragma once

#include <atomic>
#include <functional>
#include <list>
#include <memory>
#include <thread>

namespace agentfense {

// Not thread-safe: Spawn, JoinAll and size are called by the owner only.
class WorkerThreads {
 public:
  WorkerThreads() = default;
  WorkerThreads(const WorkerThreads&) = delete;
  WorkerThreads& operator=(const WorkerThreads&) = delete;
  ~WorkerThreads() { JoinAll(); }

  // Joins the workers that have finished, then runs `work` on a new thread.
  void Spawn(std::function<void()> work);

  // Waits for every worker. The owner first makes them end (cancel flags and the like).
  void JoinAll();

  // Workers not yet joined (finished or not).
  size_t size() const { return workers_.size(); }

 private:
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> done;
  };
  void ReapFinished();

  std::list<Worker> workers_;
};

}  // namespace agentfense
