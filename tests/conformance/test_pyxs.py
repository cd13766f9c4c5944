"""pyxs (PyPI), a pure-Python xenstore client, against xsd.

Every scenario runs against xsd and asserts what pyxs must see; the same scenario also runs
against the reference C xenstored and must observe exactly the same, so the expectations
below are C's behaviour and not our guess of it.
"""

from __future__ import annotations

import errno
import queue
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.differential import PairPool, pool_fixture  # noqa: F401

pyxs = pytest.importorskip("pyxs")
from pyxs.exceptions import PyXSError  # noqa: E402

Obs = list[object]


def client(sock: Path) -> pyxs.Client:
    return pyxs.Client(unix_socket_path=str(sock))


def err(fn: Callable[[], object]) -> object:
    """The call's result, or the errno name of the PyXSError it raised."""
    try:
        return fn()
    except PyXSError as e:
        return errno.errorcode.get(e.args[0], e.args[0])


def next_event(m: pyxs.client.Monitor, timeout: float = 2.0) -> tuple[bytes, bytes] | None:
    try:
        path, token = m.events.get(timeout=timeout)
    except queue.Empty:
        return None
    return bytes(path), bytes(token)


def read_write(sock: Path) -> Obs:
    with client(sock) as c:
        c.write(b"/py/a", b"1")
        c.mkdir(b"/py/b")  # pyxs refuses to write an empty value itself
        c.write(b"/py/bin", b"sp ace ~!\x7f")
        c.write(b"/py/deep/er/est", b"x" * 3000)
        c.mkdir(b"/py/dir")
        c.mkdir(b"/py/a")  # exists: value kept
        return [
            c.read(b"/py/a"),
            c.read(b"/py/b"),
            c.read(b"/py/bin"),
            len(c.read(b"/py/deep/er/est")),
            c.read(b"/py/dir"),
            err(lambda: c.read(b"/py/missing")),
            c.read(b"/py/missing", b"default"),
            c.exists(b"/py/a"),
            c.exists(b"/py/missing"),
            c.get_domain_path(0),
            c.get_domain_path(7),
        ]


def listing(sock: Path) -> Obs:
    with client(sock) as c:
        for name in (b"zeta", b"alpha", b"mid"):
            c.write(b"/ls/" + name, name)
        c.write(b"/ls/alpha/child", b"c")
        out: Obs = [c.list(b"/ls"), c.list(b"/ls/zeta"), err(lambda: c.list(b"/nope"))]
        c.delete(b"/ls/alpha")
        out += [
            c.list(b"/ls"),
            err(lambda: c.delete(b"/ls/gone/deeper")),
            err(lambda: c.delete(b"/")),
            list(c.walk(b"/ls")),
        ]
        return out


def permissions(sock: Path) -> Obs:
    with client(sock) as c:
        c.write(b"/perm/a", b"v")
        out: Obs = [c.get_perms(b"/perm/a")]
        c.set_perms(b"/perm/a", [b"n0", b"r1", b"w2", b"b3"])
        out.append(c.get_perms(b"/perm/a"))
        c.write(b"/perm/a/child", b"inherit")
        out.append(c.get_perms(b"/perm/a/child"))
        out.append(err(lambda: c.set_perms(b"/perm/missing", [b"n0"])))
        out.append(err(lambda: c.get_perms(b"/perm/missing")))
        c.set_perms(b"/perm/a", [b"r0"])
        out.append(c.get_perms(b"/perm/a"))
        return out


def transactions(sock: Path) -> Obs:
    with client(sock) as c, client(sock) as other:
        c.write(b"/tx/a", b"a")
        out: Obs = []
        c.transaction()
        out.append(c.read(b"/tx/a"))
        c.write(b"/tx/a", b"b")
        out += [c.read(b"/tx/a"), other.read(b"/tx/a")]
        out.append(c.commit())
        out.append(other.read(b"/tx/a"))
        c.transaction()
        c.write(b"/tx/a", b"aborted")
        c.rollback()
        out.append(c.read(b"/tx/a"))
        # a conflict: commit returns False (EAGAIN)
        c.transaction()
        out.append(c.read(b"/tx/a"))
        other.write(b"/tx/a", b"outside")
        c.write(b"/tx/a", b"mine")
        out.append(c.commit())
        out.append(c.read(b"/tx/a"))
        # retried, it commits
        for _ in range(5):
            c.transaction()
            v = c.read(b"/tx/a")
            c.write(b"/tx/a", v + b"+1")
            if c.commit():
                break
        out.append(c.read(b"/tx/a"))
        out.append(err(c.transaction))
        out.append(err(c.transaction))  # already in one: pyxs refuses itself
        c.rollback()
        return out


def watches(sock: Path) -> Obs:
    with client(sock) as c, client(sock) as writer:
        m = c.monitor()
        m.watch(b"/w", b"tok")
        out: Obs = [next_event(m)]
        writer.write(b"/w/x", b"1")
        out.append(next_event(m))
        writer.write(b"/elsewhere", b"1")
        writer.write(b"/w", b"2")
        out.append(next_event(m))
        writer.transaction()
        writer.write(b"/w/tx", b"t")
        out.append(next_event(m, 0.3))  # nothing before commit
        writer.commit()
        out.append(next_event(m))
        writer.delete(b"/w")
        out += [next_event(m), next_event(m, 0.3)]  # RM: one event for the watched top
        out.append(err(lambda: m.watch(b"/w", b"tok")))  # duplicate
        m.unwatch(b"/w", b"tok")
        writer.write(b"/w", b"after unwatch")
        out.append(next_event(m, 0.3))
        out.append(err(lambda: m.unwatch(b"/w", b"tok")))
        m.watch(b"@introduceDomain", b"intro")
        out.append(next_event(m))
        return out


def threads(sock: Path) -> Obs:
    """Four pyxs clients in threads, each writing its own keys, all land."""

    def work(i: int) -> None:
        with client(sock) as c:
            for j in range(50):
                c.write(f"/thr/{i}/{j}".encode(), str(j).encode())

    ts = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(30)
    with client(sock) as c:
        return [sorted(c.list(b"/thr")), [len(c.list(f"/thr/{i}".encode())) for i in range(4)]]


SCENARIOS: dict[str, tuple[Callable[[Path], Obs], Obs]] = {
    "read-write": (
        read_write,
        [
            b"1",
            b"",
            b"sp ace ~!\x7f",
            3000,
            b"",
            "ENOENT",
            b"default",
            True,
            False,
            b"/local/domain/0",
            b"/local/domain/7",
        ],
    ),
    "list": (
        listing,
        [
            [b"zeta", b"alpha", b"mid"],
            [],
            "ENOENT",
            [b"zeta", b"mid"],
            "ENOENT",
            "EINVAL",
            [
                (b"/ls", b"", [b"zeta", b"mid"]),
                (b"/ls/zeta", b"zeta", []),
                (b"/ls/mid", b"mid", []),
            ],
        ],
    ),
    "permissions": (
        permissions,
        [
            [b"n0"],
            [b"n0", b"r1", b"w2", b"b3"],
            [b"n0", b"r1", b"w2", b"b3"],
            "ENOENT",
            "ENOENT",
            [b"r0"],
        ],
    ),
    "transactions": (
        transactions,
        [
            b"a",
            b"b",
            b"a",
            True,
            b"b",
            b"b",
            b"b",
            False,
            b"outside",
            b"outside+1",
            1 * 0,
            "EALREADY",
        ],
    ),
    "watches": (
        watches,
        [
            (b"/w", b"tok"),
            (b"/w/x", b"tok"),
            (b"/w", b"tok"),
            None,
            (b"/w/tx", b"tok"),
            (b"/w", b"tok"),
            None,
            "EEXIST",
            None,
            "ENOENT",
            (b"@introduceDomain", b"intro"),
        ],
    ),
    "threads": (threads, [[b"0", b"1", b"2", b"3"], [50, 50, 50, 50]]),
}


@pytest.mark.reference
@pytest.mark.parametrize("name", list(SCENARIOS))
def test_pyxs(pool: PairPool, name: str) -> None:
    scenario, expected = SCENARIOS[name]
    try:
        pair = pool.get_pair()
        ref = scenario(pair.ref.socket)
        got = scenario(pair.sut.socket)
    except BaseException:
        pool.discard()
        raise
    if name == "transactions":  # the id of a fresh transaction is whatever the daemon picks
        assert isinstance(ref[10], int) and isinstance(got[10], int)
        ref[10] = got[10] = 0
    assert ref == expected, f"harness: C xenstored gave {ref}"
    assert got == ref, f"pyxs {name}: C xenstored {ref}\n{pair.sut_name:>12} {got}"
