// Wire identity of sandbox.v1: the descriptors compiled into af_proto must match the contract in
// /work/shared/spec/WIRE.md, transcribed by hand into the tables below. Any drift in a service,
// method, streaming flag, message, field (number, name, type, label) or enum value fails here.
// Our additive extensions are listed too, marked "extension": an unlisted addition also fails, so
// every change to the wire is a deliberate edit of this file.
#include <google/protobuf/descriptor.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "sandbox/v1/codebase.grpc.pb.h"
#include "sandbox/v1/common.pb.h"
#include "sandbox/v1/sandbox.grpc.pb.h"

namespace {

using google::protobuf::Descriptor;
using google::protobuf::DescriptorPool;
using google::protobuf::EnumDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::FileDescriptor;
using google::protobuf::ServiceDescriptor;

constexpr char kCommon[] = "sandbox/v1/common.proto";
constexpr char kSandbox[] = "sandbox/v1/sandbox.proto";
constexpr char kCodebase[] = "sandbox/v1/codebase.proto";

struct FieldSpec {
  int number;
  const char* name;
  // "string", "int64", "sandbox.v1.Permission", "google.protobuf.Timestamp", with a prefix
  // "repeated ", "optional " (proto3 optional) or "oneof(NAME) "; maps are "map<K, V>".
  const char* type;
};

struct MessageSpec {
  const char* full_name;
  const char* file;
  std::vector<FieldSpec> fields;
};

struct EnumSpec {
  const char* full_name;
  const char* file;
  std::vector<std::pair<const char*, int>> values;
};

struct MethodSpec {
  const char* name;
  const char* input;
  const char* output;
  bool client_streaming;
  bool server_streaming;
};

struct ServiceSpec {
  const char* full_name;
  const char* file;
  std::vector<MethodSpec> methods;
};

const std::vector<EnumSpec>& Enums() {
  static const auto* const kEnums = new std::vector<EnumSpec>{
      {"sandbox.v1.Permission",
       kCommon,
       {{"PERMISSION_UNSPECIFIED", 0},
        {"PERMISSION_NONE", 1},
        {"PERMISSION_VIEW", 2},
        {"PERMISSION_READ", 3},
        {"PERMISSION_WRITE", 4},
        {"PERMISSION_ASK", 5}}},  // extension
      {"sandbox.v1.PatternType",
       kCommon,
       {{"PATTERN_TYPE_UNSPECIFIED", 0},
        {"PATTERN_TYPE_GLOB", 1},
        {"PATTERN_TYPE_DIRECTORY", 2},
        {"PATTERN_TYPE_FILE", 3}}},
      {"sandbox.v1.SandboxStatus",
       kCommon,
       {{"SANDBOX_STATUS_UNSPECIFIED", 0},
        {"SANDBOX_STATUS_PENDING", 1},
        {"SANDBOX_STATUS_RUNNING", 2},
        {"SANDBOX_STATUS_STOPPED", 3},
        {"SANDBOX_STATUS_ERROR", 4}}},
      {"sandbox.v1.SessionStatus",
       kCommon,
       {{"SESSION_STATUS_UNSPECIFIED", 0},
        {"SESSION_STATUS_ACTIVE", 1},
        {"SESSION_STATUS_CLOSED", 2}}},
      {"sandbox.v1.RuntimeType",
       kSandbox,
       {{"RUNTIME_TYPE_UNSPECIFIED", 0}, {"RUNTIME_TYPE_BWRAP", 1}, {"RUNTIME_TYPE_DOCKER", 2}}},
      {"sandbox.v1.ExecOutput.OutputType",
       kSandbox,
       {{"OUTPUT_TYPE_UNSPECIFIED", 0}, {"OUTPUT_TYPE_STDOUT", 1}, {"OUTPUT_TYPE_STDERR", 2}}},
      // extensions
      {"sandbox.v1.SyncMode",
       kSandbox,
       {{"SYNC_MODE_UNSPECIFIED", 0},
        {"SYNC_MODE_ON_EXEC", 1},
        {"SYNC_MODE_ON_STOP", 2},
        {"SYNC_MODE_MANUAL", 3},
        {"SYNC_MODE_NEVER", 4}}},
      {"sandbox.v1.ChangeKind",
       kSandbox,
       {{"CHANGE_KIND_UNSPECIFIED", 0},
        {"CHANGE_KIND_ADDED", 1},
        {"CHANGE_KIND_MODIFIED", 2},
        {"CHANGE_KIND_DELETED", 3}}},
      {"sandbox.v1.ApprovalAccess",
       kSandbox,
       {{"APPROVAL_ACCESS_UNSPECIFIED", 0},
        {"APPROVAL_ACCESS_READ", 1},
        {"APPROVAL_ACCESS_WRITE", 2}}},
      {"sandbox.v1.ApprovalState",
       kSandbox,
       {{"APPROVAL_STATE_UNSPECIFIED", 0},
        {"APPROVAL_STATE_PENDING", 1},
        {"APPROVAL_STATE_ALLOWED", 2},
        {"APPROVAL_STATE_DENIED", 3},
        {"APPROVAL_STATE_TIMED_OUT", 4},
        {"APPROVAL_STATE_CANCELLED", 5}}},
      {"sandbox.v1.ApprovalDecision",
       kSandbox,
       {{"APPROVAL_DECISION_UNSPECIFIED", 0},
        {"APPROVAL_DECISION_ALLOW", 1},
        {"APPROVAL_DECISION_ALLOW_READ", 2},
        {"APPROVAL_DECISION_ALLOW_WRITE", 3},
        {"APPROVAL_DECISION_DENY", 4}}},
  };
  return *kEnums;
}

const std::vector<MessageSpec>& Messages() {
  static const auto* const kMessages = new std::vector<MessageSpec>{
      // common.proto
      {"sandbox.v1.PermissionRule",
       kCommon,
       {{1, "pattern", "string"},
        {2, "type", "sandbox.v1.PatternType"},
        {3, "permission", "sandbox.v1.Permission"},
        {4, "priority", "int32"}}},
      {"sandbox.v1.Empty", kCommon, {}},
      // sandbox.proto
      {"sandbox.v1.ResourceLimits",
       kSandbox,
       {{1, "memory_bytes", "int64"},
        {2, "cpu_quota", "int64"},
        {3, "cpu_shares", "int64"},
        {4, "pids_limit", "int64"}}},
      {"sandbox.v1.Sandbox",
       kSandbox,
       {{1, "id", "string"},
        {2, "codebase_id", "string"},
        {3, "permissions", "repeated sandbox.v1.PermissionRule"},
        {4, "status", "sandbox.v1.SandboxStatus"},
        {5, "labels", "map<string, string>"},
        {6, "created_at", "google.protobuf.Timestamp"},
        {7, "started_at", "google.protobuf.Timestamp"},
        {8, "stopped_at", "google.protobuf.Timestamp"},
        {9, "expires_at", "google.protobuf.Timestamp"},
        {10, "runtime", "sandbox.v1.RuntimeType"},
        {11, "image", "string"},
        {12, "resources", "sandbox.v1.ResourceLimits"},
        // extensions
        {100, "sync_mode", "sandbox.v1.SyncMode"},
        {101, "network", "bool"},
        {102, "delta_quota", "sandbox.v1.DeltaQuota"},
        {103, "status_message", "string"},
        {104, "host_uid", "uint32"},
        {110, "egress", "sandbox.v1.EgressPolicy"},
        {140, "ask_timeout", "google.protobuf.Duration"}}},
      {"sandbox.v1.CreateSandboxRequest",
       kSandbox,
       {{1, "codebase_id", "string"},
        {2, "permissions", "repeated sandbox.v1.PermissionRule"},
        {3, "expires_in", "google.protobuf.Duration"},
        {4, "labels", "map<string, string>"},
        {5, "runtime", "sandbox.v1.RuntimeType"},
        {6, "image", "string"},
        {7, "resources", "sandbox.v1.ResourceLimits"},
        // extensions
        {100, "sync_mode", "sandbox.v1.SyncMode"},
        {101, "network", "bool"},
        {102, "delta_quota", "sandbox.v1.DeltaQuota"},
        {103, "env", "map<string, string>"},
        {110, "egress", "sandbox.v1.EgressPolicy"},
        {140, "ask_timeout", "google.protobuf.Duration"}}},
      {"sandbox.v1.GetSandboxRequest", kSandbox, {{1, "sandbox_id", "string"}}},
      {"sandbox.v1.StartSandboxRequest", kSandbox, {{1, "sandbox_id", "string"}}},
      {"sandbox.v1.StopSandboxRequest", kSandbox, {{1, "sandbox_id", "string"}}},
      {"sandbox.v1.DestroySandboxRequest", kSandbox, {{1, "sandbox_id", "string"}}},
      {"sandbox.v1.ListSandboxesRequest",
       kSandbox,
       {{1, "codebase_id", "string"}, {2, "page_size", "int32"}, {3, "page_token", "string"}}},
      {"sandbox.v1.ListSandboxesResponse",
       kSandbox,
       {{1, "sandboxes", "repeated sandbox.v1.Sandbox"}, {2, "next_page_token", "string"}}},
      {"sandbox.v1.ExecRequest",
       kSandbox,
       {{1, "sandbox_id", "string"},
        {2, "command", "string"},
        {3, "stdin", "string"},
        {4, "env", "map<string, string>"},
        {5, "workdir", "string"},
        {6, "timeout", "google.protobuf.Duration"}}},
      {"sandbox.v1.ExecResult",
       kSandbox,
       {{1, "stdout", "string"},
        {2, "stderr", "string"},
        {3, "exit_code", "int32"},
        {4, "duration", "google.protobuf.Duration"}}},
      {"sandbox.v1.ExecOutput",
       kSandbox,
       {{1, "type", "sandbox.v1.ExecOutput.OutputType"},
        {2, "data", "bytes"},
        {3, "exit_code", "optional int32"}}},  // extension: exit code on the final message
      {"sandbox.v1.Session",
       kSandbox,
       {{1, "id", "string"},
        {2, "sandbox_id", "string"},
        {3, "status", "sandbox.v1.SessionStatus"},
        {4, "shell", "string"},
        {5, "created_at", "google.protobuf.Timestamp"},
        {6, "closed_at", "google.protobuf.Timestamp"}}},
      {"sandbox.v1.CreateSessionRequest",
       kSandbox,
       {{1, "sandbox_id", "string"}, {2, "shell", "string"}, {3, "env", "map<string, string>"}}},
      {"sandbox.v1.GetSessionRequest", kSandbox, {{1, "session_id", "string"}}},
      {"sandbox.v1.DestroySessionRequest", kSandbox, {{1, "session_id", "string"}}},
      {"sandbox.v1.ListSessionsRequest", kSandbox, {{1, "sandbox_id", "string"}}},
      {"sandbox.v1.ListSessionsResponse",
       kSandbox,
       {{1, "sessions", "repeated sandbox.v1.Session"}}},
      {"sandbox.v1.SessionExecRequest",
       kSandbox,
       {{1, "session_id", "string"},
        {2, "command", "string"},
        {3, "timeout", "google.protobuf.Duration"}}},
      // sandbox.proto extensions
      {"sandbox.v1.DeltaQuota", kSandbox, {{1, "max_bytes", "int64"}, {2, "max_inodes", "int64"}}},
      {"sandbox.v1.EgressPolicy",
       kSandbox,
       {{1, "allow", "repeated string"}, {2, "any_public", "bool"}}},
      {"sandbox.v1.UpdateEgressRequest",
       kSandbox,
       {{1, "sandbox_id", "string"}, {2, "egress", "sandbox.v1.EgressPolicy"}}},
      {"sandbox.v1.UpdatePermissionsRequest",
       kSandbox,
       {{1, "sandbox_id", "string"}, {2, "permissions", "repeated sandbox.v1.PermissionRule"}}},
      {"sandbox.v1.ExplainPermissionRequest",
       kSandbox,
       {{1, "sandbox_id", "string"}, {2, "path", "string"}}},
      {"sandbox.v1.RuleMatch",
       kSandbox,
       {{1, "index", "int32"}, {2, "rule", "sandbox.v1.PermissionRule"}}},
      {"sandbox.v1.ExplainPermissionResponse",
       kSandbox,
       {{1, "path", "string"},
        {2, "permission", "sandbox.v1.Permission"},
        {3, "deciding_rule", "int32"},
        {4, "matching_rules", "repeated sandbox.v1.RuleMatch"},
        {5, "reason", "string"}}},
      {"sandbox.v1.FileChange",
       kSandbox,
       {{1, "path", "string"},
        {2, "kind", "sandbox.v1.ChangeKind"},
        {3, "size", "int64"},
        {4, "is_dir", "bool"}}},
      {"sandbox.v1.ListChangesRequest", kSandbox, {{1, "sandbox_id", "string"}}},
      {"sandbox.v1.ListChangesResponse",
       kSandbox,
       {{1, "changes", "repeated sandbox.v1.FileChange"},
        {2, "delta_bytes", "int64"},
        {3, "delta_inodes", "int64"}}},
      {"sandbox.v1.CommitChangesRequest", kSandbox, {{1, "sandbox_id", "string"}}},
      {"sandbox.v1.ChangeError", kSandbox, {{1, "path", "string"}, {2, "message", "string"}}},
      {"sandbox.v1.CommitChangesResponse",
       kSandbox,
       {{1, "applied", "repeated sandbox.v1.FileChange"},
        {2, "errors", "repeated sandbox.v1.ChangeError"}}},
      {"sandbox.v1.DiscardChangesRequest", kSandbox, {{1, "sandbox_id", "string"}}},
      {"sandbox.v1.DiscardChangesResponse", kSandbox, {{1, "discarded", "int32"}}},
      {"sandbox.v1.AuditEvent",
       kSandbox,
       {{1, "id", "int64"},
        {2, "time", "google.protobuf.Timestamp"},
        {3, "sandbox_id", "string"},
        {4, "kind", "string"},
        {5, "operation", "string"},
        {6, "path", "string"},
        {7, "rule", "string"},
        {8, "command", "string"},
        {9, "detail", "string"}}},
      {"sandbox.v1.GetAuditLogRequest",
       kSandbox,
       {{1, "sandbox_id", "string"},
        {2, "kind", "string"},
        {3, "path_prefix", "string"},
        {4, "since", "google.protobuf.Timestamp"},
        {5, "until", "google.protobuf.Timestamp"},
        {6, "page_size", "int32"},
        {7, "page_token", "string"}}},
      {"sandbox.v1.GetAuditLogResponse",
       kSandbox,
       {{1, "events", "repeated sandbox.v1.AuditEvent"}, {2, "next_page_token", "string"}}},
      {"sandbox.v1.Checkpoint",
       kSandbox,
       {{1, "name", "string"},
        {2, "created_at", "google.protobuf.Timestamp"},
        {3, "size", "int64"},
        {4, "files", "int64"},
        {5, "directories", "int64"},
        {6, "deletions", "int64"}}},
      {"sandbox.v1.CreateCheckpointRequest",
       kSandbox,
       {{1, "sandbox_id", "string"}, {2, "name", "string"}}},
      {"sandbox.v1.ListCheckpointsRequest", kSandbox, {{1, "sandbox_id", "string"}}},
      {"sandbox.v1.ListCheckpointsResponse",
       kSandbox,
       {{1, "checkpoints", "repeated sandbox.v1.Checkpoint"}}},
      {"sandbox.v1.RestoreCheckpointRequest",
       kSandbox,
       {{1, "sandbox_id", "string"}, {2, "name", "string"}}},
      {"sandbox.v1.DiffCheckpointRequest",
       kSandbox,
       {{1, "sandbox_id", "string"}, {2, "name", "string"}, {3, "against", "string"}}},
      {"sandbox.v1.DiffCheckpointResponse",
       kSandbox,
       {{1, "changes", "repeated sandbox.v1.FileChange"}}},
      {"sandbox.v1.DeleteCheckpointRequest",
       kSandbox,
       {{1, "sandbox_id", "string"}, {2, "name", "string"}}},
      {"sandbox.v1.Approval",
       kSandbox,
       {{1, "id", "string"},
        {2, "sandbox_id", "string"},
        {3, "path", "string"},
        {4, "operation", "string"},
        {5, "access", "sandbox.v1.ApprovalAccess"},
        {6, "pid", "int32"},
        {7, "command", "string"},
        {8, "waiting_since", "google.protobuf.Timestamp"},
        {9, "deadline", "google.protobuf.Timestamp"},
        {10, "state", "sandbox.v1.ApprovalState"},
        {11, "decision", "sandbox.v1.ApprovalDecision"},
        {12, "answered_by", "string"},
        {13, "remembered", "string"}}},
      {"sandbox.v1.ListApprovalsRequest", kSandbox, {{1, "sandbox_id", "string"}}},
      {"sandbox.v1.ListApprovalsResponse",
       kSandbox,
       {{1, "approvals", "repeated sandbox.v1.Approval"}}},
      {"sandbox.v1.AnswerApprovalRequest",
       kSandbox,
       {{1, "sandbox_id", "string"},
        {2, "approval_id", "string"},
        {3, "decision", "sandbox.v1.ApprovalDecision"},
        {4, "remember", "string"},
        {5, "priority", "optional int32"},
        {6, "answered_by", "string"}}},
      {"sandbox.v1.WatchApprovalsRequest", kSandbox, {{1, "sandbox_id", "string"}}},
      // codebase.proto
      {"sandbox.v1.Codebase",
       kCodebase,
       {{1, "id", "string"},
        {2, "name", "string"},
        {3, "owner_id", "string"},
        {4, "size", "int64"},
        {5, "file_count", "int32"},
        {6, "created_at", "google.protobuf.Timestamp"},
        {7, "updated_at", "google.protobuf.Timestamp"}}},
      {"sandbox.v1.CreateCodebaseRequest",
       kCodebase,
       {{1, "name", "string"}, {2, "owner_id", "string"}}},
      {"sandbox.v1.GetCodebaseRequest", kCodebase, {{1, "codebase_id", "string"}}},
      {"sandbox.v1.DeleteCodebaseRequest", kCodebase, {{1, "codebase_id", "string"}}},
      {"sandbox.v1.ListCodebasesRequest",
       kCodebase,
       {{1, "owner_id", "string"}, {2, "page_size", "int32"}, {3, "page_token", "string"}}},
      {"sandbox.v1.ListCodebasesResponse",
       kCodebase,
       {{1, "codebases", "repeated sandbox.v1.Codebase"}, {2, "next_page_token", "string"}}},
      {"sandbox.v1.UploadChunk",
       kCodebase,
       {{1, "metadata", "oneof(content) sandbox.v1.UploadChunk.Metadata"},
        {2, "data", "oneof(content) bytes"}}},
      {"sandbox.v1.UploadChunk.Metadata",
       kCodebase,
       {{1, "codebase_id", "string"},
        {2, "file_path", "string"},
        {3, "total_size", "int64"},
        {100, "mode", "uint32"}}},  // extension: permission bits
      {"sandbox.v1.UploadResult",
       kCodebase,
       {{1, "codebase_id", "string"},
        {2, "file_path", "string"},
        {3, "size", "int64"},
        {4, "checksum", "string"}}},
      {"sandbox.v1.DownloadFileRequest",
       kCodebase,
       {{1, "codebase_id", "string"}, {2, "file_path", "string"}}},
      {"sandbox.v1.FileChunk", kCodebase, {{1, "data", "bytes"}}},
      {"sandbox.v1.ListFilesRequest",
       kCodebase,
       {{1, "codebase_id", "string"}, {2, "path", "string"}, {3, "recursive", "bool"}}},
      {"sandbox.v1.ListFilesResponse", kCodebase, {{1, "files", "repeated sandbox.v1.FileInfo"}}},
      {"sandbox.v1.FileInfo",
       kCodebase,
       {{1, "path", "string"},
        {2, "name", "string"},
        {3, "is_dir", "bool"},
        {4, "size", "int64"},
        {5, "modified_at", "google.protobuf.Timestamp"}}},
      // extension
      {"sandbox.v1.DeleteFileRequest",
       kCodebase,
       {{1, "codebase_id", "string"}, {2, "file_path", "string"}}},
      // extension: archive uploads
      {"sandbox.v1.ArchiveChunk",
       kCodebase,
       {{1, "metadata", "oneof(content) sandbox.v1.ArchiveChunk.Metadata"},
        {2, "data", "oneof(content) bytes"}}},
      {"sandbox.v1.ArchiveChunk.Metadata",
       kCodebase,
       {{1, "codebase_id", "string"}, {2, "total_size", "int64"}}},
      {"sandbox.v1.UploadArchiveResult",
       kCodebase,
       {{1, "codebase_id", "string"},
        {2, "files", "int64"},
        {3, "directories", "int64"},
        {4, "symlinks", "int64"},
        {5, "bytes", "int64"},
        {6, "codebase", "sandbox.v1.Codebase"}}},
  };
  return *kMessages;
}

const std::vector<ServiceSpec>& Services() {
  static const auto* const kServices = new std::vector<ServiceSpec>{
      {"sandbox.v1.SandboxService",
       kSandbox,
       {
           {"CreateSandbox", "CreateSandboxRequest", "Sandbox", false, false},
           {"GetSandbox", "GetSandboxRequest", "Sandbox", false, false},
           {"ListSandboxes", "ListSandboxesRequest", "ListSandboxesResponse", false, false},
           {"StartSandbox", "StartSandboxRequest", "Sandbox", false, false},
           {"StopSandbox", "StopSandboxRequest", "Sandbox", false, false},
           {"DestroySandbox", "DestroySandboxRequest", "Empty", false, false},
           {"Exec", "ExecRequest", "ExecResult", false, false},
           {"ExecStream", "ExecRequest", "ExecOutput", false, true},
           {"CreateSession", "CreateSessionRequest", "Session", false, false},
           {"GetSession", "GetSessionRequest", "Session", false, false},
           {"ListSessions", "ListSessionsRequest", "ListSessionsResponse", false, false},
           {"DestroySession", "DestroySessionRequest", "Empty", false, false},
           {"SessionExec", "SessionExecRequest", "ExecResult", false, false},
           {"SessionExecStream", "SessionExecRequest", "ExecOutput", false, true},
           // extensions
           {"UpdatePermissions", "UpdatePermissionsRequest", "Sandbox", false, false},
           {"ExplainPermission", "ExplainPermissionRequest", "ExplainPermissionResponse", false,
            false},
           {"ListChanges", "ListChangesRequest", "ListChangesResponse", false, false},
           {"CommitChanges", "CommitChangesRequest", "CommitChangesResponse", false, false},
           {"DiscardChanges", "DiscardChangesRequest", "DiscardChangesResponse", false, false},
           {"GetAuditLog", "GetAuditLogRequest", "GetAuditLogResponse", false, false},
           {"UpdateEgress", "UpdateEgressRequest", "Sandbox", false, false},
           {"CreateCheckpoint", "CreateCheckpointRequest", "Checkpoint", false, false},
           {"ListCheckpoints", "ListCheckpointsRequest", "ListCheckpointsResponse", false, false},
           {"RestoreCheckpoint", "RestoreCheckpointRequest", "Checkpoint", false, false},
           {"DiffCheckpoint", "DiffCheckpointRequest", "DiffCheckpointResponse", false, false},
           {"DeleteCheckpoint", "DeleteCheckpointRequest", "Empty", false, false},
           {"ListApprovals", "ListApprovalsRequest", "ListApprovalsResponse", false, false},
           {"AnswerApproval", "AnswerApprovalRequest", "Approval", false, false},
           {"WatchApprovals", "WatchApprovalsRequest", "Approval", false, true},
       }},
      {"sandbox.v1.CodebaseService",
       kCodebase,
       {
           {"CreateCodebase", "CreateCodebaseRequest", "Codebase", false, false},
           {"GetCodebase", "GetCodebaseRequest", "Codebase", false, false},
           {"ListCodebases", "ListCodebasesRequest", "ListCodebasesResponse", false, false},
           {"DeleteCodebase", "DeleteCodebaseRequest", "Empty", false, false},
           {"UploadFiles", "UploadChunk", "UploadResult", true, false},
           {"DownloadFile", "DownloadFileRequest", "FileChunk", false, true},
           {"ListFiles", "ListFilesRequest", "ListFilesResponse", false, false},
           {"DeleteFile", "DeleteFileRequest", "Empty", false, false},  // extension
           {"UploadArchive", "ArchiveChunk", "UploadArchiveResult", true, false},  // extension
       }},
  };
  return *kServices;
}

const DescriptorPool& Pool() { return *DescriptorPool::generated_pool(); }

// The generated pool is filled lazily as files are first used; touching one message of each file
// guarantees they are all registered before we look them up by name.
const FileDescriptor* File(const char* name) {
  (void)sandbox::v1::Empty::descriptor();
  (void)sandbox::v1::Sandbox::descriptor();
  (void)sandbox::v1::Codebase::descriptor();
  return Pool().FindFileByName(name);
}

std::string ScalarOrNamedType(const FieldDescriptor* f) {
  switch (f->type()) {
    case FieldDescriptor::TYPE_MESSAGE:
    case FieldDescriptor::TYPE_GROUP:
      return f->message_type()->full_name();
    case FieldDescriptor::TYPE_ENUM:
      return f->enum_type()->full_name();
    default:
      return f->type_name();  // "string", "int32", "bytes"...
  }
}

// Renders a field in the notation of FieldSpec::type.
std::string DescribeField(const FieldDescriptor* f) {
  if (f->is_map()) {
    const Descriptor* entry = f->message_type();
    return "map<" + ScalarOrNamedType(entry->map_key()) + ", " +
           ScalarOrNamedType(entry->map_value()) + ">";
  }
  std::string prefix;
  if (f->is_repeated()) {
    prefix = "repeated ";
  } else if (f->has_optional_keyword()) {
    prefix = "optional ";
  } else if (f->real_containing_oneof() != nullptr) {
    prefix = "oneof(" + f->real_containing_oneof()->name() + ") ";
  }
  return prefix + ScalarOrNamedType(f);
}

// proto3 JSON (and grpc-gateway) derive lowerCamelCase names; REST clients rely on them.
std::string LowerCamel(const std::string& snake) {
  std::string out;
  bool upper = false;
  for (char c : snake) {
    if (c == '_') {
      upper = true;
    } else {
      out += upper ? static_cast<char>(c - 'a' + 'A') : c;
      upper = false;
    }
  }
  return out;
}

TEST(WireTest, FilesAndPackage) {
  for (const char* name : {kCommon, kSandbox, kCodebase}) {
    const FileDescriptor* file = File(name);
    ASSERT_NE(file, nullptr) << name;
    EXPECT_EQ(file->package(), "sandbox.v1") << name;
    EXPECT_EQ(file->syntax(), FileDescriptor::SYNTAX_PROTO3) << name;
  }
}

TEST(WireTest, EnumsMatchContract) {
  for (const EnumSpec& spec : Enums()) {
    SCOPED_TRACE(spec.full_name);
    (void)File(kCommon);
    const EnumDescriptor* e = Pool().FindEnumTypeByName(spec.full_name);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->file()->name(), spec.file);
    ASSERT_EQ(e->value_count(), static_cast<int>(spec.values.size()));
    for (size_t i = 0; i < spec.values.size(); ++i) {
      const auto& [name, number] = spec.values[i];
      const auto* v = e->FindValueByName(name);
      ASSERT_NE(v, nullptr) << name;
      EXPECT_EQ(v->number(), number) << name;
    }
  }
}

TEST(WireTest, MessagesMatchContract) {
  for (const MessageSpec& spec : Messages()) {
    SCOPED_TRACE(spec.full_name);
    (void)File(kCommon);
    const Descriptor* m = Pool().FindMessageTypeByName(spec.full_name);
    ASSERT_NE(m, nullptr);
    EXPECT_EQ(m->file()->name(), spec.file);
    EXPECT_EQ(m->field_count(), static_cast<int>(spec.fields.size()))
        << "a field was added or removed";
    for (const FieldSpec& fs : spec.fields) {
      const FieldDescriptor* f = m->FindFieldByNumber(fs.number);
      ASSERT_NE(f, nullptr) << "field number " << fs.number << " (" << fs.name << ")";
      EXPECT_EQ(f->name(), fs.name) << "field number " << fs.number;
      EXPECT_EQ(DescribeField(f), fs.type) << fs.name;
      EXPECT_EQ(f->json_name(), LowerCamel(fs.name)) << fs.name;
    }
  }
}

// Every message and enum defined in the three files is in the tables: an unlisted addition
// (even an additive one) must be recorded here on purpose.
TEST(WireTest, NothingUnlisted) {
  std::set<std::string> listed;
  for (const MessageSpec& spec : Messages()) listed.insert(spec.full_name);
  for (const EnumSpec& spec : Enums()) listed.insert(spec.full_name);
  for (const ServiceSpec& spec : Services()) listed.insert(spec.full_name);

  std::vector<const Descriptor*> pending;
  for (const char* name : {kCommon, kSandbox, kCodebase}) {
    const FileDescriptor* file = File(name);
    ASSERT_NE(file, nullptr);
    for (int i = 0; i < file->message_type_count(); ++i) pending.push_back(file->message_type(i));
    for (int i = 0; i < file->enum_type_count(); ++i) {
      EXPECT_TRUE(listed.count(file->enum_type(i)->full_name()))
          << "unlisted enum " << file->enum_type(i)->full_name();
    }
    for (int i = 0; i < file->service_count(); ++i) {
      EXPECT_TRUE(listed.count(file->service(i)->full_name()))
          << "unlisted service " << file->service(i)->full_name();
    }
  }
  while (!pending.empty()) {
    const Descriptor* m = pending.back();
    pending.pop_back();
    if (m->options().map_entry()) continue;  // synthesized for map<> fields
    EXPECT_TRUE(listed.count(m->full_name())) << "unlisted message " << m->full_name();
    for (int i = 0; i < m->nested_type_count(); ++i) pending.push_back(m->nested_type(i));
    for (int i = 0; i < m->enum_type_count(); ++i) {
      EXPECT_TRUE(listed.count(m->enum_type(i)->full_name()))
          << "unlisted enum " << m->enum_type(i)->full_name();
    }
  }
}

TEST(WireTest, ServicesMatchContract) {
  for (const ServiceSpec& spec : Services()) {
    SCOPED_TRACE(spec.full_name);
    (void)File(kCommon);
    const ServiceDescriptor* s = Pool().FindServiceByName(spec.full_name);
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(s->file()->name(), spec.file);
    EXPECT_EQ(s->method_count(), static_cast<int>(spec.methods.size()))
        << "a method was added or removed";
    for (const MethodSpec& ms : spec.methods) {
      SCOPED_TRACE(ms.name);
      const auto* method = s->FindMethodByName(ms.name);
      ASSERT_NE(method, nullptr);
      EXPECT_EQ(method->full_name(), std::string(spec.full_name) + "." + ms.name);
      EXPECT_EQ(method->input_type()->full_name(), std::string("sandbox.v1.") + ms.input);
      EXPECT_EQ(method->output_type()->full_name(), std::string("sandbox.v1.") + ms.output);
      EXPECT_EQ(method->client_streaming(), ms.client_streaming);
      EXPECT_EQ(method->server_streaming(), ms.server_streaming);
    }
  }
}

// The HTTP/2 paths are what the generated grpc++ code registers, not only what the descriptors
// say: a real in-process server built from the generated service classes answers a generic call
// to the literal contract path.
class FakeSandboxService final : public sandbox::v1::SandboxService::Service {
  grpc::Status GetSandbox(grpc::ServerContext* /*ctx*/, const sandbox::v1::GetSandboxRequest* req,
                          sandbox::v1::Sandbox* out) override {
    out->set_id(req->sandbox_id());
    return grpc::Status::OK;
  }
};

class FakeCodebaseService final : public sandbox::v1::CodebaseService::Service {
  grpc::Status GetCodebase(grpc::ServerContext* /*ctx*/, const sandbox::v1::GetCodebaseRequest* req,
                           sandbox::v1::Codebase* out) override {
    out->set_id(req->codebase_id());
    return grpc::Status::OK;
  }
};

// Sends `request` to `path` through a GenericStub (no generated client code involved).
grpc::Status CallPath(grpc::Channel* channel, const std::string& path,
                      const google::protobuf::Message& request,
                      google::protobuf::Message* response) {
  grpc::GenericStub stub(std::shared_ptr<grpc::Channel>(channel, [](grpc::Channel*) {}));
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  std::string bytes;
  if (!request.SerializeToString(&bytes)) return {grpc::StatusCode::INTERNAL, "serialize"};
  grpc::Slice slice(bytes);
  grpc::ByteBuffer buffer(&slice, 1);
  auto call = stub.PrepareUnaryCall(&ctx, path, buffer, &cq);
  call->StartCall();
  grpc::ByteBuffer reply;
  grpc::Status status;
  int tag = 1;
  call->Finish(&reply, &status, &tag);
  void* got = nullptr;
  bool ok = false;
  if (!cq.Next(&got, &ok) || got != &tag || !ok) return {grpc::StatusCode::INTERNAL, "cq"};
  cq.Shutdown();
  while (cq.Next(&got, &ok)) {
  }
  if (!status.ok()) return status;
  std::vector<grpc::Slice> slices;
  if (!reply.Dump(&slices).ok()) return {grpc::StatusCode::INTERNAL, "dump"};
  std::string out;
  for (const grpc::Slice& s : slices) {
    out.append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  if (!response->ParseFromString(out)) return {grpc::StatusCode::INTERNAL, "parse"};
  return status;
}

TEST(WireTest, GeneratedServersAnswerContractPaths) {
  EXPECT_STREQ(sandbox::v1::SandboxService::service_full_name(), "sandbox.v1.SandboxService");
  EXPECT_STREQ(sandbox::v1::CodebaseService::service_full_name(), "sandbox.v1.CodebaseService");

  FakeSandboxService sandboxes;
  FakeCodebaseService codebases;
  grpc::ServerBuilder builder;
  builder.RegisterService(&sandboxes);
  builder.RegisterService(&codebases);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  std::shared_ptr<grpc::Channel> channel = server->InProcessChannel(grpc::ChannelArguments());

  sandbox::v1::GetSandboxRequest get_sandbox;
  get_sandbox.set_sandbox_id("sb_0123456789abcdef");
  sandbox::v1::Sandbox sandbox_reply;
  grpc::Status st =
      CallPath(channel.get(), "/sandbox.v1.SandboxService/GetSandbox", get_sandbox, &sandbox_reply);
  EXPECT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(sandbox_reply.id(), "sb_0123456789abcdef");

  sandbox::v1::GetCodebaseRequest get_codebase;
  get_codebase.set_codebase_id("cb_0123456789abcdef");
  sandbox::v1::Codebase codebase_reply;
  st = CallPath(channel.get(), "/sandbox.v1.CodebaseService/GetCodebase", get_codebase,
                &codebase_reply);
  EXPECT_TRUE(st.ok()) << st.error_message();
  EXPECT_EQ(codebase_reply.id(), "cb_0123456789abcdef");

  // A registered but unimplemented method is UNIMPLEMENTED (what clients get from a runtime
  // that cannot serve an RPC); so is a path outside the contract.
  sandbox::v1::Sandbox ignored;
  st = CallPath(channel.get(), "/sandbox.v1.SandboxService/StartSandbox",
                sandbox::v1::StartSandboxRequest(), &ignored);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNIMPLEMENTED);
  st = CallPath(channel.get(), "/sandbox.v1.SandboxService/NoSuchMethod", get_sandbox, &ignored);
  EXPECT_EQ(st.error_code(), grpc::StatusCode::UNIMPLEMENTED);

  server->Shutdown();
}

// The exit-code extension must stay presence-tracked: "exited 0" differs from "not finished".
TEST(WireTest, ExecOutputExitCodeHasPresence) {
  sandbox::v1::ExecOutput out;
  EXPECT_FALSE(out.has_exit_code());
  out.set_exit_code(0);
  EXPECT_TRUE(out.has_exit_code());
  std::string bytes;
  ASSERT_TRUE(out.SerializeToString(&bytes));
  // Field 3, varint, value 0: presence survives the wire.
  EXPECT_EQ(bytes, std::string("\x18\x00", 2));
  sandbox::v1::ExecOutput parsed;
  ASSERT_TRUE(parsed.ParseFromString(bytes));
  EXPECT_TRUE(parsed.has_exit_code());
}

}  // namespace
