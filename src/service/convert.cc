#include "service/convert.h"

#include <chrono>

namespace agentfense::service {

namespace {
constexpr int64_t kNsPerSec = 1'000'000'000;
}

void SetTimestamp(int64_t unix_ns, google::protobuf::Timestamp* out) {
  out->Clear();
  if (unix_ns == 0) return;
  // Floor division so that times before 1970 keep nanos in [0, 1e9) as the proto requires.
  int64_t secs = unix_ns / kNsPerSec;
  int64_t nanos = unix_ns % kNsPerSec;
  if (nanos < 0) {
    nanos += kNsPerSec;
    --secs;
  }
  out->set_seconds(secs);
  out->set_nanos(static_cast<int32_t>(nanos));
}

int64_t TimestampToNs(const google::protobuf::Timestamp& ts) {
  return ts.seconds() * kNsPerSec + ts.nanos();
}

int64_t DurationToNs(const google::protobuf::Duration& d) {
  return d.seconds() * kNsPerSec + d.nanos();
}

void SetDuration(int64_t ns, google::protobuf::Duration* out) {
  // Duration keeps seconds and nanos with the same sign.
  out->set_seconds(ns / kNsPerSec);
  out->set_nanos(static_cast<int32_t>(ns % kNsPerSec));
}

::sandbox::v1::Codebase CodebaseToProto(const store::CodebaseRecord& rec) {
  ::sandbox::v1::Codebase out;
  out.set_id(rec.id);
  out.set_name(rec.name);
  out.set_owner_id(rec.owner_id);
  out.set_size(rec.size);
  out.set_file_count(static_cast<int32_t>(rec.file_count));
  SetTimestamp(rec.created_at_ns, out.mutable_created_at());
  SetTimestamp(rec.updated_at_ns, out.mutable_updated_at());
  return out;
}

::sandbox::v1::FileInfo FileInfoToProto(const store::FileEntry& entry) {
  ::sandbox::v1::FileInfo out;
  out.set_path(entry.path);
  out.set_name(entry.name);
  out.set_is_dir(entry.is_dir);
  out.set_size(entry.is_dir ? 0 : entry.size);
  SetTimestamp(entry.mtime_ns, out.mutable_modified_at());
  return out;
}

int64_t NowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace agentfense::service
