"""Presets (SPEC §3.6) and the helpers around them."""
import pytest

from agentfense import (InvalidConfigurationError, Permission, PermissionRule, extend_preset, get_preset,
                        get_preset_dicts, list_presets, register_preset)


def rules_of(name):
    return [(r.pattern, r.permission.value, r.priority) for r in get_preset(name)]


def test_builtin_presets_match_the_spec():
    assert {"agent-safe", "read-only", "full-access", "development", "view-only"} <= set(list_presets())
    safe = rules_of("agent-safe")
    assert ("**/*", "read", 0) in safe and ("/output/**", "write", 10) in safe and ("/tmp/**", "write", 10) in safe
    for p in ["**/.env*", "**/secrets/**", "**/*.key", "**/*.pem", "**/credentials*"]:
        assert (p, "none", 100) in safe
    assert ("**/.git/**", "none", 50) in safe
    assert rules_of("read-only") == [("**/*", "read", 0)]
    assert rules_of("full-access") == [("**/*", "write", 0)]
    assert rules_of("view-only") == [("**/*", "view", 0)]
    dev = rules_of("development")
    assert ("**/*", "write", 0) in dev and ("**/*.pem", "none", 100) in dev


def test_get_preset_returns_copies():
    a = get_preset("read-only")
    a[0].permission = Permission.WRITE
    assert get_preset("read-only")[0].permission == Permission.READ
    assert get_preset_dicts("read-only") == [{"pattern": "**/*", "permission": "read", "type": "glob", "priority": 0}]


def test_unknown_preset_names_the_available_ones():
    with pytest.raises(InvalidConfigurationError) as e:
        get_preset("agent-unsafe")
    assert "agent-unsafe" in str(e.value) and "agent-safe" in str(e.value)
    assert isinstance(e.value, ValueError)


def test_extend_preset_additions_and_overrides():
    rules = extend_preset("agent-safe", additions=[{"pattern": "/custom/**", "permission": "write"}],
                          overrides=[{"pattern": "/tmp/**", "permission": "read", "priority": 10}])
    assert rules[-1] == PermissionRule("/custom/**", Permission.WRITE)
    tmp = [r for r in rules if r.pattern == "/tmp/**"]
    assert len(tmp) == 1 and tmp[0].permission == Permission.READ
    assert len(rules) == len(get_preset("agent-safe")) + 1


def test_register_preset():
    register_preset("docs-writer-test", [{"pattern": "**/*", "permission": "read"},
                                         PermissionRule("/docs/**", Permission.WRITE, priority=5)])
    assert "docs-writer-test" in list_presets()
    assert get_preset("docs-writer-test")[1].priority == 5
    with pytest.raises(InvalidConfigurationError):
        register_preset("docs-writer-test", [{"pattern": "**/*"}])
    register_preset("docs-writer-test", [{"pattern": "**/*", "permission": "view"}], overwrite=True)
    assert get_preset("docs-writer-test")[0].permission == Permission.VIEW
    with pytest.raises(InvalidConfigurationError):
        register_preset("empty-test", [])
    with pytest.raises(InvalidConfigurationError):
        register_preset("bad-test", [{"pattern": "x", "permission": "root"}])
    assert "bad-test" not in list_presets()
