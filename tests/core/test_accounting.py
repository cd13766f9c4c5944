"""What the store counts against quotas: each owner's nodes, open transactions.

Each owner's ``[nodes, bytes]`` is kept as nodes change, not recounted: after any mix of
changes it must be what a recount of the nodes gives. A privileged connection's
transaction is not counted as it goes (no quota applies to it); whatever asks for its
figures (the ``quota`` report, a quota that starts to apply with ``quota_privileged``)
must find them as a guest's counted transaction has them.
"""

from __future__ import annotations

from tests.core.test_engine import Session
from xsd.core.engine import Engine
from xsd_client.protocol import Op


def _usage(dom0: Session, domid: int) -> dict[str, int]:
    """``quota <domid>`` as a dict."""
    text = dom0.call(Op.CONTROL, "quota", str(domid)).decode().rstrip("\0")
    rows = text.splitlines()[1:]
    return {row.split(":")[0].strip(): int(row.split(":")[1]) for row in rows}


def _start(session: Session) -> int:
    return int(session.call(Op.TRANSACTION_START, "")[:-1])


def _same_work(session: Session, tx: int) -> None:
    home = "/local/domain/1"
    assert session.call(Op.WRITE, raw=f"{home}/a\0".encode() + b"v" * 100, tx=tx) == b"OK\0"
    assert session.call(Op.WRITE, raw=f"{home}/b/c\0w".encode(), tx=tx) == b"OK\0"
    assert session.call(Op.DIRECTORY, home, tx=tx) != b""
    assert session.call(Op.SET_PERMS, f"{home}/a", "n1", "r0", tx=tx) == b"OK\0"


def test_the_quota_report_counts_a_privileged_transaction_as_a_guests() -> None:
    engine = Engine()
    dom0 = Session(engine)
    assert dom0.call(Op.INTRODUCE, "1", "1", "1") == b"OK\0"
    assert dom0.call(Op.MKDIR, "/local/domain/1") == b"OK\0"
    assert dom0.call(Op.SET_PERMS, "/local/domain/1", "n1") == b"OK\0"
    guest = Session(engine, 1)
    counted, uncounted = _start(guest), _start(dom0)
    _same_work(guest, counted)
    _same_work(dom0, uncounted)
    memory = _usage(dom0, 1)["transaction-memory"]
    assert memory > 100
    assert _usage(dom0, 0)["transaction-memory"] == memory
    # Counted when asked, then changed again: asked again, it is still the same.
    for session, tx in ((guest, counted), (dom0, uncounted)):
        assert session.call(Op.RM, "/local/domain/1/b", tx=tx) == b"OK\0"
        assert session.call(Op.WRITE, raw=b"/local/domain/1/a\0x", tx=tx) == b"OK\0"
    memory = _usage(dom0, 1)["transaction-memory"]
    assert _usage(dom0, 0)["transaction-memory"] == memory
    assert dom0.call(Op.TRANSACTION_END, "T", tx=uncounted) == b"OK\0"
    assert _usage(dom0, 0)["transaction-memory"] == 0


def test_quota_privileged_counts_what_an_open_transaction_created_before() -> None:
    engine = Engine()
    dom0 = Session(engine)
    used = _usage(dom0, 0)["nodes"]
    assert dom0.call(Op.CONTROL, "quota", "set", "nodes", str(used + 3)) == b"OK\0"
    tx = _start(dom0)
    assert dom0.call(Op.WRITE, raw=b"/q/a\0v", tx=tx) == b"OK\0"  # /q and /q/a
    assert dom0.call(Op.WRITE, raw=b"/q/b\0v", tx=tx) == b"OK\0"  # used + 3: at the quota
    engine.state.settings.quota_privileged = True
    assert dom0.call(Op.WRITE, raw=b"/q/c\0v", tx=tx) == b"E:ENOSPC"
    assert dom0.call(Op.TRANSACTION_END, "T", tx=tx) == b"E:ENOMEM"
    assert dom0.call(Op.READ, "/q/a") == b"E:ENOENT"


def _usage_is_a_recount(engine: Engine) -> None:
    tree = engine.state.tree
    kept = {owner: usage for owner, usage in tree.usage.items() if usage != [0, 0]}
    assert kept == tree.count_usage()


def test_usage_follows_values_permissions_owners_and_children() -> None:
    engine = Engine()
    dom0 = Session(engine)
    assert dom0.call(Op.INTRODUCE, "1", "1", "1") == b"OK\0"
    for path in ("/a/b/c", "/a/b/d", "/a/e", "/local/domain/1/x"):
        assert dom0.call(Op.WRITE, raw=f"{path}\0v".encode()) == b"OK\0"
    _usage_is_a_recount(engine)
    assert dom0.call(Op.WRITE, raw=b"/a/b/c\0" + b"longer" * 20) == b"OK\0"  # value grows
    assert dom0.call(Op.SET_PERMS, "/a/b", "n1", "r0") == b"OK\0"  # new owner, an entry more
    assert dom0.call(Op.SET_PERMS, "/a/e", "r0") == b"OK\0"  # same owner
    assert dom0.call(Op.WRITE, raw=b"/a/b/f\0new") == b"OK\0"  # owned by 1, as its parent
    assert dom0.call(Op.RM, "/a/b/d") == b"OK\0"  # the parent's children only
    for path in ("/local/domain/1", "/local/domain/1/x"):
        assert dom0.call(Op.SET_PERMS, path, "n1") == b"OK\0"  # the guest's own
    _usage_is_a_recount(engine)
    guest = Session(engine, 1)
    assert guest.call(Op.WRITE, raw=b"/local/domain/1/y/z\0g") == b"OK\0"
    for session in (dom0, guest):
        tx = _start(session)
        assert session.call(Op.WRITE, raw=b"/local/domain/1/x\0" + b"w" * 50, tx=tx) == b"OK\0"
        assert session.call(Op.WRITE, raw=b"/local/domain/1/y/n\0", tx=tx) == b"OK\0"
        assert session.call(Op.RM, "/local/domain/1/y/z", tx=tx) == b"OK\0"
        assert session.call(Op.SET_PERMS, "/local/domain/1/x", "n1", "b0", tx=tx) == b"OK\0"
        assert session.call(Op.TRANSACTION_END, "T", tx=tx) == b"OK\0"
        _usage_is_a_recount(engine)
        assert guest.call(Op.WRITE, raw=b"/local/domain/1/y/z\0g") == b"OK\0"
    tx = _start(dom0)
    assert dom0.call(Op.SET_PERMS, "/a/b/c", "n0", tx=tx) == b"OK\0"  # owner back to 0
    assert dom0.call(Op.RM, "/a/b/f", tx=tx) == b"OK\0"
    assert dom0.call(Op.TRANSACTION_END, "T", tx=tx) == b"OK\0"
    assert dom0.call(Op.RM, "/a") == b"OK\0"
    _usage_is_a_recount(engine)
