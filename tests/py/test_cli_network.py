"""`agentfense run --allow-net / --network` (embedded mode, docs/NETWORK.md): the same egress
filter as the server's, configured by flags, against the private lab network of netlab.py."""
from __future__ import annotations

import os

import pytest

import netlab
from cli_fixtures import assert_clean
from test_cli_run import run, sh


@pytest.fixture(scope="module")
def lab():
    if os.geteuid() != 0 and not os.environ.get("CI"):
        pytest.skip("needs root (network namespaces)")
    with netlab.Lab() as lab:
        yield lab


def curl(url: str) -> str:
    return f"curl -sS -f -m 5 {url} 2>&1; echo rc=$?"


def test_allow_net_reaches_only_what_it_lists(lab, tree, rundir):
    r = run(rundir, "run", *lab.cli_flags(), "--allow-net", "allowed.test:80", "--discard",
            str(tree), *sh(curl("http://allowed.test/") + "; " + curl("http://other.test/") + "; " +
                           curl(f"http://{netlab.ALLOWED_IP}/") + "; " +
                           curl("http://allowed.test:8080/") + "; cat /etc/resolv.conf"))
    assert r.returncode == 0, r.stderr
    out = r.stdout.split("rc=")
    assert "hello from 198.51.100.10 host=allowed.test" in out[0]
    assert "Could not resolve host: other.test" in out[1]
    assert "403" in out[2] and "hello" not in out[2]  # the raw address: not by name
    assert "hello" not in out[3]  # another port of the allowed name
    assert "nameserver 10.0.2.3" in r.stdout
    assert_clean(rundir)


def test_network_alone_is_every_public_destination(lab, tree, rundir):
    r = run(rundir, "run", *lab.cli_flags(), "--network", "--discard", str(tree),
            *sh(curl("http://other.test/") + "; " + curl(f"http://{netlab.HOST_SIDE}:9/")))
    assert r.returncode == 0, r.stderr
    assert "hello from 198.51.100.11" in r.stdout
    assert "error: 403" in r.stdout  # the host's own address stays out
    assert_clean(rundir)


def test_bad_rules_are_refused_before_anything_starts(tree, rundir):
    r = run(rundir, "run", "--allow-net", "github.com:99999", "--discard", str(tree), *sh("true"))
    assert r.returncode == 125
    assert "egress rule 0" in r.stderr and "bad port" in r.stderr
    r = run(rundir, "run", "--dns-server", "dns.example", "--network", "--discard", str(tree),
            *sh("true"))
    assert r.returncode == 125 and "--dns-server" in r.stderr
    assert_clean(rundir)
