// The two gRPC callback services of WIRE.md. Thin adapters: each RPC runs the matching service
// function on the executor (see grpc_call.h) and maps its Error to a grpc::Status 1:1.
#pragma once

#include "sandbox/v1/codebase.grpc.pb.h"
#include "sandbox/v1/sandbox.grpc.pb.h"
#include "server/transport_deps.h"

namespace agentfense::server {

namespace v1 = ::sandbox::v1;

class CodebaseGrpcService final : public v1::CodebaseService::CallbackService {
 public:
  explicit CodebaseGrpcService(const TransportDeps& deps) : deps_(deps) {}

  grpc::ServerUnaryReactor* CreateCodebase(grpc::CallbackServerContext* ctx,
                                           const v1::CreateCodebaseRequest* req,
                                           v1::Codebase* resp) override;
  grpc::ServerUnaryReactor* GetCodebase(grpc::CallbackServerContext* ctx,
                                        const v1::GetCodebaseRequest* req,
                                        v1::Codebase* resp) override;
  grpc::ServerUnaryReactor* ListCodebases(grpc::CallbackServerContext* ctx,
                                          const v1::ListCodebasesRequest* req,
                                          v1::ListCodebasesResponse* resp) override;
  grpc::ServerUnaryReactor* DeleteCodebase(grpc::CallbackServerContext* ctx,
                                           const v1::DeleteCodebaseRequest* req,
                                           v1::Empty* resp) override;
  grpc::ServerReadReactor<v1::ArchiveChunk>* UploadArchive(grpc::CallbackServerContext* ctx,
                                                          v1::UploadArchiveResult* resp) override;
  grpc::ServerReadReactor<v1::UploadChunk>* UploadFiles(grpc::CallbackServerContext* ctx,
                                                        v1::UploadResult* resp) override;
  grpc::ServerWriteReactor<v1::FileChunk>* DownloadFile(
      grpc::CallbackServerContext* ctx, const v1::DownloadFileRequest* req) override;
  grpc::ServerUnaryReactor* ListFiles(grpc::CallbackServerContext* ctx,
                                      const v1::ListFilesRequest* req,
                                      v1::ListFilesResponse* resp) override;
  grpc::ServerUnaryReactor* DeleteFile(grpc::CallbackServerContext* ctx,
                                       const v1::DeleteFileRequest* req,
                                       v1::Empty* resp) override;

 private:
  const TransportDeps& deps_;
};

class SandboxGrpcService final : public v1::SandboxService::CallbackService {
 public:
  explicit SandboxGrpcService(const TransportDeps& deps) : deps_(deps) {}

  grpc::ServerUnaryReactor* CreateSandbox(grpc::CallbackServerContext* ctx,
                                          const v1::CreateSandboxRequest* req,
                                          v1::Sandbox* resp) override;
  grpc::ServerUnaryReactor* GetSandbox(grpc::CallbackServerContext* ctx,
                                       const v1::GetSandboxRequest* req,
                                       v1::Sandbox* resp) override;
  grpc::ServerUnaryReactor* ListSandboxes(grpc::CallbackServerContext* ctx,
                                          const v1::ListSandboxesRequest* req,
                                          v1::ListSandboxesResponse* resp) override;
  grpc::ServerUnaryReactor* StartSandbox(grpc::CallbackServerContext* ctx,
                                         const v1::StartSandboxRequest* req,
                                         v1::Sandbox* resp) override;
  grpc::ServerUnaryReactor* StopSandbox(grpc::CallbackServerContext* ctx,
                                        const v1::StopSandboxRequest* req,
                                        v1::Sandbox* resp) override;
  grpc::ServerUnaryReactor* DestroySandbox(grpc::CallbackServerContext* ctx,
                                           const v1::DestroySandboxRequest* req,
                                           v1::Empty* resp) override;
  grpc::ServerUnaryReactor* Exec(grpc::CallbackServerContext* ctx, const v1::ExecRequest* req,
                                 v1::ExecResult* resp) override;
  grpc::ServerWriteReactor<v1::ExecOutput>* ExecStream(grpc::CallbackServerContext* ctx,
                                                       const v1::ExecRequest* req) override;
  grpc::ServerUnaryReactor* CreateSession(grpc::CallbackServerContext* ctx,
                                          const v1::CreateSessionRequest* req,
                                          v1::Session* resp) override;
  grpc::ServerUnaryReactor* GetSession(grpc::CallbackServerContext* ctx,
                                       const v1::GetSessionRequest* req,
                                       v1::Session* resp) override;
  grpc::ServerUnaryReactor* ListSessions(grpc::CallbackServerContext* ctx,
                                         const v1::ListSessionsRequest* req,
                                         v1::ListSessionsResponse* resp) override;
  grpc::ServerUnaryReactor* DestroySession(grpc::CallbackServerContext* ctx,
                                           const v1::DestroySessionRequest* req,
                                           v1::Empty* resp) override;
  grpc::ServerUnaryReactor* SessionExec(grpc::CallbackServerContext* ctx,
                                        const v1::SessionExecRequest* req,
                                        v1::ExecResult* resp) override;
  grpc::ServerWriteReactor<v1::ExecOutput>* SessionExecStream(
      grpc::CallbackServerContext* ctx, const v1::SessionExecRequest* req) override;

  // Extensions.
  grpc::ServerUnaryReactor* UpdatePermissions(grpc::CallbackServerContext* ctx,
                                              const v1::UpdatePermissionsRequest* req,
                                              v1::Sandbox* resp) override;
  grpc::ServerUnaryReactor* UpdateEgress(grpc::CallbackServerContext* ctx,
                                         const v1::UpdateEgressRequest* req,
                                         v1::Sandbox* resp) override;
  grpc::ServerUnaryReactor* ExplainPermission(grpc::CallbackServerContext* ctx,
                                              const v1::ExplainPermissionRequest* req,
                                              v1::ExplainPermissionResponse* resp) override;
  grpc::ServerUnaryReactor* ListChanges(grpc::CallbackServerContext* ctx,
                                        const v1::ListChangesRequest* req,
                                        v1::ListChangesResponse* resp) override;
  grpc::ServerUnaryReactor* CommitChanges(grpc::CallbackServerContext* ctx,
                                          const v1::CommitChangesRequest* req,
                                          v1::CommitChangesResponse* resp) override;
  grpc::ServerUnaryReactor* DiscardChanges(grpc::CallbackServerContext* ctx,
                                           const v1::DiscardChangesRequest* req,
                                           v1::DiscardChangesResponse* resp) override;
  grpc::ServerUnaryReactor* GetAuditLog(grpc::CallbackServerContext* ctx,
                                        const v1::GetAuditLogRequest* req,
                                        v1::GetAuditLogResponse* resp) override;
  grpc::ServerUnaryReactor* CreateCheckpoint(grpc::CallbackServerContext* ctx,
                                             const v1::CreateCheckpointRequest* req,
                                             v1::Checkpoint* resp) override;
  grpc::ServerUnaryReactor* ListCheckpoints(grpc::CallbackServerContext* ctx,
                                            const v1::ListCheckpointsRequest* req,
                                            v1::ListCheckpointsResponse* resp) override;
  grpc::ServerUnaryReactor* RestoreCheckpoint(grpc::CallbackServerContext* ctx,
                                              const v1::RestoreCheckpointRequest* req,
                                              v1::Checkpoint* resp) override;
  grpc::ServerUnaryReactor* DiffCheckpoint(grpc::CallbackServerContext* ctx,
                                           const v1::DiffCheckpointRequest* req,
                                           v1::DiffCheckpointResponse* resp) override;
  grpc::ServerUnaryReactor* DeleteCheckpoint(grpc::CallbackServerContext* ctx,
                                             const v1::DeleteCheckpointRequest* req,
                                             v1::Empty* resp) override;
  grpc::ServerUnaryReactor* ListApprovals(grpc::CallbackServerContext* ctx,
                                          const v1::ListApprovalsRequest* req,
                                          v1::ListApprovalsResponse* resp) override;
  grpc::ServerUnaryReactor* AnswerApproval(grpc::CallbackServerContext* ctx,
                                           const v1::AnswerApprovalRequest* req,
                                           v1::Approval* resp) override;
  grpc::ServerWriteReactor<v1::Approval>* WatchApprovals(
      grpc::CallbackServerContext* ctx, const v1::WatchApprovalsRequest* req) override;

 private:
  const TransportDeps& deps_;
};

}  // namespace agentfense::server
