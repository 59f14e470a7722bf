// The fuse_lowlevel_ops table: thin trampolines from libfuse's C callbacks to PermFs members.
// No exception may cross into libfuse: each trampoline catches and answers EIO (allocation failure
// before the reply is the only realistic source).
#include <cerrno>
#include <iterator>

#include "fs/perm_fs.h"

namespace agentfense::fs {
namespace {

PermFs* Self(fuse_req_t req) { return static_cast<PermFs*>(fuse_req_userdata(req)); }

// Request kinds counted for /metrics (forgets and refused ioctls are not).
enum Request : size_t {
  kLookup,
  kGetattr,
  kSetattr,
  kReadlink,
  kMknod,
  kMkdir,
  kUnlink,
  kRmdir,
  kSymlink,
  kRename,
  kLink,
  kOpen,
  kRead,
  kWrite,
  kRelease,
  kFsync,
  kOpendir,
  kReaddir,
  kReaddirplus,
  kReleasedir,
  kFsyncdir,
  kStatfs,
  kSetxattr,
  kGetxattr,
  kListxattr,
  kRemovexattr,
  kAccess,
  kCreate,
  kFallocate,
  kLseek,
  kRequestCount
};
constexpr const char* kRequestNames[] = {
    "lookup",      "getattr",     "setattr",  "readlink", "mknod",     "mkdir",
    "unlink",      "rmdir",       "symlink",  "rename",   "link",      "open",
    "read",        "write",       "release",  "fsync",    "opendir",   "readdir",
    "readdirplus", "releasedir",  "fsyncdir", "statfs",   "setxattr",  "getxattr",
    "listxattr",   "removexattr", "access",   "create",   "fallocate", "lseek"};
static_assert(kRequestCount == std::size(kRequestNames));
static_assert(kRequestCount <= PermFs::kRequestKinds);

// Every request but forget and release (which only drop what a served caller made) passes the
// caller check here, in one place.
template <typename F>
void Guard(fuse_req_t req, Request kind, F&& f) noexcept {
  Self(req)->CountRequest(kind);
  if (!Self(req)->ServesCaller(req)) return (void)fuse_reply_err(req, EACCES);
  try {
    f();
  } catch (...) {
    fuse_reply_err(req, EIO);
  }
}

}  // namespace

std::vector<std::pair<std::string, uint64_t>> PermFs::RequestCounts() const {
  std::vector<std::pair<std::string, uint64_t>> out;
  out.reserve(kRequestCount);
  for (size_t k = 0; k < kRequestCount; ++k) {
    out.emplace_back(kRequestNames[k], requests_[k].load(std::memory_order_relaxed));
  }
  return out;
}

const fuse_lowlevel_ops& PermFs::Ops() {
  static const fuse_lowlevel_ops ops = [] {
    fuse_lowlevel_ops o{};
    o.init = [](void* userdata, fuse_conn_info* conn) {
      static_cast<PermFs*>(userdata)->Init(conn);
    };
    o.lookup = [](fuse_req_t r, fuse_ino_t p, const char* n) {
      Guard(r, kLookup, [&] { Self(r)->Lookup(r, p, n); });
    };
    o.forget = [](fuse_req_t r, fuse_ino_t i, uint64_t n) { Self(r)->Forget(r, i, n); };
    o.forget_multi = [](fuse_req_t r, size_t c, fuse_forget_data* f) {
      Self(r)->ForgetMulti(r, c, f);
    };
    o.getattr = [](fuse_req_t r, fuse_ino_t i, fuse_file_info* fi) {
      Guard(r, kGetattr, [&] { Self(r)->Getattr(r, i, fi); });
    };
    o.setattr = [](fuse_req_t r, fuse_ino_t i, struct stat* a, int v, fuse_file_info* fi) {
      Guard(r, kSetattr, [&] { Self(r)->Setattr(r, i, a, v, fi); });
    };
    o.readlink = [](fuse_req_t r, fuse_ino_t i) {
      Guard(r, kReadlink, [&] { Self(r)->Readlink(r, i); });
    };
    o.mknod = [](fuse_req_t r, fuse_ino_t p, const char* n, mode_t m, dev_t d) {
      Guard(r, kMknod, [&] { Self(r)->Mknod(r, p, n, m, d); });
    };
    o.mkdir = [](fuse_req_t r, fuse_ino_t p, const char* n, mode_t m) {
      Guard(r, kMkdir, [&] { Self(r)->Mkdir(r, p, n, m); });
    };
    o.unlink = [](fuse_req_t r, fuse_ino_t p, const char* n) {
      Guard(r, kUnlink, [&] { Self(r)->Unlink(r, p, n, false); });
    };
    o.rmdir = [](fuse_req_t r, fuse_ino_t p, const char* n) {
      Guard(r, kRmdir, [&] { Self(r)->Unlink(r, p, n, true); });
    };
    o.symlink = [](fuse_req_t r, const char* t, fuse_ino_t p, const char* n) {
      Guard(r, kSymlink, [&] { Self(r)->Symlink(r, t, p, n); });
    };
    o.rename = [](fuse_req_t r, fuse_ino_t p, const char* n, fuse_ino_t np, const char* nn,
                  unsigned int f) {
      Guard(r, kRename, [&] { Self(r)->Rename(r, p, n, np, nn, f); });
    };
    o.link = [](fuse_req_t r, fuse_ino_t i, fuse_ino_t np, const char* nn) {
      Guard(r, kLink, [&] { Self(r)->Link(r, i, np, nn); });
    };
    o.open = [](fuse_req_t r, fuse_ino_t i, fuse_file_info* fi) {
      Guard(r, kOpen, [&] { Self(r)->Open(r, i, fi); });
    };
    o.read = [](fuse_req_t r, fuse_ino_t i, size_t s, off_t off, fuse_file_info* fi) {
      Guard(r, kRead, [&] { Self(r)->Read(r, i, s, off, fi); });
    };
    o.write_buf = [](fuse_req_t r, fuse_ino_t i, fuse_bufvec* b, off_t off, fuse_file_info* fi) {
      Guard(r, kWrite, [&] { Self(r)->WriteBuf(r, i, b, off, fi); });
    };
    // No flush handler: libfuse answers ENOSYS once and the kernel stops sending FLUSH on every
    // close (one round trip fewer per open; we hold no per-close state and no POSIX locks).
    // The last close of a file may come from any process the descriptor reached: always served.
    o.release = [](fuse_req_t r, fuse_ino_t i, fuse_file_info* fi) {
      Self(r)->CountRequest(kRelease);
      Self(r)->Release(r, i, fi);
    };
    o.fsync = [](fuse_req_t r, fuse_ino_t i, int d, fuse_file_info* fi) {
      Guard(r, kFsync, [&] { Self(r)->Fsync(r, i, d, fi); });
    };
    o.opendir = [](fuse_req_t r, fuse_ino_t i, fuse_file_info* fi) {
      Guard(r, kOpendir, [&] { Self(r)->Opendir(r, i, fi); });
    };
    o.readdir = [](fuse_req_t r, fuse_ino_t i, size_t s, off_t off, fuse_file_info* /*fi*/) {
      Guard(r, kReaddir, [&] { Self(r)->Readdir(r, i, s, off, false); });
    };
    o.readdirplus = [](fuse_req_t r, fuse_ino_t i, size_t s, off_t off, fuse_file_info* /*fi*/) {
      Guard(r, kReaddirplus, [&] { Self(r)->Readdir(r, i, s, off, true); });
    };
    o.releasedir = [](fuse_req_t r, fuse_ino_t i, fuse_file_info* fi) {
      Self(r)->CountRequest(kReleasedir);
      Self(r)->Releasedir(r, i, fi);
    };
    o.fsyncdir = [](fuse_req_t r, fuse_ino_t i, int d, fuse_file_info* fi) {
      Guard(r, kFsyncdir, [&] { Self(r)->Fsyncdir(r, i, d, fi); });
    };
    o.statfs = [](fuse_req_t r, fuse_ino_t i) {
      Guard(r, kStatfs, [&] { Self(r)->Statfs(r, i); });
    };
    o.setxattr = [](fuse_req_t r, fuse_ino_t i, const char* n, const char* v, size_t s, int f) {
      Guard(r, kSetxattr, [&] { Self(r)->Setxattr(r, i, n, v, s, f); });
    };
    o.getxattr = [](fuse_req_t r, fuse_ino_t i, const char* n, size_t s) {
      Guard(r, kGetxattr, [&] { Self(r)->Getxattr(r, i, n, s); });
    };
    o.listxattr = [](fuse_req_t r, fuse_ino_t i, size_t s) {
      Guard(r, kListxattr, [&] { Self(r)->Listxattr(r, i, s); });
    };
    o.removexattr = [](fuse_req_t r, fuse_ino_t i, const char* n) {
      Guard(r, kRemovexattr, [&] { Self(r)->Removexattr(r, i, n); });
    };
    o.access = [](fuse_req_t r, fuse_ino_t i, int m) {
      Guard(r, kAccess, [&] { Self(r)->Access(r, i, m); });
    };
    o.create = [](fuse_req_t r, fuse_ino_t p, const char* n, mode_t m, fuse_file_info* fi) {
      Guard(r, kCreate, [&] { Self(r)->Create(r, p, n, m, fi); });
    };
    o.fallocate = [](fuse_req_t r, fuse_ino_t i, int m, off_t off, off_t len, fuse_file_info* fi) {
      Guard(r, kFallocate, [&] { Self(r)->Fallocate(r, i, m, off, len, fi); });
    };
    o.lseek = [](fuse_req_t r, fuse_ino_t i, off_t off, int w, fuse_file_info* fi) {
      Guard(r, kLseek, [&] { Self(r)->Lseek(r, i, off, w, fi); });
    };
    // ioctl is refused: the host fd must never see an agent-chosen ioctl (FS_IOC_SETFLAGS etc.).
    o.ioctl = [](fuse_req_t r, fuse_ino_t, int, void*, fuse_file_info*, unsigned, const void*,
                 size_t, size_t) { fuse_reply_err(r, ENOTTY); };
    // copy_file_range is left out: the kernel falls back to READ/WRITE on the two open files,
    // whose opens were both checked.
    return o;
  }();
  return ops;
}

}  // namespace agentfense::fs
