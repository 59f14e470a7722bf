"""Enum string values and dataclass behaviour the reference's users rely on."""
from datetime import timedelta

import pytest

from agentfense import (CommandExecutionError, ExecResult, InvalidConfigurationError, OutputChunk,
                        OutputType, PatternType, Permission, PermissionRule, ResourceLimits,
                        RuntimeType, SandboxStatus, SessionStatus)
from agentfense import types as t


def test_enum_values_match_the_reference():
    assert Permission.READ == "read" and Permission("none") is Permission.NONE
    # The reference's four, then our extension (PERMISSION_ASK = 5).
    assert [p.value for p in Permission] == ["none", "view", "read", "write", "ask"]
    assert [p.value for p in PatternType] == ["glob", "directory", "file"]
    assert RuntimeType.DOCKER == "docker" and RuntimeType.BWRAP == "bwrap"
    assert [s.value for s in SandboxStatus] == ["pending", "running", "stopped", "error"]
    assert [s.value for s in SessionStatus] == ["active", "closed"]
    assert str(Permission.WRITE) == "write"


def test_types_module_exports_reference_names():
    assert t.Sandbox is t.SandboxInfo
    info = t.Sandbox(id="sb_1", codebase_id="cb_1", status=SandboxStatus.RUNNING, labels={"a": "b"})
    assert info.permissions == [] and info.labels == {"a": "b"}


def test_permission_rule_defaults_and_dicts():
    r = PermissionRule(pattern="/docs/**")
    assert (r.permission, r.type, r.priority) == (Permission.READ, PatternType.GLOB, 0)
    d = PermissionRule("/src/**", Permission.WRITE, PatternType.DIRECTORY, 5).to_dict()
    assert d == {"pattern": "/src/**", "permission": "write", "type": "directory", "priority": 5}
    assert PermissionRule.from_dict(d) == PermissionRule("/src/**", Permission.WRITE, PatternType.DIRECTORY, 5)


@pytest.mark.parametrize("bad", [
    {"pattern": "x", "permission": "admin"},
    {"pattern": "", "permission": "read"},
    {"permission": "read"},
    {"pattern": "x", "type": "regex"},
    {"pattern": "x", "priority": "high"},
    {"pattern": "x", "perm": "read"},
])
def test_bad_rules_are_clear_errors(bad):
    with pytest.raises(InvalidConfigurationError) as e:
        PermissionRule.from_dict(bad)
    assert isinstance(e.value, ValueError)
    assert "permission rule" in str(e.value)


def test_exec_result_properties():
    assert ExecResult("out", "err", 0).output == "out\nerr"
    assert ExecResult("", "err", 1).output == "err"
    assert ExecResult("", "", 0).success and not ExecResult("", "", 2).success
    assert ExecResult("", "", 0).duration is None and ExecResult("", "", 0).command is None
    r = ExecResult("o", "boom", 127, timedelta(seconds=1), "nonexistent_cmd")
    with pytest.raises(CommandExecutionError) as e:
        r.raise_on_error()
    assert (e.value.exit_code, e.value.command, e.value.stderr, e.value.stdout) == (127, "nonexistent_cmd", "boom", "o")
    ok = ExecResult("x", "", 0)
    assert ok.raise_on_error() is ok
    with pytest.raises(CommandExecutionError) as e:
        ExecResult("", "e", 1).raise_on_error()
    assert e.value.command == "<unknown>"


def test_resource_limits_and_chunks():
    r = ResourceLimits(memory_bytes=512 * 1024 * 1024, pids_limit=100)
    assert r.cpu_quota is None and r.pids_limit == 100
    ch = OutputChunk(OutputType.STDERR, "é".encode())
    assert ch.is_stderr and not ch.is_stdout and ch.text == "é"
