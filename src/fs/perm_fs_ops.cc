// The fuse_lowlevel_ops table: thin trampolines from libfuse's C callbacks to PermFs members.
// No exception may cross into libfuse: each trampoline catches and answers EIO (allocation failure
// before the reply is the only realistic source).
#include "fs/perm_fs.h"

#include <cerrno>

namespace agentfense::fs {
namespace {

PermFs* Self(fuse_req_t req) { return static_cast<PermFs*>(fuse_req_userdata(req)); }

template <typename F>
void Guard(fuse_req_t req, F&& f) noexcept {
  try {
    f();
  } catch (...) {
    fuse_reply_err(req, EIO);
  }
}

}  // namespace

const fuse_lowlevel_ops& PermFs::Ops() {
  static const fuse_lowlevel_ops ops = [] {
    fuse_lowlevel_ops o{};
    o.init = [](void* userdata, fuse_conn_info* conn) { static_cast<PermFs*>(userdata)->Init(conn); };
    o.lookup = [](fuse_req_t r, fuse_ino_t p, const char* n) {
      Guard(r, [&] { Self(r)->Lookup(r, p, n); });
    };
    o.forget = [](fuse_req_t r, fuse_ino_t i, uint64_t n) { Self(r)->Forget(r, i, n); };
    o.forget_multi = [](fuse_req_t r, size_t c, fuse_forget_data* f) {
      Self(r)->ForgetMulti(r, c, f);
    };
    o.getattr = [](fuse_req_t r, fuse_ino_t i, fuse_file_info* fi) {
      Guard(r, [&] { Self(r)->Getattr(r, i, fi); });
    };
    o.setattr = [](fuse_req_t r, fuse_ino_t i, struct stat* a, int v, fuse_file_info* fi) {
      Guard(r, [&] { Self(r)->Setattr(r, i, a, v, fi); });
    };
    o.readlink = [](fuse_req_t r, fuse_ino_t i) { Guard(r, [&] { Self(r)->Readlink(r, i); }); };
    o.mknod = [](fuse_req_t r, fuse_ino_t p, const char* n, mode_t m, dev_t d) {
      Guard(r, [&] { Self(r)->Mknod(r, p, n, m, d); });
    };
    o.mkdir = [](fuse_req_t r, fuse_ino_t p, const char* n, mode_t m) {
      Guard(r, [&] { Self(r)->Mkdir(r, p, n, m); });
    };
    o.unlink = [](fuse_req_t r, fuse_ino_t p, const char* n) {
      Guard(r, [&] { Self(r)->Unlink(r, p, n, false); });
    };
    o.rmdir = [](fuse_req_t r, fuse_ino_t p, const char* n) {
      Guard(r, [&] { Self(r)->Unlink(r, p, n, true); });
    };
    o.symlink = [](fuse_req_t r, const char* t, fuse_ino_t p, const char* n) {
      Guard(r, [&] { Self(r)->Symlink(r, t, p, n); });
    };
    o.rename = [](fuse_req_t r, fuse_ino_t p, const char* n, fuse_ino_t np, const char* nn,
                  unsigned int f) { Guard(r, [&] { Self(r)->Rename(r, p, n, np, nn, f); }); };
    o.link = [](fuse_req_t r, fuse_ino_t i, fuse_ino_t np, const char* nn) {
      Guard(r, [&] { Self(r)->Link(r, i, np, nn); });
    };
    o.open = [](fuse_req_t r, fuse_ino_t i, fuse_file_info* fi) {
      Guard(r, [&] { Self(r)->Open(r, i, fi); });
    };
    o.read = [](fuse_req_t r, fuse_ino_t i, size_t s, off_t off, fuse_file_info* fi) {
      Guard(r, [&] { Self(r)->Read(r, i, s, off, fi); });
    };
    o.write_buf = [](fuse_req_t r, fuse_ino_t i, fuse_bufvec* b, off_t off, fuse_file_info* fi) {
      Guard(r, [&] { Self(r)->WriteBuf(r, i, b, off, fi); });
    };
    // No flush handler: libfuse answers ENOSYS once and the kernel stops sending FLUSH on every
    // close (one round trip fewer per open; we hold no per-close state and no POSIX locks).
    o.release = [](fuse_req_t r, fuse_ino_t i, fuse_file_info* fi) {
      Guard(r, [&] { Self(r)->Release(r, i, fi); });
    };
    o.fsync = [](fuse_req_t r, fuse_ino_t i, int d, fuse_file_info* fi) {
      Guard(r, [&] { Self(r)->Fsync(r, i, d, fi); });
    };
    o.opendir = [](fuse_req_t r, fuse_ino_t i, fuse_file_info* fi) {
      Guard(r, [&] { Self(r)->Opendir(r, i, fi); });
    };
    o.readdir = [](fuse_req_t r, fuse_ino_t i, size_t s, off_t off, fuse_file_info* fi) {
      Guard(r, [&] { Self(r)->Readdir(r, i, s, off, fi, false); });
    };
    o.readdirplus = [](fuse_req_t r, fuse_ino_t i, size_t s, off_t off, fuse_file_info* fi) {
      Guard(r, [&] { Self(r)->Readdir(r, i, s, off, fi, true); });
    };
    o.releasedir = [](fuse_req_t r, fuse_ino_t i, fuse_file_info* fi) {
      Guard(r, [&] { Self(r)->Releasedir(r, i, fi); });
    };
    o.fsyncdir = [](fuse_req_t r, fuse_ino_t i, int d, fuse_file_info* fi) {
      Guard(r, [&] { Self(r)->Fsyncdir(r, i, d, fi); });
    };
    o.statfs = [](fuse_req_t r, fuse_ino_t i) { Guard(r, [&] { Self(r)->Statfs(r, i); }); };
    o.setxattr = [](fuse_req_t r, fuse_ino_t i, const char* n, const char* v, size_t s, int f) {
      Guard(r, [&] { Self(r)->Setxattr(r, i, n, v, s, f); });
    };
    o.getxattr = [](fuse_req_t r, fuse_ino_t i, const char* n, size_t s) {
      Guard(r, [&] { Self(r)->Getxattr(r, i, n, s); });
    };
    o.listxattr = [](fuse_req_t r, fuse_ino_t i, size_t s) {
      Guard(r, [&] { Self(r)->Listxattr(r, i, s); });
    };
    o.removexattr = [](fuse_req_t r, fuse_ino_t i, const char* n) {
      Guard(r, [&] { Self(r)->Removexattr(r, i, n); });
    };
    o.access = [](fuse_req_t r, fuse_ino_t i, int m) { Guard(r, [&] { Self(r)->Access(r, i, m); }); };
    o.create = [](fuse_req_t r, fuse_ino_t p, const char* n, mode_t m, fuse_file_info* fi) {
      Guard(r, [&] { Self(r)->Create(r, p, n, m, fi); });
    };
    o.fallocate = [](fuse_req_t r, fuse_ino_t i, int m, off_t off, off_t len, fuse_file_info* fi) {
      Guard(r, [&] { Self(r)->Fallocate(r, i, m, off, len, fi); });
    };
    o.lseek = [](fuse_req_t r, fuse_ino_t i, off_t off, int w, fuse_file_info* fi) {
      Guard(r, [&] { Self(r)->Lseek(r, i, off, w, fi); });
    };
    // ioctl is refused: the host fd must never see an agent-chosen ioctl (FS_IOC_SETFLAGS etc.).
    o.ioctl = [](fuse_req_t r, fuse_ino_t, int, void*, fuse_file_info*, unsigned,
                 const void*, size_t, size_t) { fuse_reply_err(r, ENOTTY); };
    // copy_file_range is left out: the kernel falls back to READ/WRITE on the two open files,
    // whose opens were both checked.
    return o;
  }();
  return ops;
}

}  // namespace agentfense::fs
