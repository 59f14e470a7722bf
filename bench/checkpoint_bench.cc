// Checkpoints of a delta (docs/CHECKPOINTS.md) against their goals: a delta of FILES files and
// BYTES bytes (default 10,000 and 1 GiB, in 100 directories) mounted delta-backed; then, best of
// RUNS runs each:
//   checkpoint   PermFs::CreateCheckpoint (the supervisor's `checkpoint` op), and the disk it adds
//                (the blocks of what only the checkpoint holds: its directories and files);
//   restore      RestoreCheckpoint after 100 files of the delta changed, and after a discard (the
//                worst case: every file linked back); both include rebasing and cache invalidation.
// Prints one JSON object. Needs root and /dev/fuse (an in-process mount).
//
// Usage: checkpoint_bench [--files N] [--bytes N] [--runs N] [--dir SCRATCH]
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "fs/mount.h"
#include "fs/perm_fs.h"
#include "policy/policy.h"

namespace {

using agentfense::fs::Mount;
namespace stdfs = std::filesystem;

double Seconds(const std::function<void()>& fn) {
  auto t0 = std::chrono::steady_clock::now();
  fn();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void Fill(const std::string& path, size_t size) {
  static std::vector<char> buf(1 << 20, 'x');
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) std::perror(path.c_str()), std::exit(1);
  for (size_t done = 0; done < size;) {
    size_t n = std::min(buf.size(), size - done);
    if (::write(fd, buf.data(), n) != static_cast<ssize_t>(n)) std::perror("write"), std::exit(1);
    done += n;
  }
  ::close(fd);
}

// Bytes of disk only the checkpoint holds: its directories and its files with a single link.
int64_t OwnBytes(const std::string& dir) {
  int64_t total = 0;
  struct stat st;
  for (auto it = stdfs::recursive_directory_iterator(dir); it != stdfs::recursive_directory_iterator();
       ++it) {
    if (::lstat(it->path().c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode) || st.st_nlink == 1) total += static_cast<int64_t>(st.st_blocks) * 512;
  }
  if (::lstat(dir.c_str(), &st) == 0) total += static_cast<int64_t>(st.st_blocks) * 512;
  return total;
}

}  // namespace

int main(int argc, char** argv) {
  size_t files = 10000, bytes = size_t{1} << 30;
  int runs = 3;
  std::string scratch = "/var/tmp";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--files") files = std::stoul(argv[i + 1]);
    if (a == "--bytes") bytes = std::stoul(argv[i + 1]);
    if (a == "--runs") runs = std::stoi(argv[i + 1]);
    if (a == "--dir") scratch = argv[i + 1];
  }
  std::error_code mkerr;
  stdfs::create_directories(scratch, mkerr);
  std::string tmpl = scratch + "/af-ckpt-bench.XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) return std::perror("mkdtemp"), 1;
  const std::string root = tmpl, src = root + "/src", delta = root + "/delta", mnt = root + "/mnt";
  for (const auto& d : {src, delta, mnt, delta + "/upper"}) stdfs::create_directories(d);
  // The delta as a sandbox leaves it: FILES new files in 100 directories of upper/.
  const size_t dirs = 100, each = bytes / files;
  for (size_t i = 0; i < files; ++i) {
    std::string d = delta + "/upper/d" + std::to_string(i % dirs);
    if (i < dirs) stdfs::create_directories(d);
    Fill(d + "/f" + std::to_string(i), each);
  }
  ::sync();
  auto policy = agentfense::policy::Policy::Compile(
      *agentfense::policy::PresetRules("full-access"));
  agentfense::fs::FsOptions options;
  options.delta_dir = delta;
  auto mount = Mount::Start(src, mnt, std::move(*policy), options,
                            agentfense::fs::MountAccess::Self());
  if (!mount.ok()) return std::fprintf(stderr, "%s\n", mount.error().ToString().c_str()), 1;
  auto& fs = (*mount)->fs();

  double best_create = 1e9, best_small = 1e9, best_full = 1e9;
  int64_t own = 0;
  for (int r = 0; r < runs; ++r) {
    const std::string name = "c" + std::to_string(r);
    double t = Seconds([&] {
      auto c = fs.CreateCheckpoint(name);
      if (!c.ok()) std::fprintf(stderr, "%s\n", c.error().ToString().c_str()), std::exit(1);
    });
    best_create = std::min(best_create, t);
    own = OwnBytes(delta + "/checkpoints/" + name);
    // 100 files changed through the mount, then back.
    for (size_t i = 0; i < 100; ++i) {
      Fill(mnt + "/d" + std::to_string(i % dirs) + "/f" + std::to_string(i), 4096);
    }
    best_small = std::min(best_small, Seconds([&] {
      auto x = fs.RestoreCheckpoint(name);
      if (!x.ok()) std::fprintf(stderr, "%s\n", x.error().ToString().c_str()), std::exit(1);
    }));
    // Everything discarded, then back.
    if (auto d = fs.DiscardDelta(); !d.ok()) return 1;
    best_full = std::min(best_full, Seconds([&] {
      auto x = fs.RestoreCheckpoint(name);
      if (!x.ok()) std::fprintf(stderr, "%s\n", x.error().ToString().c_str()), std::exit(1);
    }));
    if (!fs.DeleteCheckpoint(name).ok()) return 1;
  }
  (*mount)->Unmount();
  std::error_code ec;
  stdfs::remove_all(root, ec);
  std::printf(
      "{\"files\": %zu, \"bytes\": %zu, \"runs\": %d, \"checkpoint_s\": %.4f, "
      "\"checkpoint_extra_bytes\": %lld, \"restore_after_100_changes_s\": %.4f, "
      "\"restore_after_discard_s\": %.4f}\n",
      files, bytes, runs, best_create, static_cast<long long>(own), best_small, best_full);
  return 0;
}
