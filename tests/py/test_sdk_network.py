"""The SDK's network parameters (docs/SDK.md): `allow_net` / `network` on creation and
`update_egress` on a live sandbox, sync and async alike, against a real server and the private
lab network of netlab.py."""
from __future__ import annotations

import asyncio
import inspect
import os

import pytest

import agentfense as af
import netlab
from agentfense import AsyncSandbox, AsyncSandboxClient, Sandbox, SandboxClient
from server_fixture import cleanup_server, make_server


@pytest.fixture(scope="module")
def server():
    if os.geteuid() != 0 and not os.environ.get("CI"):
        pytest.skip("needs root (network namespaces)")
    with netlab.Lab() as lab:
        s = make_server(extra_config=lab.server_config())
        s.start()
        yield s
        cleanup_server(s)


def test_sync_and_async_share_the_network_parameters():
    for sync, asyn in ((SandboxClient.create_sandbox, AsyncSandboxClient.create_sandbox),
                       (SandboxClient.update_egress, AsyncSandboxClient.update_egress),
                       (Sandbox.from_local, AsyncSandbox.from_local),
                       (Sandbox.from_codebase, AsyncSandbox.from_codebase),
                       (Sandbox.update_egress, AsyncSandbox.update_egress)):
        assert list(inspect.signature(sync).parameters) == list(inspect.signature(asyn).parameters)
    assert "allow_net" in inspect.signature(Sandbox.from_local).parameters


def test_sync_allow_net_and_live_update(server, tmp_path):
    (tmp_path / "f.txt").write_text("x")
    with Sandbox.from_local(tmp_path, endpoint=server.grpc_addr,
                            allow_net=["allowed.test"]) as sb:
        assert sb.info.network and sb.info.egress == af.EgressPolicy(["allowed.test"], False)
        r = sb.run("curl -sS -f -m 5 http://allowed.test/")
        assert "hello from 198.51.100.10" in r.stdout
        assert sb.run("curl -sS -f -m 5 http://other.test/").exit_code != 0
        info = sb.update_egress(["allowed.test", "other.test"])
        assert info.egress.allow == ["allowed.test", "other.test"]
        assert "198.51.100.11" in sb.run("curl -sS -f -m 5 http://other.test/").stdout
        with pytest.raises(af.InvalidConfigurationError):
            sb.update_egress("allowed.test")  # one string, not a list
        with pytest.raises(af.SandboxError) as e:
            sb.update_egress(["nope:0"])
        assert "bad port" in str(e.value)


def test_async_allow_net_and_live_update(server, tmp_path):
    (tmp_path / "f.txt").write_text("x")

    async def main():
        async with await AsyncSandbox.from_local(tmp_path, endpoint=server.grpc_addr,
                                                 network=True, allow_net=["10.99.0.0/16:80"]) as sb:
            # network plus rules: every public destination plus the listed private range.
            assert sb.info.egress.any_public and sb.info.egress.allow == ["10.99.0.0/16:80"]
            r = await sb.run("curl -sS -f -m 5 http://other.test/")
            assert "198.51.100.11" in r.stdout
            info = await sb.update_egress(["allowed.test"])
            assert not info.egress.any_public
            r = await sb.run("curl -sS -f -m 5 http://other.test/")
            assert r.exit_code != 0

    asyncio.run(main())
