"""Which files of a local tree `from_local` uploads: gitignore semantics and a symlink-safe walk.

Rules follow git's documented gitignore format: `#` comments, `!` negation, trailing `/` for
directories only, a `/` at the start or in the middle anchors a pattern to its file's directory,
`**` across directories, `*`/`?`/`[...]` within one segment, and "the last matching pattern wins",
with deeper ignore files taking precedence. As in git, nothing below an excluded directory can be
re-included (the walk never enters it). `.sandboxignore` uses the same syntax and is read after
`.gitignore` of the same directory, so it can override it.

Symlinks are never followed out of the tree (SECURITY-NOTES: a link to ~/.aws/credentials must not
be uploaded): a link whose target is a regular file inside the tree that is itself uploaded becomes a
copy of that file; every other link (out of the tree, to a directory, to an ignored file, broken) is
skipped and reported, as are special files and unreadable entries.
"""
from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Pattern, Tuple

DEFAULT_IGNORES: Tuple[str, ...] = (
    ".git/", ".hg/", ".svn/", "node_modules/", "__pycache__/", "*.pyc", "*.pyo", ".venv/", "venv/",
    ".tox/", ".mypy_cache/", ".pytest_cache/", ".DS_Store", ".env", ".env.*",
)
IGNORE_FILES: Tuple[str, ...] = (".gitignore", ".sandboxignore")


@dataclass(frozen=True)
class IgnoreRule:
    base: str  # directory (relative, "" = root) of the file the rule came from
    regex: Pattern[str]
    negate: bool
    dir_only: bool
    source: str

    def matches(self, rel: str, is_dir: bool) -> bool:
        if self.dir_only and not is_dir:
            return False
        if self.base:
            if not rel.startswith(self.base + "/"):
                return False
            rel = rel[len(self.base) + 1:]
        return self.regex.fullmatch(rel) is not None


def _segment_to_regex(seg: str) -> str:
    out: List[str] = []
    i = 0
    while i < len(seg):
        ch = seg[i]
        if ch == "\\" and i + 1 < len(seg):
            out.append(re.escape(seg[i + 1]))
            i += 2
            continue
        if ch == "*":
            while i + 1 < len(seg) and seg[i + 1] == "*":
                i += 1  # "**" inside a segment is an ordinary "*" for git
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "[":
            j = seg.find("]", i + 2 if i + 1 < len(seg) and seg[i + 1] in "!^" else i + 1)
            if j < 0:
                out.append(re.escape(ch))
            else:
                body = seg[i + 1:j]
                if body[:1] in ("!", "^"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


def compile_pattern(line: str, base: str = "", source: str = "") -> Optional[IgnoreRule]:
    """One gitignore line into a rule; None for blank lines and comments."""
    if line.endswith("\n"):
        line = line[:-1]
    if line.endswith("\r"):
        line = line[:-1]
    # Trailing spaces are dropped unless escaped with a backslash.
    stripped = line.rstrip(" ")
    if stripped.endswith("\\") and len(line) > len(stripped):
        stripped += " "
    line = stripped
    if not line or line.startswith("#"):
        return None
    negate = False
    if line.startswith("!"):
        negate, line = True, line[1:]
    elif line.startswith("\\!") or line.startswith("\\#"):
        line = line[1:]
    dir_only = line.endswith("/")
    line = line.rstrip("/")
    if not line:
        return None
    anchored = "/" in line
    line = line.lstrip("/")
    segs = line.split("/")
    parts: List[str] = []
    for idx, seg in enumerate(segs):
        last = idx == len(segs) - 1
        if seg == "**":
            if last:
                parts.append(".*" if idx == 0 else "/.*")  # "a/**": everything inside a
                continue
            parts.append("(?:.*/)?" if idx == 0 else "/(?:.*/)?")
            continue
        if idx > 0 and not (segs[idx - 1] == "**"):
            parts.append("/")
        parts.append(_segment_to_regex(seg))
    body = "".join(parts)
    if not anchored:
        body = "(?:.*/)?" + body
    return IgnoreRule(base=base, regex=re.compile(body, re.DOTALL), negate=negate, dir_only=dir_only,
                      source=source)


def parse_ignore_text(text: str, base: str = "", source: str = "") -> List[IgnoreRule]:
    rules = []
    for line in text.splitlines():
        r = compile_pattern(line, base, source)
        if r is not None:
            rules.append(r)
    return rules


def is_ignored(rules: Iterable[IgnoreRule], rel: str, is_dir: bool) -> bool:
    ignored = False
    for r in rules:
        if r.matches(rel, is_dir):
            ignored = not r.negate
    return ignored


@dataclass
class LocalFile:
    rel: str  # "/"-separated, relative to the root
    abs_path: str  # what to read (for an in-tree symlink: its target)
    size: int
    mode: int  # permission bits (exec bits kept)


@dataclass
class WalkResult:
    files: List[LocalFile] = field(default_factory=list)
    skipped: Dict[str, str] = field(default_factory=dict)  # rel path -> reason
    ignored: int = 0
    deferred_links: List[LocalFile] = field(default_factory=list)

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def _inside(root_real: str, target: str) -> bool:
    return target == root_real or target.startswith(root_real.rstrip(os.sep) + os.sep)


def walk_tree(root: str, extra_patterns: Optional[Iterable[str]] = None,
              use_defaults: bool = True) -> WalkResult:
    """Lists the files to upload under `root`, applying the ignore rules; never raises for one
    bad entry (it lands in `skipped` with the reason)."""
    root_real = os.path.realpath(root)
    rules: List[IgnoreRule] = []
    if use_defaults:
        rules += [r for r in (compile_pattern(p, "", "<defaults>") for p in DEFAULT_IGNORES) if r]
    rules += [r for r in (compile_pattern(p, "", "<ignore_patterns>") for p in (extra_patterns or [])) if r]
    out = WalkResult()
    _walk_dir(root_real, "", rules, root_real, out)
    selected = {f.abs_path for f in out.files}
    for link in out.deferred_links:
        if link.abs_path in selected:
            out.files.append(link)
        else:
            out.skipped[link.rel] = "symlink to a file that is ignored or not uploaded; not followed"
    out.deferred_links = []
    out.files.sort(key=lambda f: f.rel)
    return out


def _walk_dir(abs_dir: str, rel_dir: str, inherited: List[IgnoreRule], root_real: str, out: WalkResult) -> None:
    rules = list(inherited)
    for name in IGNORE_FILES:
        p = os.path.join(abs_dir, name)
        try:
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                with open(p, "r", encoding="utf-8", errors="replace") as f:
                    # A rule from a root file has base "" and applies at any depth below.
                    rules += parse_ignore_text(f.read(), rel_dir, os.path.join(rel_dir, name))
        except FileNotFoundError:
            pass
        except OSError as e:
            out.skipped[_join(rel_dir, name)] = f"unreadable ignore file: {e.strerror}"
    try:
        entries = sorted(os.scandir(abs_dir), key=lambda e: e.name)
    except OSError as e:
        out.skipped[rel_dir or "."] = f"unreadable directory: {e.strerror}"
        return
    visible = 0
    for entry in entries:
        rel = _join(rel_dir, entry.name)
        try:
            rel.encode("utf-8")
        except UnicodeEncodeError:
            # Undecodable bytes in a name (surrogate escapes): the wire carries UTF-8 paths only.
            out.skipped[rel.encode("utf-8", "backslashreplace").decode("ascii", "replace")] = \
                "name is not valid UTF-8; cannot be uploaded"
            continue
        try:
            st = entry.stat(follow_symlinks=False)
        except OSError as e:
            out.skipped[rel] = f"cannot stat: {e.strerror}"
            continue
        if stat.S_ISLNK(st.st_mode):
            target = os.path.realpath(entry.path)
            try:
                tst = os.stat(target)
            except OSError:
                if is_ignored(rules, rel, False):
                    out.ignored += 1
                else:
                    out.skipped[rel] = "broken symlink"
                continue
            is_dir = stat.S_ISDIR(tst.st_mode)
            if is_ignored(rules, rel, is_dir):
                out.ignored += 1
                continue
            visible += 1
            if not _inside(root_real, target):
                out.skipped[rel] = f"symlink points outside the tree ({os.readlink(entry.path)}); not followed"
            elif is_dir:
                out.skipped[rel] = "symlink to a directory; not followed (its target is uploaded where it lives)"
            elif not stat.S_ISREG(tst.st_mode):
                out.skipped[rel] = "symlink to a special file"
            elif not os.access(target, os.R_OK):
                out.skipped[rel] = "unreadable (permission denied)"
            else:
                # Decided after the walk: only a copy of a file that is itself uploaded, so a link
                # cannot smuggle in an ignored file (`leak -> .env`).
                out.deferred_links.append(LocalFile(rel, target, tst.st_size, tst.st_mode & 0o777))
            continue
        is_dir = stat.S_ISDIR(st.st_mode)
        if is_ignored(rules, rel, is_dir):
            out.ignored += 1
            continue
        visible += 1
        if is_dir:
            before = len(out.files)
            _walk_dir(entry.path, rel, rules, root_real, out)
            if len(out.files) == before and not any(k.startswith(rel + "/") for k in out.skipped):
                out.skipped[rel] = "empty directory (codebases store files; nothing to upload)"
        elif stat.S_ISREG(st.st_mode):
            if not os.access(entry.path, os.R_OK):
                out.skipped[rel] = "unreadable (permission denied)"
            else:
                out.files.append(LocalFile(rel, entry.path, st.st_size, st.st_mode & 0o777))
        else:
            out.skipped[rel] = "special file (fifo, socket or device); not uploaded"


def _join(a: str, b: str) -> str:
    return f"{a}/{b}" if a else b
