"""Pieces shared by Sandbox and AsyncSandbox: argument checks, rule building, upload progress, and
the shell commands behind the file helpers (which run inside the sandbox so the policy applies)."""
from __future__ import annotations

import os
import shlex
import sys
import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterable, List, Optional, TextIO

from .exceptions import (CommandExecutionError, FileNotFoundError, InvalidConfigurationError,
                         PermissionDeniedError, SandboxError)
from .presets import get_preset, to_rules
from .types import ExecResult, FileInfo, PermissionLike, PermissionRule

PROGRESS_BAR_MIN_FILES = 200  # below this an upload is too quick for a bar to help


@dataclass
class UploadProgress:
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    path: str  # the file just finished


ProgressCallback = Callable[[UploadProgress], object]


def check_dir(path: "str | os.PathLike[str]") -> str:
    p = os.fspath(path)
    if not os.path.exists(p):
        raise InvalidConfigurationError(f"from_local: path does not exist: {p}")
    if not os.path.isdir(p):
        raise InvalidConfigurationError(f"from_local: not a directory: {p}")
    return os.path.abspath(p)


def build_rules(preset: Optional[str], permissions: Optional[Iterable[PermissionLike]]) -> List[PermissionRule]:
    """The preset's rules followed by `permissions` (the reference's semantics: extra rules are added)."""
    rules = get_preset(preset) if preset else []
    rules += to_rules(permissions or [])
    if not rules:
        raise InvalidConfigurationError("no permission rules: give a preset or permissions")
    return rules


class ProgressBar:
    """A one-line bar on a terminal; throttled so 50k files do not mean 50k writes."""

    def __init__(self, stream: TextIO, total_files: int, total_bytes: int) -> None:
        self.stream = stream
        self.total_files = total_files
        self.total_bytes = total_bytes
        self._last = 0.0
        self._lock = threading.Lock()

    def update(self, p: UploadProgress, force: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            if not force and now - self._last < 0.1 and p.files_done < p.files_total:
                return
            self._last = now
            frac = p.files_done / p.files_total if p.files_total else 1.0
            bar = "#" * int(frac * 30)
            self.stream.write(f"\ragentfense upload [{bar:<30}] {p.files_done}/{p.files_total} files "
                              f"{p.bytes_done / 1048576:.1f}/{p.bytes_total / 1048576:.1f} MiB")
            self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


def make_progress(on_progress: Optional[ProgressCallback], show_progress: Optional[bool], files: int,
                  total_bytes: int) -> "tuple[Callable[[UploadProgress], None], Optional[ProgressBar]]":
    show = show_progress if show_progress is not None else (
        files >= PROGRESS_BAR_MIN_FILES and hasattr(sys.stderr, "isatty") and sys.stderr.isatty())
    bar = ProgressBar(sys.stderr, files, total_bytes) if show else None

    def report(p: UploadProgress) -> None:
        if bar is not None:
            bar.update(p)
        if on_progress is not None:
            on_progress(p)
    return report, bar


def codebase_name_for(path: str) -> str:
    return os.path.basename(os.path.normpath(path)) or "codebase"


# ---- file helpers: commands run in the sandbox, so the sandbox's permissions decide ----

def _arg(path: str) -> str:
    """A path as one shell word that no tool can take for an option."""
    if not isinstance(path, str) or not path or "\0" in path:
        raise InvalidConfigurationError(f"invalid path {path!r}")
    return shlex.quote("./" + path if path.startswith("-") else path)


def read_cmd(path: str) -> str:
    return f"cat -- {_arg(path)}"


def write_cmd(path: str) -> str:
    d = os.path.dirname(path)
    mk = f"mkdir -p -- {_arg(d)} && " if d and d not in (".", "/") else ""
    return f"{mk}base64 -d > {_arg(path)}"


def list_cmd(path: str, recursive: bool) -> str:
    depth = "" if recursive else "-maxdepth 1 "
    return (f"find {_arg(path)} -mindepth 1 {depth}-printf '%y\\t%s\\t%P\\n' 2>/dev/null || "
            f"{{ echo __AF_NO_PRINTF__; ls -1Ap -- {_arg(path)}; }}")


def file_error(op: str, path: str, exit_code: int, stderr: str, command: str, stdout: str = "") -> SandboxError:
    low = stderr.lower()
    if "no such file" in low or "not found" in low:
        return FileNotFoundError(path, f"{op} {path}: {stderr.strip()}")
    if "permission denied" in low or "read-only file system" in low or "operation not permitted" in low:
        return PermissionDeniedError(f"{op} {path}: {stderr.strip()} (the sandbox's permissions refuse it)")
    return CommandExecutionError(command=command, exit_code=exit_code, stdout=stdout, stderr=stderr)


def parse_listing(path: str, r: ExecResult) -> List[FileInfo]:
    out: List[FileInfo] = []
    lines = r.stdout.splitlines()
    if lines and lines[0] == "__AF_NO_PRINTF__":
        for name in lines[1:]:
            is_dir = name.endswith("/")
            n = name.rstrip("/")
            out.append(FileInfo(path=os.path.join(path, n) if path not in ("", ".") else n,
                                name=n, is_dir=is_dir, size=0))
        return out
    for line in lines:
        parts = line.split("\t", 2)
        if len(parts) != 3:
            continue
        kind, size, rel = parts
        full = rel if path in ("", ".") else f"{path.rstrip('/')}/{rel}"
        out.append(FileInfo(path=full, name=os.path.basename(rel), is_dir=kind == "d",
                            size=int(size) if kind == "f" and size.isdigit() else 0))
    return out
