"""A private test network on this machine for the egress tests: never any address outside it.

A network namespace `ns` joined to the host by a veth pair holds the test destinations, all in
198.51.100.0/24 (TEST-NET-2, routed nowhere): HTTP servers on ports 80 and 8080 (one per "site":
the reply names the address it was reached at), a banner on 7000 (sent on accept, then close), a
UDP echo on 7001, a byte source on 7002 (throughput), and a DNS server on 198.51.100.53 that
knows the test names. Sandboxes reach these only through
their egress filter, with the lab range declared public (network.public_cidrs) and the lab's DNS
as the upstream resolver (network.dns_servers), so no real DNS is ever asked.

Names (all answered by the lab DNS only):
  allowed.test    A 198.51.100.10     other.test     A 198.51.100.11
  alias.test      CNAME allowed.test  rebind.test    A 127.0.0.1
  meta.test       A 169.254.169.254   private.test   A 10.99.0.1
  v6only.test     AAAA 2001:db8::10
"""
from __future__ import annotations

import os
import socket
import struct
import subprocess
import threading
import time

SUBNET = "198.51.100.0/24"
HOST_SIDE = "198.51.100.1"
ALLOWED_IP = "198.51.100.10"
OTHER_IP = "198.51.100.11"
DNS_IP = "198.51.100.53"
ZONE = {
    "allowed.test": ("A", ALLOWED_IP),
    "other.test": ("A", OTHER_IP),
    "alias.test": ("CNAME", "allowed.test"),
    "rebind.test": ("A", "127.0.0.1"),
    "meta.test": ("A", "169.254.169.254"),
    "private.test": ("A", "10.99.0.1"),
    "v6only.test": ("AAAA", "2001:db8::10"),
}

_SERVERS = r'''
import socket, struct, sys, threading, http.server, socketserver, json
ZONE = json.loads(sys.argv[1])

class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = ("hello from %s host=%s path=%s\n" % (self.connection.getsockname()[0],
                self.headers.get("Host"), self.path)).encode()
        if self.path.startswith("/big/"):
            body = b"x" * int(self.path[5:])
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

class S(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True

def http_server(port):
    S(("0.0.0.0", port), H).serve_forever()

def banner():
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 7000)); s.listen(64)
    while True:
        c, _ = s.accept()
        try:
            c.sendall(b"BANNER %s\n" % c.getsockname()[0].encode())
        finally:
            c.close()

def source():
    # Port 7002: the client sends 12 ASCII digits N, we send N bytes and close (throughput).
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", 7002)); s.listen(64)
    buf = b"\0" * (1 << 20)
    def one(c):
        try:
            n = int(c.recv(12)); v = memoryview(buf)
            while n > 0:
                k = c.send(v[:min(n, len(buf))]); n -= k
        finally:
            c.close()
    while True:
        c, _ = s.accept()
        threading.Thread(target=one, args=(c,), daemon=True).start()

def udp_echo():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("0.0.0.0", 7001))
    while True:
        d, a = s.recvfrom(4096); s.sendto(b"echo:" + d, a)

def name(p, off):
    labels = []
    while p[off]:
        n = p[off]; labels.append(p[off+1:off+1+n].decode().lower()); off += 1 + n
    return ".".join(labels), off + 1

def enc(n):
    return b"".join(bytes([len(l)]) + l.encode() for l in n.split(".")) + b"\0"

def dns():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("198.51.100.53", 53))
    while True:
        p, a = s.recvfrom(4096)
        qid, = struct.unpack("!H", p[:2]); qn, off = name(p, 12); qt, = struct.unpack("!H", p[off:off+2])
        ans = []; cur = qn
        for _ in range(5):
            rec = ZONE.get(cur)
            if not rec: break
            if rec[0] == "CNAME":
                ans.append(enc(cur) + struct.pack("!HHIH", 5, 1, 30, len(enc(rec[1]))) + enc(rec[1])); cur = rec[1]; continue
            if rec[0] == "A" and qt == 1:
                ans.append(enc(cur) + struct.pack("!HHIH", 1, 1, 30, 4) + socket.inet_aton(rec[1]))
            if rec[0] == "AAAA" and qt == 28:
                ans.append(enc(cur) + struct.pack("!HHIH", 28, 1, 30, 16) + socket.inet_pton(socket.AF_INET6, rec[1]))
            break
        rcode = 0 if (qn in ZONE) else 3
        hdr = struct.pack("!HHHHHH", qid, 0x8180 | rcode, 1, len(ans), 0, 0)
        s.sendto(hdr + p[12:off+4] + b"".join(ans), a)

for f, args in ((http_server, (80,)), (http_server, (8080,)), (banner, ()), (udp_echo, ()),
                (dns, ()), (source, ())):
    threading.Thread(target=f, args=args, daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
'''


def _run(*args: str) -> None:
    subprocess.run(list(args), check=True, capture_output=True)


class Lab:
    """The namespace, its servers and a listener on the host's loopback. Use as a context."""

    def __init__(self, name: str | None = None) -> None:
        suffix = f"{os.getpid() % 100000}"
        self.ns = name or f"aflab{suffix}"
        self.veth_host = f"afh{suffix}"
        self.veth_ns = f"afn{suffix}"
        self.proc: subprocess.Popen | None = None
        self.loopback_port = 0
        self._loopback: socket.socket | None = None
        self._stop = threading.Event()

    def __enter__(self) -> "Lab":
        self.close()
        _run("ip", "netns", "add", self.ns)
        try:
            _run("ip", "link", "add", self.veth_host, "type", "veth", "peer", "name", self.veth_ns)
            _run("ip", "link", "set", self.veth_ns, "netns", self.ns)
            _run("ip", "addr", "add", f"{HOST_SIDE}/24", "dev", self.veth_host)
            _run("ip", "link", "set", self.veth_host, "up")
            x = ["ip", "netns", "exec", self.ns]
            _run(*x, "ip", "link", "set", "lo", "up")
            _run(*x, "ip", "link", "set", self.veth_ns, "up")
            for ip in (ALLOWED_IP, OTHER_IP, DNS_IP):
                _run(*x, "ip", "addr", "add", f"{ip}/24", "dev", self.veth_ns)
            _run(*x, "ip", "route", "add", "default", "via", HOST_SIDE)
            import json
            self.proc = subprocess.Popen(x + ["python3", "-c", _SERVERS, json.dumps(ZONE)],
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            assert self.proc.stdout is not None
            line = self.proc.stdout.readline()
            if b"ready" not in line:
                raise RuntimeError(f"lab servers did not start: {line!r}")
            self._wait_http()
            self._start_loopback_listener()
        except Exception:
            self.close()
            raise
        return self

    def _wait_http(self) -> None:
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with socket.create_connection((ALLOWED_IP, 80), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("lab HTTP server unreachable from the host")

    def _start_loopback_listener(self) -> None:
        """A host-side service on 127.0.0.1 (like the control plane): sandboxes must not reach it."""
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        s.settimeout(0.2)
        self._loopback = s
        self.loopback_port = s.getsockname()[1]

        def serve() -> None:
            while not self._stop.is_set():
                try:
                    c, _ = s.accept()
                except OSError:
                    continue
                try:
                    c.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: 11\r\n\r\nHOST-SECRET")
                finally:
                    c.close()

        threading.Thread(target=serve, daemon=True).start()

    def close(self) -> None:
        self._stop.set()
        if self._loopback:
            self._loopback.close()
            self._loopback = None
        if self.proc:
            self.proc.kill()
            self.proc.wait()
            self.proc = None
        subprocess.run(["ip", "link", "del", self.veth_host], capture_output=True)
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)

    def __exit__(self, *exc) -> None:
        self.close()

    # Server configuration that points sandboxes at this lab.
    def server_config(self) -> str:
        return ("network:\n"
                f"  dns_servers: [\"{DNS_IP}\"]\n"
                f"  public_cidrs: [\"{SUBNET}\"]\n")

    def cli_flags(self) -> list[str]:
        return ["--dns-server", DNS_IP, "--public-cidr", SUBNET]


def dns_query(server: str, name: str, qtype: int = 1) -> bytes:
    """A raw A query, for tests that talk DNS directly."""
    q = struct.pack("!HHHHHH", 0x1234, 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    q += struct.pack("!HH", qtype, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(q, (server, 53))
        return s.recv(4096)
