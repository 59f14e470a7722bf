// Executor: the threads that run API work (store I/O, sandbox starts, execs) so that gRPC
// completion-queue threads and reactors never block. Threads are started on demand up to
// `max_threads` and then reused; tasks beyond that wait in a FIFO queue.
//
// Thread-safety: Submit may be called from any thread. The destructor stops accepting work,
// runs what is queued and joins every thread.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace agentfense::server {

class Executor {
 public:
  explicit Executor(size_t max_threads);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  // Queues `task`. Tasks must not throw. After shutdown began, the task runs inline so that a
  // late completion still finishes its RPC.
  void Submit(std::function<void()> task);
  size_t thread_count() const;

 private:
  void WorkerLoop();

  const size_t max_threads_;
  mutable std::mutex mu_;  // guards everything below; leaf lock (tasks run without it)
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  std::vector<std::thread> threads_;
  size_t idle_ = 0;
  bool stopping_ = false;
};

}  // namespace agentfense::server
