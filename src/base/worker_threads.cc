#include "base/worker_threads.h"

#include <utility>

namespace agentfense {

void WorkerThreads::Spawn(std::function<void()> work) {
  ReapFinished();
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::thread t([work = std::move(work), done] {
    work();
    done->store(true);
  });
  workers_.push_back(Worker{std::move(t), std::move(done)});
}

void WorkerThreads::JoinAll() {
  for (auto& w : workers_) w.thread.join();
  workers_.clear();
}

void WorkerThreads::ReapFinished() {
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (it->done->load()) {
      it->thread.join();
      it = workers_.erase(it);
    } else {
      ++it;
    }
  }
}

}  // namespace agentfense
