"""Named permission presets (SPEC §3.6) and helpers to look up, extend and register them.

Presets are plain rule lists resolved on the client; the server only ever sees rules. Every getter
returns fresh copies so callers can modify what they get without touching the registry.
"""
from __future__ import annotations

import copy
import threading
from typing import Dict, Iterable, List, Optional

from .exceptions import InvalidConfigurationError
from .types import Permission, PermissionLike, PermissionRule

R, W, V, N = Permission.READ, Permission.WRITE, Permission.VIEW, Permission.NONE

_SECRETS = ["**/.env*", "**/secrets/**", "**/*.key", "**/*.pem", "**/credentials*"]

_BUILTIN: Dict[str, List[PermissionRule]] = {
    "agent-safe": [PermissionRule("**/*", R, priority=0),
                   PermissionRule("/output/**", W, priority=10),
                   PermissionRule("/tmp/**", W, priority=10),
                   *[PermissionRule(p, N, priority=100) for p in _SECRETS],
                   PermissionRule("**/.git/**", N, priority=50)],
    "read-only": [PermissionRule("**/*", R)],
    "full-access": [PermissionRule("**/*", W)],
    "development": [PermissionRule("**/*", W),
                    *[PermissionRule(p, N, priority=100) for p in _SECRETS]],
    "view-only": [PermissionRule("**/*", V)],
}
_DESCRIPTIONS: Dict[str, str] = {
    "agent-safe": "Read all, write to /output & /tmp, hide secrets",
    "read-only": "Read all files, no write access",
    "full-access": "Full read/write access",
    "development": "Full access except secrets",
    "view-only": "List names everywhere, read nothing",
}
_lock = threading.Lock()
_registry: Dict[str, List[PermissionRule]] = copy.deepcopy(_BUILTIN)


def to_rules(rules: Iterable[PermissionLike]) -> List[PermissionRule]:
    """Normalizes PermissionRule objects and dicts into fresh PermissionRule objects."""
    if isinstance(rules, (str, bytes)) or isinstance(rules, dict):
        raise InvalidConfigurationError("permissions must be a list of rules (dicts or PermissionRule)")
    out: List[PermissionRule] = []
    for r in rules:
        if isinstance(r, PermissionRule):
            out.append(PermissionRule.from_dict(r.to_dict()))
        elif isinstance(r, dict):
            out.append(PermissionRule.from_dict(r))
        else:
            raise InvalidConfigurationError(f"not a permission rule: {r!r}")
    return out


def list_presets() -> List[str]:
    """Names of every preset, built-in and registered."""
    with _lock:
        return sorted(_registry)


def describe_preset(name: str) -> str:
    get_preset(name)
    return _DESCRIPTIONS.get(name, "")


def get_preset(name: str) -> List[PermissionRule]:
    """The rules of a preset (copies); InvalidConfigurationError (a ValueError) for an unknown name."""
    with _lock:
        rules = _registry.get(name)
        if rules is None:
            raise InvalidConfigurationError(
                f"unknown preset {name!r}; available: {', '.join(sorted(_registry))}")
        return copy.deepcopy(rules)


def get_preset_dicts(name: str) -> List[dict]:
    return [r.to_dict() for r in get_preset(name)]


def extend_preset(base: str, additions: Optional[Iterable[PermissionLike]] = None,
                  overrides: Optional[Iterable[PermissionLike]] = None) -> List[PermissionRule]:
    """A preset's rules with `overrides` replacing rules of the same pattern and `additions` appended."""
    rules = get_preset(base)
    for o in to_rules(overrides or []):
        replaced = False
        for i, r in enumerate(rules):
            if r.pattern == o.pattern:
                rules[i] = o
                replaced = True
        if not replaced:
            rules.append(o)
    rules.extend(to_rules(additions or []))
    return rules


def register_preset(name: str, rules: Iterable[PermissionLike], description: str = "",
                    overwrite: bool = False) -> None:
    """Adds a named preset for this process. Refuses to replace an existing one unless `overwrite`."""
    if not isinstance(name, str) or not name:
        raise InvalidConfigurationError("preset name must be a non-empty string")
    normalized = to_rules(rules)
    if not normalized:
        raise InvalidConfigurationError(f"preset {name!r} has no rules")
    with _lock:
        if name in _registry and not overwrite:
            raise InvalidConfigurationError(f"preset {name!r} already exists (pass overwrite=True)")
        _registry[name] = normalized
        if description:
            _DESCRIPTIONS[name] = description
