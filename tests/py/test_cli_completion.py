"""The generated shell completions (src/cli/gen_cli_docs.py) loaded into real shells: bash (the
completion function driven through COMP_WORDS / COMP_CWORD, as bash's programmable completion
calls it) and zsh (a real interactive zsh under zpty, the file installed in $fpath as
docs/CLI.md says, or sourced after compinit). Every group's subcommands, every leaf's options,
the option values with fixed choices, and files where a path is expected."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD = Path(os.environ.get("AGENTFENSE_BUILD_DIR", REPO / "build"))
BINARY = BUILD / "bin" / "agentfense"
GENERATOR = REPO / "src" / "cli" / "gen_cli_docs.py"
ZSH_DRIVER = Path(__file__).with_name("zsh_complete.zsh")

ZSH = shutil.which("zsh")
BASH = shutil.which("bash")


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    out = tmp_path_factory.mktemp("completions")
    subprocess.run(["/usr/bin/python3", str(GENERATOR), str(BINARY), str(out)], check=True,
                   timeout=120)
    return out


@pytest.fixture(scope="module")
def tree():
    return json.loads(subprocess.run([str(BINARY), "_cli-tree"], capture_output=True, text=True,
                                     check=True).stdout)


@pytest.fixture(scope="module")
def presets():
    out = subprocess.run([str(BINARY), "policy", "presets", "--json"], capture_output=True,
                         text=True, check=True).stdout
    return {p["name"] for p in json.loads(out)}


@pytest.fixture(scope="module")
def cwd(tmp_path_factory):
    """Where completion runs: known files for the file-name cases."""
    d = tmp_path_factory.mktemp("cwd")
    (d / "alpha.txt").write_text("a")
    (d / "alps").mkdir()
    return d


def nodes(node):
    yield node
    for sub in node["subcommands"]:
        yield from nodes(sub)


def bash_complete(generated, cwd, lines):
    """The candidates bash offers for each line (a trailing space: an empty current word)."""
    script = ('source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); '
              'COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; _agentfense; '
              'printf "%s\\n" "${COMPREPLY[@]}"')
    results = []
    for line in lines:
        p = subprocess.run([BASH, "--norc", "--noprofile", "-c", script, "bash",
                            str(generated / "agentfense.bash"), *line.split(" ")],
                           capture_output=True, text=True, cwd=cwd, timeout=30)
        assert p.returncode == 0 and p.stderr == "", p.stderr
        results.append({w.rstrip("/") for w in p.stdout.splitlines() if w})
    return results


def zsh_complete(generated, cwd, lines, mode="fpath"):
    """The candidates zsh offers for each line, all typed into one interactive zsh."""
    p = subprocess.run([ZSH, "-f", str(ZSH_DRIVER), mode, str(generated / "_agentfense"),
                        *lines], capture_output=True, text=True, cwd=cwd, timeout=120)
    assert p.returncode == 0, p.stderr
    blocks = p.stdout.split("<<line>>\n")[1:]
    assert len(blocks) == len(lines), p.stdout
    return [{w.rstrip("/") for w in b.splitlines() if w} for b in blocks]


SHELLS = {"bash": bash_complete, "zsh": zsh_complete}


@pytest.fixture(params=["bash", "zsh"])
def check(request, generated, cwd):
    """check({line: expected candidates, ...}) completes every line in the shell and compares."""
    if shutil.which(request.param) is None:
        pytest.fail(f"{request.param} is not installed (scripts/bootstrap installs it)")

    def run(cases):
        lines = list(cases)
        got = SHELLS[request.param](generated, cwd, lines)
        for line, candidates in zip(lines, got):
            assert candidates == cases[line], f"{request.param}: {line!r}"
    return run


def test_generated_files_parse(generated):
    assert subprocess.run([BASH, "-n", str(generated / "agentfense.bash")]).returncode == 0
    assert subprocess.run([ZSH, "-n", str(generated / "_agentfense")]).returncode == 0
    assert (generated / "_agentfense").read_text().startswith("#compdef agentfense\n")


def test_choice_options_exist(tree, presets):
    spec = importlib.util.spec_from_file_location("gen_cli_docs", GENERATOR)
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    values = gen.choices(str(BINARY))
    assert set(values["--preset"]) == presets
    takes_value = {n for node in nodes(tree) for o in node["options"] if o["takes_value"]
                   for n in o["names"]}
    assert set(values) <= takes_value


def test_every_group_completes_its_subcommands(check, tree):
    check({" ".join(["agentfense", *n["path"].split(), ""]):
           {s["path"].split()[-1] for s in n["subcommands"]}
           for n in nodes(tree) if n["subcommands"]})


def test_every_leaf_completes_its_options(check, tree):
    check({" ".join(["agentfense", *n["path"].split(), "--"]):
           {name for o in n["options"] for name in o["names"] if name.startswith("--")}
           for n in nodes(tree) if n["path"] and not n["subcommands"]})


def test_prefixes_global_options_and_values(check, presets, tree):
    top = {s["path"] for s in tree["subcommands"]}
    check({
        "agentfense sandbox e": {"egress", "exec"},
        "agentfense se": {"session"},
        "agentfense sandbox exec --t": {"--timeout", "--token"},
        "agentfense sandbox exec -i": {"-i"},
        # A global option's value is not a command word; the path continues after it.
        "agentfense --endpoint 127.0.0.1:1 sandbox e": {"egress", "exec"},
        "agentfense --endpoint sandbox ": top,
        "agentfense sandbox create cb_1 --runtime ": {"bwrap", "docker"},
        "agentfense run --preset ": presets,
        "agentfense sandbox create cb_1 --preset a": {p for p in presets if p.startswith("a")},
        "agentfense sandbox create cb_1 --sync-mode o": {"on-exec", "on-stop"},
        "agentfense audit --kind ": {"denied", "lifecycle"},
        # Other values are file names; a value equal to a subcommand name stays a value.
        "agentfense run --rules-file al": {"alpha.txt", "alps"},
        "agentfense sandbox create --image exec al": {"alpha.txt", "alps"},
        # Positionals and the command after "--" are file names.
        "agentfense codebase upload cb_1 alp": {"alpha.txt", "alps"},
        "agentfense sandbox exec sb_1 -- ls alp": {"alpha.txt", "alps"},
        "agentfense sandbox exec sb_1 -- --t": set(),
    })


def test_zsh_sourced_after_compinit(generated, cwd):
    if ZSH is None:
        pytest.fail("zsh is not installed (scripts/bootstrap installs it)")
    assert zsh_complete(generated, cwd, ["agentfense sandbox e", "agentfense audit --kind d"],
                        mode="source") == [{"egress", "exec"}, {"denied"}]
