"""Helpers of the rootless suites (fixtures are in conftest.py)."""
from __future__ import annotations

import subprocess

from server_fixture import user_env

USER = "afrootless"
SECRET = "ROOTLESS-SECRET-9c1e"


def as_user(user, args, env=None, **kw) -> subprocess.CompletedProcess:
    """Runs `args` as the ordinary user, in their login-like environment."""
    e = user_env(user["name"])
    if env:
        e.update(env)
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    kw.setdefault("timeout", 120)
    return subprocess.run(args, env=e, user=user["uid"], group=user["gid"], extra_groups=[], **kw)


def popen_as(user, args, env=None, **kw) -> subprocess.Popen:
    e = user_env(user["name"])
    if env:
        e.update(env)
    return subprocess.Popen(args, env=e, user=user["uid"], group=user["gid"], extra_groups=[],
                            **kw)
