// PeerWatch: notices REST clients that hang up while their request still runs (a long exec), so
// that the command is cancelled at once. httplib (0.11) does not expose the connection and only
// finds a dead peer when it next writes, which for a silent command is when the command ends.
//
// One thread polls the watched connections every 100 ms (poll(2) with POLLRDHUP; it never reads
// or writes them). A connection counts as gone when the peer closed it or it failed: an HTTP
// client that half-closes its side while it waits for the answer is treated as gone too.
//
// Thread-safety: Watch and the handles it returns may be used from any thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

namespace httplib {
struct Request;
}

namespace agentfense::server {

class PeerWatch {
 public:
  PeerWatch();
  ~PeerWatch();
  PeerWatch(const PeerWatch&) = delete;
  PeerWatch& operator=(const PeerWatch&) = delete;

  // Sets *cancelled once the connection `req` arrived on is gone, until the returned handle is
  // destroyed (destroy it before the response is over: httplib then closes or reuses the
  // connection). Null when the connection's socket cannot be found: nothing is watched.
  std::shared_ptr<void> Watch(const httplib::Request& req,
                              std::shared_ptr<std::atomic<bool>> cancelled);

  // The fd of this process's TCP socket whose local and peer addresses are these (numeric host
  // as getnameinfo prints it), or -1. Exposed for tests.
  static int FindSocket(const std::string& local_addr, int local_port,
                        const std::string& remote_addr, int remote_port);

 private:
  void Loop();
  void Unwatch(uint64_t id);

  struct Entry {
    int fd;
    std::shared_ptr<std::atomic<bool>> cancelled;
  };
  std::mutex mu_;  // guards the fields below; held while polling so no fd is closed meanwhile
  std::condition_variable cv_;
  std::map<uint64_t, Entry> entries_;
  uint64_t next_id_ = 0;
  bool stop_ = false;
  std::thread thread_;  // last: starts once the fields above exist
};

}  // namespace agentfense::server
