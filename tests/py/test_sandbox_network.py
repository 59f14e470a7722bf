"""Egress of sandboxes with network on (docs/NETWORK.md), end to end through a real server, for
the bwrap and the Docker runtime alike: the sandbox's own namespace, the allow-list enforced by
the supervisor's filter, DNS answered only for allowed names, no rebinding, no IPv6, no host
loopback, no host address, no metadata address, hot updates both ways, audit entries and metrics.

Every destination is on this machine: the lab namespace of netlab.py (198.51.100.0/24, declared
public for these servers) and a listener on the host. Commands inside use busybox (present in the
Docker test image and on the host that bwrap sandboxes see)."""
from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import urllib.request

import grpc
import pytest

import netlab
from server_fixture import cleanup_server, http_json, make_server

from sandbox.v1 import codebase_pb2, codebase_pb2_grpc, sandbox_pb2, sandbox_pb2_grpc

IMAGE = "agentfense-test/debian"  # bash (for /dev/udp and /dev/tcp) and busybox


# HTTP/1.0 over bash's /dev/tcp: the Docker image has no HTTP client that resolves names (its
# static busybox crashes doing so). Prints the body, or the response / the error and exits 22.
FETCH_SH = r"""#!/bin/bash
# fetch.sh HOST PORT PATH [HOST_HEADER]
exec 3<>"/dev/tcp/$1/$2" || exit 7
printf 'GET /%s HTTP/1.0\r\nHost: %s\r\n\r\n' "$3" "${4:-$1}" >&3
out=$(timeout 5 cat <&3)
case "${out%%$'\r'*}" in
  *" 200 "*) printf '%s\n' "${out#*$'\r\n\r\n'}" ;;
  *) echo "$out"; exit 22 ;;
esac
"""


def fetch(runtime: str, url: str, host: str = "") -> str:
    """A shell command printing the body of `url`; exits non-zero on errors, with the error
    (refused name, HTTP status) on stdout: curl under bwrap (the host's /usr), fetch.sh under
    Docker."""
    if runtime == "bwrap":
        h = f" -H 'Host: {host}'" if host else ""
        return f"curl -sS -f -m 5{h} '{url}' 2>&1"
    hostport, _, path = url.split("://", 1)[1].partition("/")
    if hostport.startswith("["):
        h, _, port = hostport[1:].partition("]")
    else:
        h, _, port = hostport.partition(":")
    return f"bash /workspace/fetch.sh '{h}' '{port.lstrip(':') or 80}' '{path}' '{host}' 2>&1"


REFUSED_NAME = ("Could not resolve host", "Temporary failure in name resolution",
                "Name or service not known", "No address associated with hostname")


def docker_ready() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "image", "inspect", IMAGE], capture_output=True).returncode == 0


def _require(ok: bool, why: str) -> None:
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(f"{why} (CI: a missing capability is a failure)")
        pytest.skip(why)


@pytest.fixture(scope="module")
def lab():
    _require(os.geteuid() == 0 and os.path.exists("/dev/fuse"), "needs root and /dev/fuse")
    with netlab.Lab() as lab:
        yield lab


@pytest.fixture(scope="module")
def host_service():
    """A service on every host address (like a control plane bound to 0.0.0.0)."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 0))
    s.listen(16)
    stop = threading.Event()

    def serve() -> None:
        s.settimeout(0.2)
        while not stop.is_set():
            try:
                c, _ = s.accept()
            except OSError:
                continue
            c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 10\r\n\r\nHOST-ADDR!")
            c.close()

    threading.Thread(target=serve, daemon=True).start()
    yield s.getsockname()[1]
    stop.set()
    s.close()


@pytest.fixture(scope="module")
def server(lab):
    s = make_server(extra_config=lab.server_config() + "runtime:\n  docker:\n"
                                                       "    enable_networking: true\n"
                                                       f"    default_image: {IMAGE}\n")
    s.start()
    yield s
    cleanup_server(s)


class Api:
    def __init__(self, server) -> None:
        self.server = server
        self.channel = server.channel()
        self.sb = sandbox_pb2_grpc.SandboxServiceStub(self.channel)
        self.cb = codebase_pb2_grpc.CodebaseServiceStub(self.channel)
        self.codebase = self.cb.CreateCodebase(
            codebase_pb2.CreateCodebaseRequest(name="net", owner_id="net")).id
        data = FETCH_SH.encode()

        def chunks():
            yield codebase_pb2.UploadChunk(metadata=codebase_pb2.UploadChunk.Metadata(
                codebase_id=self.codebase, file_path="fetch.sh", total_size=len(data)))
            yield codebase_pb2.UploadChunk(data=data)
        self.cb.UploadFiles(chunks())

    def create(self, runtime: str, allow=(), network=False, any_public=False, start=True):
        req = sandbox_pb2.CreateSandboxRequest(
            codebase_id=self.codebase, network=network,
            runtime=sandbox_pb2.RUNTIME_TYPE_DOCKER if runtime == "docker" else
            sandbox_pb2.RUNTIME_TYPE_BWRAP,
            permissions=[{"pattern": "**/*", "permission": "PERMISSION_WRITE"}],
            egress=sandbox_pb2.EgressPolicy(allow=list(allow), any_public=any_public))
        info = self.sb.CreateSandbox(req)
        if start:
            info = self.sb.StartSandbox(sandbox_pb2.StartSandboxRequest(sandbox_id=info.id),
                                        timeout=120)
        return info

    def sh(self, sid: str, command: str, timeout: float = 30):
        return self.sb.Exec(sandbox_pb2.ExecRequest(sandbox_id=sid, command=command),
                            timeout=timeout)

    def update(self, sid: str, allow=(), any_public=False):
        return self.sb.UpdateEgress(sandbox_pb2.UpdateEgressRequest(
            sandbox_id=sid, egress=sandbox_pb2.EgressPolicy(allow=list(allow),
                                                            any_public=any_public)))

    def destroy(self, sid: str) -> None:
        self.sb.DestroySandbox(sandbox_pb2.DestroySandboxRequest(sandbox_id=sid), timeout=120)

    def denials(self, sid: str):
        page = self.sb.GetAuditLog(sandbox_pb2.GetAuditLogRequest(sandbox_id=sid, kind="denied",
                                                                  page_size=1000))
        return list(page.events)


@pytest.fixture(scope="module")
def api(server):
    a = Api(server)
    yield a
    a.channel.close()


@pytest.fixture(scope="module", params=["bwrap", "docker"])
def box(request, api, host_service):
    """One sandbox per runtime allowed to reach allowed.test (any port) only."""
    if request.param == "docker":
        _require(docker_ready(), f"needs dockerd with {IMAGE} (scripts/ensure-services)")
    info = api.create(request.param, allow=["allowed.test"])
    assert info.network and list(info.egress.allow) == ["allowed.test"]
    assert not info.egress.any_public
    yield api, info.id, request.param
    api.destroy(info.id)


def test_allowed_name_is_reachable(box):
    api, sid, rt = box
    r = api.sh(sid, fetch(rt, "http://allowed.test/"))
    assert r.exit_code == 0, r.stdout
    assert r.stdout == "hello from 198.51.100.10 host=allowed.test path=/\n"
    # A CNAME to an allowed name is answered with the target's address.
    r = api.sh(sid, "busybox nslookup alias.test 2>&1")
    assert r.exit_code != 0 or netlab.ALLOWED_IP not in r.stdout  # alias.test itself is not allowed


def test_other_name_is_refused_with_a_clear_error(box):
    api, sid, rt = box
    r = api.sh(sid, fetch(rt, "http://other.test/"))
    assert r.exit_code != 0
    assert any(m in r.stdout for m in REFUSED_NAME) and "other.test" in r.stdout, r.stdout
    # Even with the address in hand the name is refused: the Host header names it.
    r = api.sh(sid, fetch(rt, f"http://{netlab.OTHER_IP}/", host="other.test"))
    assert r.exit_code != 0 and "403" in r.stdout and "hello" not in r.stdout, r.stdout


def test_raw_ip_of_an_allowed_name_is_refused(box):
    api, sid, rt = box
    api.sh(sid, fetch(rt, "http://allowed.test/"))  # its address is now known to the filter
    r = api.sh(sid, fetch(rt, f"http://{netlab.ALLOWED_IP}/"))
    assert r.exit_code != 0 and "403" in r.stdout and "hello" not in r.stdout, r.stdout


def test_host_loopback_and_host_addresses_are_unreachable(box, lab, host_service):
    api, sid, _ = box
    host_ips = sorted({a for a in _host_ipv4s() if not a.startswith("127.")})
    assert netlab.HOST_SIDE in host_ips
    targets = [f"127.0.0.1:{lab.loopback_port}", f"127.0.0.1:{api.server.http_port}",
               f"127.0.0.1:{api.server.grpc_port}"] + [f"{ip}:{host_service}" for ip in host_ips]
    for t in targets:
        r = api.sh(sid, fetch(box[2], f"http://{t}/"))
        assert "HOST-SECRET" not in r.stdout and "HOST-ADDR" not in r.stdout, t
        assert r.exit_code != 0, (t, r.stdout)


def test_metadata_address_is_unreachable(box):
    api, sid, _ = box
    for url in ("http://169.254.169.254/latest/meta-data/", "http://[fd00:ec2::254]/"):
        r = api.sh(sid, fetch(box[2], url))
        assert r.exit_code != 0, (url, r.stdout)
    assert "169.254.169.254" in json.dumps([e.path for e in box[0].denials(sid)])


def test_rebinding_names_are_refused(box):
    api, sid, rt = box
    api.update(sid, allow=["allowed.test", "rebind.test", "meta.test", "private.test"])
    try:
        for name in ("rebind.test", "meta.test", "private.test"):
            r = api.sh(sid, fetch(rt, f"http://{name}/"))
            assert r.exit_code != 0 and any(m in r.stdout for m in REFUSED_NAME), (name, r.stdout)
        events = [e for e in api.denials(sid) if e.operation == "resolve"]
        assert any(e.path == "rebind.test" and "rebinding" in e.rule for e in events)
    finally:
        api.update(sid, allow=["allowed.test"])


def test_ipv6_path_is_closed(box):
    api, sid, _ = box
    r = api.sh(sid, "cat /proc/net/if_inet6; "
                    "(exec 3<>/dev/tcp/2001:db8::10/80) 2>&1 && echo connected")
    assert "connected" not in r.stdout
    # At most ::1 (the sandbox's own loopback; Docker turns IPv6 off altogether) has an address.
    addrs = [line.split()[0] for line in r.stdout.splitlines()
             if len(line.split()) == 6 and len(line.split()[0]) == 32]
    assert set(addrs) <= {"00000000000000000000000000000001"}, r.stdout


def test_other_resolvers_and_udp_are_held(box):
    api, sid, _ = box
    # Another resolver: the question still reaches only the sandbox's own resolver.
    r = api.sh(sid, "busybox nslookup other.test 8.8.8.8 2>&1; echo rc=$?")
    assert netlab.OTHER_IP not in r.stdout
    r = api.sh(sid, "busybox nslookup allowed.test 1.1.1.1 2>&1")
    assert netlab.ALLOWED_IP in r.stdout
    # Plain UDP is refused without a udp: rule.
    r = api.sh(sid, udp_echo(netlab.ALLOWED_IP))
    assert "echo:ping" not in r.stdout


def udp_echo(ip: str) -> str:
    """bash: one datagram to the lab's UDP echo, the reply (if any) within 2 s."""
    return (f"bash -c 'exec 3<>/dev/udp/{ip}/7001; echo ping >&3;"
            f" timeout 2 head -c 9 <&3; echo'")


def test_hot_update_both_ways_and_audit(box):
    api, sid, rt = box
    assert api.sh(sid, fetch(rt, "http://other.test/")).exit_code != 0
    t0 = time.monotonic()
    info = api.update(sid, allow=["allowed.test", "other.test:80", f"udp:{netlab.ALLOWED_IP}:7001"])
    assert list(info.egress.allow) == ["allowed.test", "other.test:80",
                                       f"udp:{netlab.ALLOWED_IP}:7001"]
    assert time.monotonic() - t0 < 5
    r = api.sh(sid, fetch(rt, "http://other.test/"))
    assert r.exit_code == 0 and "198.51.100.11" in r.stdout, r.stdout
    r = api.sh(sid, udp_echo(netlab.ALLOWED_IP))
    assert "echo:ping" in r.stdout, r.stdout
    # An open connection the new policy no longer allows is closed by the update: nc holds one
    # (its stdin stays open) until the filter cuts it.
    api.update(sid, allow=["allowed.test", "other.test"])
    assert api.sh(sid, fetch(rt, "http://other.test:8080/")).exit_code == 0
    held = {}
    # bash holds a connection open on fd 3 and reads until the filter closes it.
    t = threading.Thread(target=lambda: held.update(r=api.sh(
        sid, f"bash -c 't0=$(date +%s); exec 3<>/dev/tcp/{netlab.OTHER_IP}/8080; cat <&3;"
             " echo held=$(( $(date +%s) - t0 ))'", timeout=90)))
    t.start()
    time.sleep(1.5)
    api.update(sid, allow=["allowed.test"])
    t.join(90)
    assert "held=" in held["r"].stdout and int(held["r"].stdout.split("held=")[1]) < 30
    r = api.sh(sid, fetch(rt, "http://other.test/"))
    assert r.exit_code != 0
    assert api.sh(sid, fetch(rt, "http://allowed.test/")).exit_code == 0
    assert api.sh(sid, fetch(rt, f"http://{netlab.ALLOWED_IP}/")).exit_code != 0
    events = api.denials(sid)
    connects = [e for e in events if e.operation == "connect"]
    resolves = [e for e in events if e.operation == "resolve"]
    assert any(e.path == "other.test" for e in resolves)
    assert any(e.path.startswith(netlab.ALLOWED_IP) for e in connects)
    # The process is named when the filter could find it.
    tool = "curl" if rt == "bwrap" else "fetch.sh"
    assert any(tool in e.command for e in connects), [(e.path, e.command) for e in connects]
    assert all(e.kind == "denied" and e.rule for e in events)


def test_metrics_count_allowed_connections(box):
    api, sid, rt = box
    api.sh(sid, fetch(rt, "http://allowed.test/"))
    with urllib.request.urlopen(api.server.http_base + "/metrics", timeout=10) as r:
        text = r.read().decode()
    line = next(x for x in text.splitlines()
                if x.startswith('agentfense_egress_connections{proto="tcp",decision="allowed"}'))
    assert int(line.split()[-1]) >= 1
    assert 'agentfense_egress_dns_queries{decision="refused"}' in text


def _host_ipv4s() -> list[str]:
    out = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True).stdout
    return [line.split()[3].split("/")[0] for line in out.splitlines()]


# ---- API semantics (bwrap only: they do not depend on the runtime) --------------------------

def test_rules_are_validated_and_normalized(api):
    with pytest.raises(grpc.RpcError) as e:
        api.create("bwrap", allow=["github.com", "10.0.0.1/8"], start=False)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "egress rule 1" in e.value.details() and "did you mean 10.0.0.0/8" in e.value.details()
    info = api.create("bwrap", allow=["GitHub.com.", "*.PyPI.org:443"], start=False)
    try:
        assert info.network and list(info.egress.allow) == ["github.com", "*.pypi.org:443"]
        # network alone: every public destination.
        plain = api.create("bwrap", network=True, start=False)
        assert plain.network and plain.egress.any_public and not plain.egress.allow
        api.destroy(plain.id)
        # REST twin of UpdateEgress, and its validation.
        status, body = http_json(api.server, "PUT", f"/v1/sandboxes/{info.id}/egress",
                                 {"egress": {"allow": ["bad rule"]}})
        assert status == 400 and "egress rule 0" in body["message"]
        status, body = http_json(api.server, "PUT", f"/v1/sandboxes/{info.id}/egress",
                                 {"egress": {"allow": ["example.org:22"], "anyPublic": True}})
        assert status == 200, body
        assert body["egress"] == {"allow": ["example.org:22"], "anyPublic": True}
    finally:
        api.destroy(info.id)


def test_no_network_sandbox_cannot_be_opened_live(api):
    info = api.create("bwrap")
    try:
        assert not info.network
        r = api.sh(info.id, "cat /proc/net/dev; cat /etc/resolv.conf 2>&1")
        interfaces = [line.split(":")[0].strip() for line in r.stdout.splitlines() if ":" in line
                      and "|" not in line and "resolv" not in line]
        assert interfaces == ["lo"], r.stdout
        with pytest.raises(grpc.RpcError) as e:
            api.update(info.id, allow=["allowed.test"])
        assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        # Stopped, it takes the policy for its next start.
        api.sb.StopSandbox(sandbox_pb2.StopSandboxRequest(sandbox_id=info.id), timeout=60)
        updated = api.update(info.id, allow=["allowed.test"])
        assert updated.network
        api.sb.StartSandbox(sandbox_pb2.StartSandboxRequest(sandbox_id=info.id), timeout=120)
        assert api.sh(info.id, fetch("bwrap", "http://allowed.test/")).exit_code == 0
    finally:
        api.destroy(info.id)


def test_any_public_mode_still_refuses_special_addresses(api, lab):
    info = api.create("bwrap", network=True)
    try:
        r = api.sh(info.id, fetch("bwrap", "http://other.test/") + " && " +
                   fetch("bwrap", f"http://{netlab.OTHER_IP}:80/"))
        assert r.exit_code == 0 and r.stdout.count("hello from 198.51.100.11") == 2, r.stdout
        r = api.sh(info.id, fetch("bwrap", f"http://{netlab.HOST_SIDE}:{api.server.http_port}/") +
                   "; " + fetch("bwrap", "http://rebind.test/"))
        assert "Could not resolve host: rebind.test" in r.stdout, r.stdout
        assert "403" in r.stdout  # the host's own address, refused by the filter
    finally:
        api.destroy(info.id)
