// libFuzzer target: the tar stream parser of archive uploads (store/tar_reader.h), which decodes
// bytes a client sends (UploadArchive, PUT /v1/codebases/{id}/archive). Besides "never crash", it
// checks what the extractor relies on:
//   - content is delivered only inside an entry, and exactly entry.size bytes of it;
//   - each entry is closed once, before the next begins;
//   - the result does not depend on how the stream is split into pieces (the first input byte
//     picks a piece size: the same bytes fed at once must give the same entries).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "store/tar_reader.h"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

struct Recorder : agentfense::store::TarReader::Handler {
  std::vector<std::string> names;
  std::vector<int64_t> sizes;
  bool open = false;
  int64_t left = 0;
  agentfense::Status OnEntry(const agentfense::store::TarEntry& e) override {
    Check(!open);
    Check(e.size >= 0);
    Check(e.mode <= 07777);
    open = true;
    left = e.size;
    names.push_back(e.name + "\n" + e.linkname + "\n" + e.typeflag);
    sizes.push_back(e.size);
    return agentfense::OkStatus();
  }
  agentfense::Status OnData(std::string_view d) override {
    Check(open);
    Check(static_cast<int64_t>(d.size()) <= left);
    left -= static_cast<int64_t>(d.size());
    return agentfense::OkStatus();
  }
  agentfense::Status OnEntryEnd() override {
    Check(open && left == 0);
    open = false;
    return agentfense::OkStatus();
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const size_t step = 1 + data[0] % 64;
  std::string_view input(reinterpret_cast<const char*>(data + 1), size - 1);

  agentfense::store::TarReader whole;
  Recorder a;
  auto st_whole = whole.Feed(input, a);

  agentfense::store::TarReader pieces;
  Recorder b;
  agentfense::Status st_pieces = agentfense::OkStatus();
  for (size_t i = 0; i < input.size() && st_pieces.ok(); i += step) {
    st_pieces = pieces.Feed(input.substr(i, step), b);
  }
  Check(st_whole.ok() == st_pieces.ok());
  Check(a.names == b.names && a.sizes == b.sizes);
  if (st_whole.ok()) Check(whole.Finish().ok() == pieces.Finish().ok());
  return 0;
}
