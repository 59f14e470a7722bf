// folio_census FILE: how the page cache holds FILE (its first 64 MiB): large folios (compound
// pages) or single 4 KiB pages. Maps the file shared, touches every page so each one is cached and
// mapped, then looks each page up in /proc/self/pagemap and /proc/kpageflags (root only).
// bench/run uses it to explain the big-read row: copying from order-0 pages costs more per byte
// than from large folios, whatever the filesystem daemon does.
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

enum { kPage = 4096, kHead = 15, kTail = 16 };  // KPF_COMPOUND_HEAD, KPF_COMPOUND_TAIL

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: folio_census FILE\n");
    return 2;
  }
  int fd = open(argv[1], O_RDONLY);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0 || st.st_size < kPage) {
    perror(argv[1]);
    if (fd >= 0) close(fd);
    return 1;
  }
  size_t size = (size_t)st.st_size < (64u << 20) ? (size_t)st.st_size : (64u << 20);
  size -= size % kPage;
  const volatile unsigned char* p =
      (const volatile unsigned char*)mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
  int pagemap = open("/proc/self/pagemap", O_RDONLY);
  int flags = open("/proc/kpageflags", O_RDONLY);
  close(fd);  // the mapping keeps the file
  if (p == MAP_FAILED || pagemap < 0 || flags < 0) {
    perror("mmap or /proc/self/pagemap or /proc/kpageflags");
    return 1;
  }
  unsigned sum = 0;
  for (size_t off = 0; off < size; off += kPage) sum += p[off];
  long large = 0, single = 0, absent = 0;
  for (size_t off = 0; off < size; off += kPage) {
    uint64_t entry = 0, f = 0;
    if (pread(pagemap, &entry, sizeof(entry), (off_t)(((uintptr_t)p + off) / kPage * 8)) != 8 ||
        !(entry >> 63)) {
      absent++;
      continue;
    }
    uint64_t pfn = entry & ((1ULL << 55) - 1);
    if (pread(flags, &f, sizeof(f), (off_t)(pfn * 8)) != 8) {
      absent++;
      continue;
    }
    if (f & ((1ULL << kHead) | (1ULL << kTail))) {
      large++;
    } else {
      single++;
    }
  }
  printf("{\"pages\": %zu, \"in_large_folios\": %ld, \"single\": %ld, \"absent\": %ld, \"sum\": %u}\n",
         size / kPage, large, single, absent, sum);
  return 0;
}
