#include "server/executor.h"

namespace agentfense::server {

Executor::Executor(size_t max_threads) : max_threads_(max_threads == 0 ? 1 : max_threads) {}

Executor::~Executor() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  for (auto& t : threads_) t.join();
}

void Executor::Submit(std::function<void()> task) {
  {
    std::unique_lock lock(mu_);
    if (!stopping_) {
      queue_.push_back(std::move(task));
      // A new thread only when nobody idle can take the task: long execs must not starve short
      // calls behind them, up to the cap.
      if (idle_ < queue_.size() && threads_.size() < max_threads_) {
        threads_.emplace_back([this] { WorkerLoop(); });
      }
      lock.unlock();
      cv_.notify_one();
      return;
    }
  }
  task();
}

size_t Executor::thread_count() const {
  std::lock_guard lock(mu_);
  return threads_.size();
}

void Executor::WorkerLoop() {
  std::unique_lock lock(mu_);
  while (true) {
    ++idle_;
    cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
    --idle_;
    if (queue_.empty()) return;  // stopping and drained
    std::function<void()> task = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    task();
    lock.lock();
  }
}

}  // namespace agentfense::server
