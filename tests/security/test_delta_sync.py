"""I4: nothing the agent creates makes a trusted component act on the host — the write-back of the
delta (commit after each exec by default), listings, downloads and deletes never follow an
agent-planted link, open a FIFO, keep a setuid bit or a device node, or delete what the agent could
not see. These cases assert the invariant only (canaries never leak, no byte outside the codebase
changes, hidden files survive), so they hold with and without a copy-on-write delta."""
from __future__ import annotations

import os
import stat
import threading

import grpc

from secutil import PRELUDE, HOST_CANARY, codebase_pb2, download, results, rpc_code, upload


def store_files(world):
    root = world.store_root()
    assert root is not None, "codebase store not found"
    return root


def test_forged_whiteouts_do_not_delete(world):
    world.exec("cd output && touch .wh.keep .wh..env.local .wh..wh..opq .wh..placeholder "
               "keep/.wh..env keep/.wh.visible.txt 2>/dev/null; mkdir -p .wh..wh..opq 2>/dev/null; "
               "true")
    world.commit()
    r = world.exec("ls -a output output/keep")
    assert "visible.txt" in r.stdout and ".placeholder" in r.stdout
    root = store_files(world)
    assert (root / "output/keep/visible.txt").read_bytes() == b"visible\n"


def test_whiteout_names_for_read_only_paths(world):
    world.exec("touch output/.wh..wh..opq; ln -s ../src output/.wh.src 2>/dev/null; "
               "touch .wh.src src/.wh.ro.txt 2>/dev/null; true")
    world.commit()
    assert "ro.txt" in world.exec("ls src").stdout


def test_symlink_swap_between_exec_and_sync(world):
    # exec 1 creates a file below a directory; exec 2 replaces the directory by a link to a host
    # directory and rewrites the file. A write-back that re-resolves the path writes on the host.
    world.exec("mkdir -p output/swap && echo one > output/swap/f")
    world.commit()
    world.exec(f"rm -rf output/swap && ln -s {world.host_dir} output/swap && "
               "echo two > output/swap/host_secret 2>/dev/null; echo two > output/swap/f 2>/dev/null; "
               "true")
    world.commit()
    world.exec(f"rm -f output/swap; ln -sfn {world.host_dir}/host_secret output/swapfile; true")
    world.commit()
    world.exec("echo three >> output/swapfile 2>/dev/null; true")
    world.commit()
    # check_host_canary (autouse) verifies the host file and directory are untouched.


def test_concurrent_swap_during_commits(world):
    stop = threading.Event()
    errors: list[Exception] = []

    def committer():
        while not stop.is_set():
            try:
                world.commit()
            except Exception as e:  # noqa: BLE001  (reported below)
                errors.append(e)

    th = threading.Thread(target=committer)
    th.start()
    try:
        world.exec(rf"""
mkdir -p output/cs; cd output/cs
end=$(( $(date +%s) + 8 ))
while [ $(date +%s) -lt $end ]; do
  mkdir -p d; echo x > d/host_secret; rm -rf d; ln -sfn {world.host_dir} d; rm -f d
done; true
""", timeout=60)
    finally:
        stop.set()
        th.join()
    assert not errors, errors


def test_setuid_and_setgid_bits_stripped(world):
    world.exec("cp /bin/true output/suid && chmod 6755 output/suid 2>/dev/null; "
               "mkdir -p output/sgid && chmod 2777 output/sgid 2>/dev/null; "
               "install -m 4755 /bin/true output/suid2 2>/dev/null; true")
    world.commit()
    root = store_files(world)
    for name in ("suid", "suid2", "sgid"):
        p = root / "output" / name
        if p.exists():
            st = os.lstat(p)
            assert not st.st_mode & (stat.S_ISUID | stat.S_ISGID), (name, oct(st.st_mode))
    r = world.exec("stat -c '%a %n' output/suid output/suid2 output/sgid 2>/dev/null; true")
    for line in r.stdout.splitlines():
        assert len(line.split()[0]) <= 3 or line.split()[0][0] == "0", line


def test_fifo_socket_and_devices(world):
    res = results(world.py(PRELUDE + """
t("fifo", lambda: os.mkfifo("output/fifo"))
t("chr", lambda: os.mknod("output/null", 0o666 | stat.S_IFCHR, os.makedev(1, 3)))
t("blk", lambda: os.mknod("output/sda", 0o666 | stat.S_IFBLK, os.makedev(8, 0)))
import socket
def sock():
    s = socket.socket(socket.AF_UNIX); s.bind("output/sock")
t("sock", sock)
""").stdout)
    assert res["chr"] != "OK" and res["blk"] != "OK"
    world.commit()
    root = store_files(world)
    for p in (root / "output").rglob("*"):
        st = os.lstat(p)
        assert not stat.S_ISCHR(st.st_mode) and not stat.S_ISBLK(st.st_mode), p
    # The server must not block on the FIFO: listing and downloading it answer promptly.
    lst = world.cb.ListFiles(codebase_pb2.ListFilesRequest(codebase_id=world.codebase_id,
                                                           path="output", recursive=True),
                             timeout=20)
    assert lst is not None
    code = rpc_code(download, world.cb, world.codebase_id, "output/fifo", 10)
    assert code != grpc.StatusCode.DEADLINE_EXCEEDED
    world.healthy()


def test_planted_symlink_not_followed_by_download_or_list(world):
    world.exec(f"ln -sfn {world.host_dir}/host_secret output/hostfile; "
               f"ln -sfn {world.host_dir} output/hostdir; ln -sfn /etc output/etc; "
               "ln -sfn ../.env output/envlink; true")
    world.commit()
    for path in ("output/hostfile", "output/hostdir/host_secret", "output/etc/passwd",
                 "output/envlink"):
        try:
            data = download(world.cb, world.codebase_id, path)
        except grpc.RpcError:
            continue
        assert HOST_CANARY.encode() not in data and b"root:" not in data, path
        assert b"AFSEC" not in data, path
    for path in ("output/hostdir", "output/etc"):
        try:
            lst = world.cb.ListFiles(codebase_pb2.ListFilesRequest(
                codebase_id=world.codebase_id, path=path), timeout=20)
        except grpc.RpcError:
            continue
        names = [f.path for f in lst.files]
        assert not any("host_secret" in n or "passwd" in n for n in names), names


def test_delete_and_upload_through_planted_symlink(world):
    world.exec(f"ln -sfn {world.host_dir} output/hostdir2; true")
    world.commit()
    for path in ("output/hostdir2/host_secret", "output/hostdir2"):
        rpc_code(world.cb.DeleteFile, codebase_pb2.DeleteFileRequest(
            codebase_id=world.codebase_id, file_path=path), timeout=20)
    code = rpc_code(upload, world.cb, world.codebase_id, "output/hostdir2/planted", b"x")
    assert not (world.host_dir / "planted").exists(), code
    assert (world.host_dir / "host_secret").exists()


def test_rmdir_of_dir_with_hidden_files_across_sync(world):
    world.exec("mkdir -p output/hd && echo v > output/hd/v; true")
    world.commit()
    upload(world.cb, world.codebase_id, "output/hd/.env.h", b"KEEPME\n")
    world.exec("rm -rf output/hd; true")
    world.commit()
    assert download(world.cb, world.codebase_id, "output/hd/.env.h") == b"KEEPME\n"


def test_hidden_name_created_in_delta_never_syncs_over_store(world):
    # A create at a hidden name is refused; the store copy of the hidden file keeps its bytes.
    r = world.exec("echo forged > output/.env.local; echo forged > output/keep/.env; "
                   "cp README.md output/.env.new; true")
    assert r.exit_code == 0
    world.commit()
    root = store_files(world)
    assert not (root / "output/.env.new").exists()


def test_deep_tree_and_long_names(world):
    r = world.exec("d=output/deep; for i in $(seq 1 60); do d=$d/dddddddddddddddddddd; done; "
                   "mkdir -p $d 2>/dev/null; echo x > $d/f 2>/dev/null; "
                   "touch output/$(head -c 255 /dev/zero | tr '\\0' a) 2>&1; "
                   "touch output/$(head -c 256 /dev/zero | tr '\\0' a) 2>&1; true", timeout=120)
    assert r.exit_code == 0
    world.commit()
    world.healthy()


def test_stale_directory_node_after_rename_and_symlink(world):
    # SECURITY-NOTES 2.1(d): keep a cwd in d, rename d away, put a link to a host directory (and
    # to /) at the old name, then create and read through the cwd. A daemon that re-resolves the
    # node's old host path follows the link on the host.
    r = world.exec(f"""
mkdir -p output/stale/d && cd output/stale/d
mv ../d ../e && ln -s {world.host_dir} ../d
echo planted > host_secret_copy 2>&1; echo planted > newfile; cat host_secret 2>&1
cd /workspace/output/stale && rm -f d && ln -s / d && cd e && ls etc 2>&1; echo done
""")
    assert "done" in r.stdout
    world.commit()
    root = store_files(world)
    # Wherever the create landed (the renamed directory, or nowhere when the rename became a copy
    # and the cwd was removed), it is inside the store; the planted link stays a link.
    for p in root.rglob("newfile"):
        assert p.read_text() == "planted\n" and ".." not in p.relative_to(root).parts
    d = root / "output/stale/d"
    assert not d.exists() or d.is_symlink() or d.is_dir() and not d.is_symlink() and \
        "host_secret" not in os.listdir(d)
    # check_host_canary (autouse): the host directory holds only host_secret, unchanged.
