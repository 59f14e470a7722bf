"""Wire identity of the generated Python stubs (sandbox.v1, see /work/shared/spec/WIRE.md).

The C++ test proto/wire_test.cc checks every descriptor; this one checks what Python clients
actually get: the import layout (PYTHONPATH=<build>/python), the HTTP/2 method paths and call
kinds the generated stubs use, and a sample of field numbers.
"""

from sandbox.v1 import codebase_pb2, codebase_pb2_grpc, common_pb2, sandbox_pb2, sandbox_pb2_grpc


class _RecordingChannel:
    """Stands in for grpc.Channel: records the path and kind of every multi-callable created."""

    def __init__(self):
        self.calls = {}

    def _record(self, kind):
        def make(path, request_serializer=None, response_deserializer=None, **_):
            self.calls[path] = (kind, request_serializer, response_deserializer)
            return object()

        return make

    def __getattr__(self, name):
        if name in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
            return self._record(name)
        raise AttributeError(name)


SANDBOX_METHODS = {
    "CreateSandbox": "unary_unary",
    "GetSandbox": "unary_unary",
    "ListSandboxes": "unary_unary",
    "StartSandbox": "unary_unary",
    "StopSandbox": "unary_unary",
    "DestroySandbox": "unary_unary",
    "Exec": "unary_unary",
    "ExecStream": "unary_stream",
    "CreateSession": "unary_unary",
    "GetSession": "unary_unary",
    "ListSessions": "unary_unary",
    "DestroySession": "unary_unary",
    "SessionExec": "unary_unary",
    "SessionExecStream": "unary_stream",
    # AgentFense extensions (additive)
    "UpdatePermissions": "unary_unary",
    "ExplainPermission": "unary_unary",
    "ListChanges": "unary_unary",
    "CommitChanges": "unary_unary",
    "DiscardChanges": "unary_unary",
    "GetAuditLog": "unary_unary",
    "UpdateEgress": "unary_unary",
    "CreateCheckpoint": "unary_unary",
    "ListCheckpoints": "unary_unary",
    "RestoreCheckpoint": "unary_unary",
    "DiffCheckpoint": "unary_unary",
    "DeleteCheckpoint": "unary_unary",
    "ListApprovals": "unary_unary",
    "AnswerApproval": "unary_unary",
    "WatchApprovals": "unary_stream",
}

CODEBASE_METHODS = {
    "CreateCodebase": "unary_unary",
    "GetCodebase": "unary_unary",
    "ListCodebases": "unary_unary",
    "DeleteCodebase": "unary_unary",
    "UploadFiles": "stream_unary",
    "DownloadFile": "unary_stream",
    "ListFiles": "unary_unary",
    "DeleteFile": "unary_unary",  # extension
    "UploadArchive": "stream_unary",  # extension
}


def _paths(stub_class):
    channel = _RecordingChannel()
    stub_class(channel)
    return channel.calls


def test_sandbox_service_paths_and_kinds():
    calls = _paths(sandbox_pb2_grpc.SandboxServiceStub)
    expected = {f"/sandbox.v1.SandboxService/{m}": k for m, k in SANDBOX_METHODS.items()}
    assert {p: c[0] for p, c in calls.items()} == expected


def test_codebase_service_paths_and_kinds():
    calls = _paths(codebase_pb2_grpc.CodebaseServiceStub)
    expected = {f"/sandbox.v1.CodebaseService/{m}": k for m, k in CODEBASE_METHODS.items()}
    assert {p: c[0] for p, c in calls.items()} == expected


def test_method_message_types():
    calls = _paths(sandbox_pb2_grpc.SandboxServiceStub)
    kind, serialize, deserialize = calls["/sandbox.v1.SandboxService/DestroySandbox"]
    assert serialize == sandbox_pb2.DestroySandboxRequest.SerializeToString
    assert deserialize == common_pb2.Empty.FromString
    kind, serialize, deserialize = calls["/sandbox.v1.SandboxService/SessionExecStream"]
    assert serialize == sandbox_pb2.SessionExecRequest.SerializeToString
    assert deserialize == sandbox_pb2.ExecOutput.FromString


def _numbers(message):
    return {f.name: f.number for f in message.DESCRIPTOR.fields}


def test_field_numbers_sample():
    assert _numbers(common_pb2.PermissionRule) == {
        "pattern": 1, "type": 2, "permission": 3, "priority": 4}
    assert _numbers(sandbox_pb2.CreateSandboxRequest) == {
        "codebase_id": 1, "permissions": 2, "expires_in": 3, "labels": 4, "runtime": 5,
        "image": 6, "resources": 7,
        # extensions
        "sync_mode": 100, "network": 101, "delta_quota": 102, "env": 103, "egress": 110,
        "ask_timeout": 140}
    assert _numbers(sandbox_pb2.EgressPolicy) == {"allow": 1, "any_public": 2}
    assert _numbers(sandbox_pb2.UpdateEgressRequest) == {"sandbox_id": 1, "egress": 2}
    assert _numbers(sandbox_pb2.ExecResult) == {
        "stdout": 1, "stderr": 2, "exit_code": 3, "duration": 4}
    assert _numbers(codebase_pb2.UploadChunk) == {"metadata": 1, "data": 2}
    assert _numbers(codebase_pb2.UploadChunk.Metadata) == {
        "codebase_id": 1, "file_path": 2, "total_size": 3, "mode": 100}  # mode: extension
    assert _numbers(codebase_pb2.FileInfo) == {
        "path": 1, "name": 2, "is_dir": 3, "size": 4, "modified_at": 5}


def test_enum_values_sample():
    assert common_pb2.Permission.Value("PERMISSION_WRITE") == 4
    assert common_pb2.PatternType.Value("PATTERN_TYPE_FILE") == 3
    assert common_pb2.SandboxStatus.Value("SANDBOX_STATUS_ERROR") == 4
    assert sandbox_pb2.RuntimeType.Value("RUNTIME_TYPE_DOCKER") == 2
    assert sandbox_pb2.ExecOutput.OutputType.Value("OUTPUT_TYPE_STDERR") == 2


def test_upload_chunk_oneof_and_exit_code_extension():
    chunk = codebase_pb2.UploadChunk(data=b"x")
    assert chunk.WhichOneof("content") == "data"
    chunk.metadata.file_path = "src/a.py"
    assert chunk.WhichOneof("content") == "metadata"

    out = sandbox_pb2.ExecOutput(type=sandbox_pb2.ExecOutput.OUTPUT_TYPE_STDOUT, data=b"hi")
    assert not out.HasField("exit_code")
    final = sandbox_pb2.ExecOutput(exit_code=0)
    assert final.HasField("exit_code")
    assert sandbox_pb2.ExecOutput.FromString(final.SerializeToString()).HasField("exit_code")


def test_json_names_are_lower_camel():
    from google.protobuf import json_format

    sb = sandbox_pb2.Sandbox(id="sb_0123456789abcdef", codebase_id="cb_0123456789abcdef")
    doc = json_format.MessageToDict(sb, including_default_value_fields=True)
    assert doc["codebaseId"] == "cb_0123456789abcdef"
    assert doc["status"] == "SANDBOX_STATUS_UNSPECIFIED"
