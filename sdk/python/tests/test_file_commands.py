"""The shell commands behind Sandbox.read_file/write_file/list_files quote every path, including
ones that look like options or carry shell syntax (the commands run in the sandbox, but a file name
must never become code or an option)."""
import shlex
import subprocess

import pytest

from agentfense import InvalidConfigurationError
from agentfense import _high as h


@pytest.mark.parametrize("name", ["-rf", "a b", "$(touch PWNED)", "x;touch PWNED", "`id`", "it's", "--help"])
def test_paths_stay_one_word(tmp_path, name):
    (tmp_path / name).write_text("content")
    r = subprocess.run(["sh", "-c", h.read_cmd(name)], cwd=tmp_path, capture_output=True, text=True)
    assert r.stdout == "content" and r.returncode == 0
    w = subprocess.run(["sh", "-c", h.write_cmd("sub/" + name)], cwd=tmp_path, input="aGk=", text=True,
                       capture_output=True)
    assert w.returncode == 0 and (tmp_path / "sub" / name).read_text() == "hi"
    ls = subprocess.run(["sh", "-c", h.list_cmd(".", False)], cwd=tmp_path, capture_output=True, text=True)
    assert name in ls.stdout
    assert not (tmp_path / "PWNED").exists()
    assert shlex.split(h.read_cmd(name))[-1].lstrip("./") == name.lstrip("./")


def test_bad_paths():
    for bad in ["", "a\0b"]:
        with pytest.raises(InvalidConfigurationError):
            h.read_cmd(bad)
