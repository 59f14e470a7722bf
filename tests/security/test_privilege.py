"""I5: a sandboxed process has no privilege — non-root, no capabilities, no_new_privs, seccomp,
no mount/mknod, no new namespaces, private pid/net/ipc/uts, no leaked fds or environment, no TTY
injection — and the control plane (API ports, supervisor sockets) is unreachable from inside.
The last group repeats the core checks for the Docker runtime (image agentfense-test/busybox)."""
from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import pytest

from secutil import PRELUDE, RUN, World, results, sandbox_pb2


def status(world) -> dict[str, str]:
    out = world.exec("cat /proc/self/status").stdout
    return {k: v.strip() for k, v in (line.split(":", 1) for line in out.splitlines() if ":" in line)}


def test_not_root_and_no_capabilities(world):
    s = status(world)
    assert s["Uid"].split()[0] != "0" and s["Gid"].split()[0] != "0"
    for cap in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"):
        assert int(s[cap], 16) == 0, (cap, s[cap])
    assert s["NoNewPrivs"] == "1" and s["Seccomp"] == "2"


def test_host_root_not_mapped(world):
    # One mapped id only (never the identity map of the whole host range).
    r = world.exec("cat /proc/self/uid_map /proc/self/gid_map")
    for line in r.stdout.splitlines():
        inside, outside, count = line.split()
        assert count == "1" and inside != "0", line
    # Seen from the host, the sandbox's processes do not run as root.
    marker = "AFSECMARK" + RUN
    th = threading.Thread(target=world.exec, args=(f"sleep 4; : {marker}",))
    th.start()
    uids = set()
    try:
        for _ in range(30):
            pids = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True).stdout
            for pid in pids.split():
                try:
                    uids.add(Path(f"/proc/{pid}/status").read_text().split("Uid:")[1].split()[1])
                except (OSError, IndexError):
                    pass
            if uids:
                break
            time.sleep(0.1)
    finally:
        th.join()
    assert uids and "0" not in uids, uids


def test_mount_and_new_mount_api_refused(world):
    res = results(world.py(PRELUDE + """
def mount():
    r = libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)
    if r != 0: raise OSError(ctypes.get_errno(), "mount")
t("mount", mount)
t("umount", lambda: sysc(166, ctypes.addressof(ctypes.create_string_buffer(b"/workspace")), 2))
t("fsopen", lambda: sysc(430, ctypes.addressof(ctypes.create_string_buffer(b"tmpfs")), 0))
t("open_tree", lambda: sysc(428, -100, ctypes.addressof(ctypes.create_string_buffer(b"/")), 1))
t("move_mount", lambda: sysc(429, -100, 0, -100, 0, 0))
t("pivot_root", lambda: sysc(155, 0, 0))
""").stdout)
    assert all(v != "OK" for v in res.values()), res
    r = world.exec("mount -t proc proc /tmp 2>&1; mount -o remount,rw /usr 2>&1; "
                   "umount -l /workspace 2>&1; echo x > /usr/evil 2>&1; grep -c ' /tmp proc ' "
                   "/proc/self/mounts; true")
    assert r.stdout.split()[-1] == "0" and "evil" not in world.exec("ls /usr").stdout
    assert "app.py" in world.exec("ls src").stdout  # /workspace still mounted


def test_mknod_and_device_access_refused(world):
    res = results(world.py(PRELUDE + """
t("mknod_tmp", lambda: os.mknod("/tmp/mem", 0o666 | stat.S_IFCHR, os.makedev(1, 1)))
t("open_mem", lambda: os.open("/dev/mem", os.O_RDONLY))
t("open_kmsg", lambda: os.open("/dev/kmsg", os.O_RDONLY))
t("open_sda", lambda: os.open("/dev/sda", os.O_RDONLY))
t("open_fuse", lambda: os.open("/dev/fuse", os.O_RDWR))
""").stdout)
    assert all(v != "OK" for v in res.values()), res


def test_namespaces_cannot_be_created(world):
    res = results(world.py(PRELUDE + """
CLONE_NEWUSER, CLONE_NEWNS, CLONE_NEWNET, CLONE_NEWPID = 0x10000000, 0x20000, 0x40000000, 0x20000000
for name, fl in [("user", CLONE_NEWUSER), ("mnt", CLONE_NEWNS), ("net", CLONE_NEWNET),
                 ("pid", CLONE_NEWPID), ("user_mnt", CLONE_NEWUSER | CLONE_NEWNS)]:
    t("unshare_" + name, lambda: sysc(272, fl))
t("setns", lambda: sysc(308, os.open("/proc/self/ns/net", os.O_RDONLY), 0))
""").stdout)
    assert all(v != "OK" for v in res.values()), res
    r = world.exec("unshare -Ur id 2>&1; unshare -m true 2>&1; true")
    assert "uid=0" not in r.stdout


def test_dangerous_syscalls_filtered(world):
    res = results(world.py(PRELUDE + """
t("ptrace_attach_1", lambda: sysc(101, 16, 1, 0, 0))
t("bpf", lambda: sysc(321, 0, 0, 0))
t("perf_event_open", lambda: sysc(298, 0, 0, -1, -1, 0))
t("userfaultfd", lambda: sysc(323, 0))
t("io_uring_setup", lambda: sysc(425, 8, ctypes.addressof(ctypes.create_string_buffer(120))))
t("keyctl", lambda: sysc(250, 0, 0, 0))
t("add_key", lambda: sysc(248, 0, 0, 0, 0, 0))
t("kexec_load", lambda: sysc(246, 0, 0, 0, 0))
t("init_module", lambda: sysc(175, 0, 0, 0))
t("open_by_handle_at", lambda: sysc(304, -100, ctypes.addressof(ctypes.create_string_buffer(64)), 0))
t("x32_getpid", lambda: sysc(0x40000000 | 39))
t("x32_open", lambda: sysc(0x40000000 | 2, 0, 0))
t("process_vm_readv_1", lambda: sysc(310, 1, 0, 0, 0, 0, 0))
""").stdout)
    bad = {k: v for k, v in res.items() if v == "OK"}
    assert not bad, bad


def test_tiocsti_and_tty_injection(world):
    res = results(world.py(PRELUDE + """
import termios, pty
t("dev_tty", lambda: os.open("/dev/tty", os.O_RDWR))
t("tiocsti_stdin", lambda: fcntl.ioctl(0, termios.TIOCSTI, b"x"))
def own_pty(req):
    m, s = pty.openpty()
    fcntl.ioctl(s, req, b"x")
t("tiocsti_pty", lambda: own_pty(termios.TIOCSTI))
t("tiocsti_highbits", lambda: own_pty(termios.TIOCSTI | (1 << 32)))
t("tioclinux", lambda: fcntl.ioctl(0, 0x541C, b"\\x06"))
print("sid_is_self=" + str(os.getsid(0) != 0))
""").stdout)
    assert res["dev_tty"] != "OK" and res["tiocsti_stdin"] != "OK"
    assert res["tiocsti_pty"] != "OK" and res["tiocsti_highbits"] != "OK"
    assert res["tioclinux"] != "OK"


def test_no_leaked_fds(world):
    r = world.py(PRELUDE + """
for fd in sorted(int(x) for x in os.listdir("/proc/self/fd")):
    try:
        print(f"fd{fd}=" + os.readlink(f"/proc/self/fd/{fd}"))
    except FileNotFoundError:
        pass  # the descriptor listdir used for /proc/self/fd, closed since
    except OSError as e:
        print(f"fd{fd}=ERR")
""")
    fds = results(r.stdout)
    extra = {k: v for k, v in fds.items() if k not in ("fd0", "fd1", "fd2")
             and not v.startswith("/proc/")}
    assert not extra, extra
    for v in fds.values():
        assert "af-srv" not in v and "/work" not in v and "control.sock" not in v, fds


def test_environment_is_allow_listed(world):
    r = world.exec("env; cat /proc/1/environ 2>/dev/null | tr '\\0' '\\n'")
    names = {line.split("=", 1)[0] for line in r.stdout.splitlines() if "=" in line}
    allowed = {"USER", "HOME", "LOGNAME", "TERM", "PATH", "LANG", "SHELL", "PWD", "SHLVL", "_",
               "OLDPWD", "HOSTNAME", "LC_ALL"}
    assert names <= allowed, names - allowed
    assert "LD_PRELOAD" not in names and "AGENTFENSE_TOKEN" not in names


def test_pid_namespace_and_agent_protected(world):
    r = world.exec("ls /proc | grep -c '^[0-9]'; ls /proc/1/fd 2>&1; cat /proc/1/mem 2>&1 | "
                   "head -c 10; kill -9 1 2>&1; true")
    count = int(r.stdout.split()[0])
    assert count < 20, r.stdout
    world.healthy()


def test_network_and_control_plane_unreachable(world, server):
    res = results(world.py(PRELUDE + f"""
import socket
def conn(host, port):
    s = socket.socket(); s.settimeout(2); s.connect((host, port))
t("grpc", lambda: conn("127.0.0.1", {server.grpc_port}))
t("http", lambda: conn("127.0.0.1", {server.http_port}))
t("metadata", lambda: conn("169.254.169.254", 80))
t("ifaces", lambda: sorted(os.listdir("/sys/class/net")) if os.path.isdir("/sys/class/net") else [])
def docker():
    s = socket.socket(socket.AF_UNIX); s.settimeout(2); s.connect("/var/run/docker.sock")
t("docker_sock", docker)
""").stdout)
    assert res["grpc"] != "OK" and res["http"] != "OK" and res["metadata"] != "OK"
    assert res["docker_sock"] != "OK"


def test_supervisor_sockets_unreachable(world, server):
    run = server.data_dir / "data" / "mounts" / ".run"
    socks = [str(p) for p in run.rglob("*.sock")] if run.exists() else []
    assert socks, "expected supervisor sockets on the host"
    code = PRELUDE + "import socket\n" + "".join(
        f"""
def c{i}():
    s = socket.socket(socket.AF_UNIX); s.settimeout(2); s.connect({p!r})
t("s{i}", c{i})
""" for i, p in enumerate(socks))
    code += """
found = []
for base in ("/run", "/tmp", "/var", "/workspace"):
    for dp, dn, fn in os.walk(base):
        found += [os.path.join(dp, f) for f in fn if f.endswith(".sock") and "agentfense" not in dp]
print("found=" + repr(found))
"""
    res = results(world.py(code).stdout)
    assert all(res[f"s{i}"] != "OK" for i in range(len(socks))), res
    assert res["found"] == "[]", res


def test_setuid_binaries_inert(world):
    r = world.exec("su -c id 2>&1; sudo id 2>&1; passwd -S 2>&1; newgrp 2>&1; id -u")
    assert r.stdout.strip().splitlines()[-1] != "0"
    assert "uid=0" not in r.stdout


def test_system_dirs_read_only_and_host_hidden(world):
    r = world.exec("touch /etc/evil /usr/evil /bin/evil 2>&1; echo 1 > /proc/sysrq-trigger 2>&1; "
                   "echo x > /sys/kernel/evil 2>&1; ls /root /home /var/lib 2>&1; "
                   f"ls {world.host_dir} 2>&1; ls /work 2>&1; true")
    assert "host_secret" not in r.stdout
    assert not Path("/etc/evil").exists() and not Path("/usr/evil").exists()


def test_hostname_and_ipc_private(world):
    r = world.exec("hostname evilhost 2>&1; hostname; true")
    assert r.stdout.split()[-1] != "evilhost"
    assert os.uname().nodename != "evilhost"
    assert "evilhost" not in world.exec("hostname").stdout


# ---- Docker runtime --------------------------------------------------------------------------

@pytest.fixture(scope="module")
def docker_world(server):
    root = Path(__file__).resolve().parents[2]
    subprocess.run([str(root / "scripts" / "ensure-services")], check=True, capture_output=True,
                   timeout=900)
    w = World(server, runtime=sandbox_pb2.RUNTIME_TYPE_DOCKER, image="agentfense-test/busybox:latest")
    w.setup()
    yield w
    w.check_integrity()
    w.teardown()


def test_docker_privilege(docker_world):
    got = docker_world.sb.GetSandbox(sandbox_pb2.GetSandboxRequest(
        sandbox_id=docker_world.sandbox_id), timeout=20)
    assert got.runtime == sandbox_pb2.RUNTIME_TYPE_DOCKER
    r = docker_world.exec("id -u; grep -E 'Cap(Eff|Prm|Bnd)|NoNewPrivs' /proc/self/status; "
                          "ls /sys/class/net; mount -t tmpfs none /tmp 2>&1; "
                          "mknod /tmp/m c 1 1 2>&1; true")
    lines = r.stdout.split("\n")
    assert lines[0] != "0"
    assert "CapEff:\t0000000000000000" in r.stdout and "NoNewPrivs:\t1" in r.stdout
    assert "eth0" not in r.stdout
    assert not Path("/tmp/m").exists()


def test_docker_confidentiality_and_integrity(docker_world):
    r = docker_world.exec("cat .env view/v.txt secrets/key.pem output/.env.local 2>&1; "
                          "ls -a / /workspace /workspace/output; echo x > src/ro.txt 2>&1; "
                          "ln -s ../.env output/dl; cat output/dl 2>&1; "
                          "ls /var/run/docker.sock 2>&1; true")
    assert ".env" not in r.stdout.split() and "docker.sock\n" not in r.stdout
    docker_world.check_integrity()
