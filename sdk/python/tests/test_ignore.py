"""from_local's file selection on real directories: gitignore semantics (negation, anchors,
directory patterns, nested files, .sandboxignore), defaults, symlinks in and out of the tree,
exec bits, empty dirs, special files."""
import json
import os
from pathlib import Path

import pytest

from agentfense.ignore import compile_pattern, is_ignored, parse_ignore_text, walk_tree


def make(root, files):
    for rel, content in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(content)


def rels(w):
    return [f.rel for f in w.files]


def _shared_cases():
    # The same cases run in the TypeScript SDK's tests (one table, two ports of the rules).
    path = Path(__file__).resolve().parents[2] / "testdata" / "gitignore_cases.json"
    return [tuple(c) for c in json.loads(path.read_text())["cases"]]


@pytest.mark.parametrize("pattern,path,is_dir,expected", _shared_cases())
def test_pattern(pattern, path, is_dir, expected):
    assert compile_pattern(pattern).matches(path, is_dir) is expected


def test_comments_blank_lines_and_last_match_wins():
    rules = parse_ignore_text("# comment\n\n*.log\n!keep.log\n   \n")
    assert len(rules) == 2
    assert is_ignored(rules, "x.log", False)
    assert not is_ignored(rules, "d/keep.log", False)
    assert is_ignored(rules + parse_ignore_text("keep.log"), "keep.log", False)


def test_walk_gitignore_negation_anchors_and_nested(tmp_path):
    make(tmp_path, {
        ".gitignore": "*.log\n!important.log\n/build/\ntmp/\n",
        "a.log": "", "important.log": "", "src/b.log": "", "src/important.log": "",
        "build/out.o": "", "src/build/keep.c": "", "src/tmp/x": "", "tmp/y": "",
        "src/.gitignore": "*.c\n!keep.c\n*.txt\n",
        "src/gen.c": "", "src/notes.txt": "", "notes.txt": "",
        "src/main.py": "",
    })
    w = walk_tree(str(tmp_path))
    assert rels(w) == [".gitignore", "important.log", "notes.txt", "src/.gitignore", "src/build/keep.c",
                       "src/important.log", "src/main.py"]
    assert w.ignored >= 6


def test_cannot_reinclude_below_an_excluded_directory(tmp_path):
    make(tmp_path, {".gitignore": "logs/\n!logs/keep.txt\n", "logs/keep.txt": "", "logs/x.txt": ""})
    assert rels(walk_tree(str(tmp_path))) == [".gitignore"]
    # ...but "logs/*" excludes the files, not the directory, so a negation works (git's documented example)
    make(tmp_path, {".gitignore": "logs/*\n!logs/keep.txt\n"})
    assert rels(walk_tree(str(tmp_path))) == [".gitignore", "logs/keep.txt"]


def test_sandboxignore_overrides_gitignore_and_extra_patterns(tmp_path):
    make(tmp_path, {".gitignore": "*.dat\n", ".sandboxignore": "!small.dat\nbig/\n",
                    "small.dat": "", "large.dat": "", "big/f": "", "keep.md": "", "drop.md": ""})
    w = walk_tree(str(tmp_path), extra_patterns=["drop.md"])
    assert rels(w) == [".gitignore", ".sandboxignore", "keep.md", "small.dat"]


def test_default_ignores_and_opt_out(tmp_path):
    make(tmp_path, {".git/config": "", "node_modules/x/index.js": "", "__pycache__/m.pyc": "",
                    "pkg/__pycache__/n.pyc": "", "a.pyc": "", ".env": "S=1", ".env.local": "S=2",
                    ".venv/bin/python": "", "app.py": ""})
    assert rels(walk_tree(str(tmp_path))) == ["app.py"]
    assert len(rels(walk_tree(str(tmp_path), use_defaults=False))) == 9
    # a user negation re-includes a default-ignored file
    make(tmp_path, {".gitignore": "!.env.local\n"})
    assert ".env.local" in rels(walk_tree(str(tmp_path)))


def test_symlinks_never_leave_the_tree(tmp_path):
    outside = tmp_path / "outside"
    make(outside, {"credentials": "AKIA-CANARY", "dir/x": "CANARY"})
    root = tmp_path / "proj"
    make(root, {"real.txt": "in-tree", "sub/data.txt": "d"})
    os.symlink(outside / "credentials", root / "creds")
    os.symlink("../outside/dir", root / "outdir")
    os.symlink("real.txt", root / "alias.txt")
    os.symlink("sub", root / "subalias")
    os.symlink("/nonexistent/x", root / "broken")
    os.symlink("../../proj/real.txt", root / "sub/roundabout.txt")  # leaves and re-enters: still inside
    w = walk_tree(str(root))
    assert rels(w) == ["alias.txt", "real.txt", "sub/data.txt", "sub/roundabout.txt"]
    alias = next(f for f in w.files if f.rel == "alias.txt")
    assert alias.abs_path == os.path.realpath(root / "real.txt")
    assert "outside the tree" in w.skipped["creds"]
    assert "outside the tree" in w.skipped["outdir"]
    assert "directory" in w.skipped["subalias"]
    assert w.skipped["broken"] == "broken symlink"
    for f in w.files:  # nothing read from outside
        assert os.path.realpath(f.abs_path).startswith(str(root))


def test_root_given_through_a_symlink(tmp_path):
    make(tmp_path / "real", {"a.txt": "x"})
    os.symlink(tmp_path / "real", tmp_path / "link")
    os.symlink(tmp_path / "real" / "a.txt", tmp_path / "real" / "b.txt")
    assert rels(walk_tree(str(tmp_path / "link"))) == ["a.txt", "b.txt"]


def test_exec_bits_empty_dirs_and_special_files(tmp_path):
    make(tmp_path, {"run.sh": "#!/bin/sh\n", "data.txt": ""})
    os.chmod(tmp_path / "run.sh", 0o755)
    os.chmod(tmp_path / "data.txt", 0o640)
    (tmp_path / "empty" / "nested").mkdir(parents=True)
    os.mkfifo(tmp_path / "pipe")
    w = walk_tree(str(tmp_path))
    modes = {f.rel: f.mode for f in w.files}
    assert modes == {"data.txt": 0o640, "run.sh": 0o755}
    assert "empty directory" in w.skipped["empty/nested"]
    assert "special file" in w.skipped["pipe"]


def test_large_tree_walk(tmp_path):
    for d in range(10):
        (tmp_path / f"d{d}").mkdir()
        for i in range(300):
            (tmp_path / f"d{d}" / f"f{i}.txt").write_text("x")
    w = walk_tree(str(tmp_path))
    assert len(w.files) == 3000 and w.total_bytes == 3000 and not w.skipped


def test_link_to_an_ignored_file_is_not_uploaded(tmp_path):
    make(tmp_path, {".env": "SECRET=CANARY", ".gitignore": "private/\n", "private/key": "K", "ok.txt": "x"})
    os.symlink(".env", tmp_path / "leak")
    os.symlink("private/key", tmp_path / "leak2")
    os.symlink("ok.txt", tmp_path / "fine")
    w = walk_tree(str(tmp_path))
    assert rels(w) == [".gitignore", "fine", "ok.txt"]
    assert "ignored" in w.skipped["leak"] and "ignored" in w.skipped["leak2"]


def test_non_utf8_names_are_reported(tmp_path):
    open(os.path.join(os.fsencode(tmp_path), b"bad\xffname"), "w").close()
    (tmp_path / "good").write_text("g")
    w = walk_tree(str(tmp_path))
    assert rels(w) == ["good"]
    assert list(w.skipped.values()) == ["name is not valid UTF-8; cannot be uploaded"]
