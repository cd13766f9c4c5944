"""Xen's own black-box tests, ``test-xenstore`` from xen-utils-4.17, against xsd.

Each of its 12 tests runs on its own (``-t NAME``) against the reference C xenstored first
(so a broken harness cannot pass for a broken daemon) and then against xsd. A test passes
when the program exits 0 and prints ``NAME: <n> ns`` and nothing else; a failing test
prints ``NAME: failed (ret = E, stage S)`` (and old builds still exit 0, so the output is
checked, not only the status). Afterwards the store must hold nothing but what C's holds.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.support.daemons import XEN_BIN
from tests.support.differential import PairPool, dump_tree, pool_fixture  # noqa: F401

TEST_XENSTORE = XEN_BIN / "test-xenstore"
TESTS = [
    "read 1",
    "read 2000",
    "write 1",
    "write 2000",
    "dir",
    "rm node",
    "rm dir",
    "ta empty",
    "ta empty x",
    "ta rmw",
    "ta rmw x",
    "ta err",
]


def run_test(sock: Path, name: str, env: dict[str, str], *extra: str) -> tuple[int, str]:
    r = subprocess.run(
        [str(TEST_XENSTORE), "-t", name, *extra],
        env=dict(env, XENSTORED_PATH=str(sock)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    return r.returncode, r.stdout + r.stderr


def assert_passed(name: str, rc: int, out: str, who: str) -> None:
    ok = re.fullmatch(rf"{re.escape(name)}\s*: \d+ ns\n", out)
    assert rc == 0 and ok, f"test-xenstore -t {name!r} against {who}: rc={rc}\n{out}"


def test_list_matches() -> None:
    """The program knows exactly the 12 tests parametrised below."""
    if not TEST_XENSTORE.exists():
        pytest.skip("xen-utils-4.17 not installed")
    out = subprocess.run([str(TEST_XENSTORE), "-l"], capture_output=True, text=True).stdout
    assert [line.split(":")[0].rstrip() for line in out.splitlines()] == TESTS


@pytest.mark.reference
@pytest.mark.parametrize("name", TESTS)
def test_xen_test(pool: PairPool, name: str, xs_env: dict[str, str]) -> None:
    try:
        pair = pool.get_pair()
        rc, out = run_test(pair.ref.socket, name, xs_env)
        assert_passed(name, rc, out, "C xenstored (harness check)")
        rc, out = run_test(pair.sut.socket, name, xs_env)
        assert_passed(name, rc, out, pair.sut_name)
        ref_tree, sut_tree = dump_tree(pair.ref.socket), dump_tree(pair.sut.socket)
        assert sut_tree == ref_tree, "test-xenstore left different trees behind"
    except BaseException:
        pool.discard()
        raise


@pytest.mark.reference
def test_all_iterated(pool: PairPool, xs_env: dict[str, str]) -> None:
    """All 12 in one run, 5 iterations each, as Xen's developers run it."""
    pair = pool.get_pair()
    r = subprocess.run(
        [str(TEST_XENSTORE), "-i", "5"],
        env=dict(xs_env, XENSTORED_PATH=str(pair.sut.socket)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "failed" not in r.stdout + r.stderr, r.stdout + r.stderr
    assert len(r.stdout.splitlines()) == 12, r.stdout
