#!/usr/bin/python3
"""bench/fs/syscalls.py: the syscalls each fs-group workload costs the mount's daemon, per build.

    bench/fs/syscalls.py BUILD [BUILD...]

Mounts the fs group's tree with each build's agentfense-mount (agent-safe, plain and
delta-backed), attaches `strace -c -f` to the daemon for one run of each workload of
bench/run's fs group (cold rows after dropping the caches, warm rows after a warm-up run) and
prints the number of syscalls (and FUSE requests: one `read` of /dev/fuse each). Unlike wall
times on a shared machine, these counts are exact: a change that adds no syscall to a row adds
only CPU work inside the daemon to it. Needs root and strace.
"""
from __future__ import annotations

import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from ab import daemon_pid  # noqa: E402
from harness import fs_group  # noqa: E402
from harness.common import drop_caches, timed  # noqa: E402


def traced(pid: int, cmd: str) -> dict[str, int]:
    """Runs `cmd` with strace -c attached to `pid`; {syscall: calls}."""
    with tempfile.NamedTemporaryFile(suffix=".strace") as out:
        st = subprocess.Popen(["strace", "-c", "-f", "-p", str(pid), "-o", out.name],
                              stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # attached to every thread
        timed(cmd)
        st.send_signal(signal.SIGINT)
        st.wait(timeout=30)
        calls = {}
        for line in Path(out.name).read_text().splitlines():
            m = re.match(r"\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?(\w+)$", line)
            if m and m.group(2) != "total":
                calls[m.group(2)] = int(m.group(1))
        return calls


def main() -> int:
    builds = sys.argv[1:]
    if not builds:
        print(__doc__, file=sys.stderr)
        return 2
    work = Path("/var/tmp/agentfense-bench")
    src = work / "tree-16000"
    fs_group.make_tree(src, 16000, 256)
    (src / "scratch").mkdir(exist_ok=True)
    rule = "--rule '/scratch/**=write@1000' --rule '/scratch=write@1000'"
    results: dict[tuple[str, str, str], dict[str, int]] = {}
    for i, build in enumerate(builds):
        binary = Path(build).resolve() / "bin" / "agentfense-mount"
        for kind, extra in (("plain", ""), ("delta", "--delta {SCRATCH}/delta")):
            cfg = fs_group.Config(kind, f"mkdir -p {{SCRATCH}}/delta && {binary} --background "
                                        f"--preset agent-safe {rule} {extra} {{SRC}} {{MNT}}")
            mnt = work / "sc" / f"{i}-{kind}"
            scratch = work / "sc-scratch" / f"{i}-{kind}"
            subprocess.run(["rm", "-rf", str(scratch)], check=False)
            scratch.mkdir(parents=True)
            root = cfg.mount(src, mnt, scratch)
            try:
                pid = daemon_pid(root)
                for wl, (cmd, _) in fs_group.WORKLOADS.items():
                    c = cmd.format(M=root)
                    if wl in fs_group.COLD:
                        drop_caches()
                        results[(f"{wl}, cold", kind, build)] = traced(pid, c)
                    timed(c)
                    results[(f"{wl}, warm", kind, build)] = traced(pid, c)
            finally:
                cfg.unmount(mnt)
    head = " | ".join(f"{b} syscalls (requests)" for b in builds)
    print(f"| row | mount | {head} |")
    print("|---|---|" + "---|" * len(builds))
    for row in dict.fromkeys(r for r, _, _ in results):
        for kind in ("plain", "delta"):
            cells = []
            for b in builds:
                c = results[(row, kind, b)]
                cells.append(f"{sum(c.values())} ({c.get('read', 0)})")
            print(f"| {row} | {kind} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
