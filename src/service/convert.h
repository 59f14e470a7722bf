// Conversions between the store's plain records and the sandbox.v1 wire messages.
#pragma once

#include <cstdint>

#include <google/protobuf/duration.pb.h>
#include <google/protobuf/timestamp.pb.h>

#include "sandbox/v1/codebase.pb.h"
#include "store/codebase_files.h"
#include "store/records.h"

namespace agentfense::service {

// Unix nanoseconds → Timestamp. 0 ("not set" in the store) leaves `out` cleared.
void SetTimestamp(int64_t unix_ns, google::protobuf::Timestamp* out);
int64_t TimestampToNs(const google::protobuf::Timestamp& ts);
int64_t DurationToNs(const google::protobuf::Duration& d);
void SetDuration(int64_t ns, google::protobuf::Duration* out);

::sandbox::v1::Codebase CodebaseToProto(const store::CodebaseRecord& rec);
::sandbox::v1::FileInfo FileInfoToProto(const store::FileEntry& entry);

// Wall-clock now in Unix nanoseconds.
int64_t NowNs();

}  // namespace agentfense::service
