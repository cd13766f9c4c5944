"""Differential tests, generated: random request sequences to C xenstored and to xsd.

Hypothesis draws sequences of requests over a few paths, values, permissions and domains;
each is played against a shared pair of daemons (cleaned between cases) and the replies,
events and trees must be identical, as for the hand-written scripts of
``test_differential.py``.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.differential import (  # noqa: F401
    TX,
    PairPool,
    Step,
    compare,
    p,
    pool_fixture,
    run_script,
    s,
    sut_label,
    w,
)
from tests.support.differential_scripts import BAD_PATHS, O

# --- Generated sequences -----------------------------------------------------------------

PATHS = ["/a", "/a/b", "/a/b/c", "/a/c", "/b", "/b/a", "a", "a/b", "/a/b/c/d"]
PATHS += ["/local/domain/5/x", "/local/domain/6", "/local/domain/7/y/z"]
DOMIDS = [5, 6, 7]
VALUES = [b"", b"v", b"w", b"\0x", b"x" * 50]
PERMS = [("n0",), ("r0",), ("n0", "r1"), ("b3", "w0"), ("n5", "r6"), ("b7",), ("n0", "w5")]


@st.composite
def gen_step(draw: st.DrawFn) -> Step:
    conn = draw(st.integers(0, 1))
    kind = draw(
        st.sampled_from(
            [
                "write",
                "write",
                "read",
                "read",
                "mkdir",
                "rm",
                "dir",
                "dirpart",
                "getperms",
                "setperms",
                "watch",
                "unwatch",
                "start",
                "commit",
                "abort",
                "reset",
                "odd",
                "domain",
            ]
        )
    )
    path = draw(st.sampled_from(PATHS))
    intx = draw(st.booleans())
    tx = TX if intx else 0
    if kind == "write":
        return w(conn, path, draw(st.sampled_from(VALUES)), tx=tx)
    if kind in ("read", "mkdir", "rm", "dir", "getperms"):
        op = {
            "read": O.READ,
            "mkdir": O.MKDIR,
            "rm": O.RM,
            "dir": O.DIRECTORY,
            "getperms": O.GET_PERMS,
        }[kind]
        return s(conn, op, path, tx=tx)
    if kind == "dirpart":
        return s(conn, O.DIRECTORY_PART, path, draw(st.sampled_from([0, 2, 100])), tx=tx)
    if kind == "setperms":
        return s(conn, O.SET_PERMS, path, *draw(st.sampled_from(PERMS)), tx=tx)
    if kind in ("watch", "unwatch"):
        op = O.WATCH if kind == "watch" else O.UNWATCH
        return s(conn, op, path, draw(st.sampled_from(["t", "u"])))
    if kind == "start":
        return p(conn, O.TRANSACTION_START, b"\0")
    if kind == "reset":
        return p(conn, O.RESET_WATCHES, b"")
    if kind == "domain":  # domains come and go (not SET_TARGET: docs/differences.md)
        domid = draw(st.sampled_from(DOMIDS))
        return draw(
            st.sampled_from(
                [
                    s(0, O.INTRODUCE, domid, 1, draw(st.sampled_from([1, 2]))),
                    s(0, O.RELEASE, domid),
                    s(conn, O.IS_DOMAIN_INTRODUCED, domid),
                    s(conn, O.GET_DOMAIN_PATH, domid),
                    s(0, O.RESUME, domid),
                    s(
                        conn,
                        O.WATCH,
                        draw(st.sampled_from(["@introduceDomain", "@releaseDomain"])),
                        "d",
                    ),
                ]
            )
        )
    if kind == "odd":  # malformed or unusual requests in the middle of the rest
        return draw(
            st.sampled_from(
                [
                    p(conn, O.READ, draw(st.sampled_from(BAD_PATHS)) + b"\0", tx=tx),
                    p(conn, O.WRITE, draw(st.sampled_from(BAD_PATHS)) + b"\0v", tx=tx),
                    p(conn, O.TRANSACTION_START, b"\0", tx=TX),
                    p(conn, O.TRANSACTION_END, b"T\0", tx=77),
                    p(conn, O.READ, path.encode() + b"\0", tx=77),
                    p(conn, 27, b"\0", tx=tx),
                    s(conn, O.GET_DOMAIN_PATH, 0, tx=tx),
                    s(conn, O.WATCH, "@introduceDomain", "i"),
                ]
            )
        )
    return p(conn, O.TRANSACTION_END, b"T\0" if kind == "commit" else b"F\0", tx=TX)


EXAMPLES = int(os.environ.get("XSD_HYPOTHESIS_EXAMPLES", "60"))
CLEANUP = [s(0, O.RM, top) for top in ("/a", "/b", "/local")]
CLEANUP += [s(0, O.RELEASE, domid) for domid in DOMIDS]


@pytest.mark.reference
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
@given(steps=st.lists(gen_step(), min_size=1, max_size=25))
def test_generated(pool: PairPool, steps: list[Step]) -> None:
    ref, sut = pool.get()
    try:
        for daemon in (ref, sut):
            run_script(daemon.socket, CLEANUP, nconns=1)
        compare(ref.socket, sut.socket, steps, nconns=2, got_name=sut_label())
    except BaseException:
        pool.discard()
        raise
