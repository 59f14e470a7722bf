"""The gRPC code -> exception table: every code maps, subjects pick the specific class, every
exception carries the integer code. (The same mapping is exercised against a real server in
tests/py/test_sdk_errors.py.)"""
import builtins

import grpc
import pytest

import agentfense as af
from agentfense.exceptions import ERROR_TABLE, SUBJECTS, from_grpc_error


class Status(grpc.RpcError):
    """A grpc.RpcError with a status, as grpc raises them (the real ones are not constructible)."""

    def __init__(self, code, details="boom"):
        self._code, self._details = code, details

    def code(self):
        return self._code

    def details(self):
        return self._details


def test_every_status_code_is_in_the_table():
    for code in grpc.StatusCode:
        if code is grpc.StatusCode.OK:
            continue
        assert (code, None) in ERROR_TABLE, code


@pytest.mark.parametrize("code,subject,cls", [
    (grpc.StatusCode.NOT_FOUND, "sandbox", af.SandboxNotFoundError),
    (grpc.StatusCode.NOT_FOUND, "codebase", af.CodebaseNotFoundError),
    (grpc.StatusCode.NOT_FOUND, "file", af.FileNotFoundError),
    (grpc.StatusCode.NOT_FOUND, "session", af.SessionNotFoundError),
    (grpc.StatusCode.FAILED_PRECONDITION, "exec", af.SandboxNotRunningError),
    (grpc.StatusCode.FAILED_PRECONDITION, "session_exec", af.SessionClosedError),
    (grpc.StatusCode.DEADLINE_EXCEEDED, "exec", af.CommandTimeoutError),
    (grpc.StatusCode.PERMISSION_DENIED, None, af.PermissionDeniedError),
    (grpc.StatusCode.UNAUTHENTICATED, None, af.AuthenticationError),
    (grpc.StatusCode.RESOURCE_EXHAUSTED, None, af.ResourceLimitExceededError),
    (grpc.StatusCode.INVALID_ARGUMENT, "sandbox", af.InvalidConfigurationError),
    (grpc.StatusCode.UNAVAILABLE, None, af.ConnectionError),
    (grpc.StatusCode.UNIMPLEMENTED, "sandbox", af.NotSupportedError),
])
def test_specific_classes(code, subject, cls):
    e = from_grpc_error(Status(code), subject, "x1", "method")
    assert type(e) is cls
    assert isinstance(e, af.SandboxError)
    assert e.grpc_code == code.value[0]
    assert "method" in str(e)


def test_builtin_compat():
    assert isinstance(af.FileNotFoundError("p"), builtins.FileNotFoundError)
    assert isinstance(af.ConnectionError("x"), builtins.ConnectionError)
    assert isinstance(af.CommandTimeoutError("c", 1), builtins.TimeoutError)
    assert isinstance(af.InvalidConfigurationError("x"), ValueError)


def test_unimplemented_message_is_clear():
    e = from_grpc_error(Status(grpc.StatusCode.UNIMPLEMENTED, ""), "sandbox", "sb", "commit_changes")
    assert "does not implement" in str(e) and "commit_changes" in str(e)


def test_subjects_fall_back_per_code():
    for s in SUBJECTS:
        e = from_grpc_error(Status(grpc.StatusCode.INTERNAL), s, "x")
        assert type(e) is af.SandboxError and e.grpc_code == 13
