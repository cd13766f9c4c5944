"""handover's records without a daemon: deltas, dumps made in steps, and their refusals."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from handover import records, stream
from handover.records import StateError
from tests.support.trees import _engine_with_tree, _same_tree
from xsd.core import perms as P
from xsd.core.engine import Engine
from xsd_client.protocol import Op, encode

# ---------------------------------------------------------------------------- deltas

_NAMES = ["a", "b", "c"]


def _paths() -> list[str]:
    out = []
    for x in _NAMES:
        out.append(f"/t/{x}")
        for y in _NAMES:
            out.append(f"/t/{x}/{y}")
            out.append(f"/t/{x}/{y}/z")
    return out


_OPS = st.lists(
    st.tuples(
        st.sampled_from(
            [
                "write",
                "rm",
                "perms",
                "mkdir",
                "tx-write",
                "tx-rm",
                "introduce",
                "release",
                "watchdog",
                "time",
            ]
        ),
        st.sampled_from(_paths()),
        st.integers(0, 3),
    ),
    max_size=25,
)


def _apply(engine: Engine, conn: int, ops: list[tuple[str, str, int]]) -> None:
    """Play ``ops`` as domain 0; besides the store's own operations, domains come and go
    (their watchdog nodes with them) and armed watchdogs fire as time passes."""
    for rid, (op, path, n) in enumerate(ops, 100):
        now = engine.now + 1_000_000  # a millisecond a step

        def send(kind: Op, payload: str, tx: int = 0) -> None:
            engine.receive(conn, encode(kind, rid, tx, payload.encode()), now)  # noqa: B023

        domain = f"/local/domain/{6 + n}"
        if op == "write":
            send(Op.WRITE, f"{path}\0v{n}")
        elif op == "rm":
            send(Op.RM, f"{path}\0")
        elif op == "perms":
            send(Op.SET_PERMS, f"{path}\0n{n}\0r{n + 1}\0")
        elif op == "mkdir":
            send(Op.MKDIR, f"{path}\0")
        elif op == "introduce":
            send(Op.INTRODUCE, f"{6 + n}\0001\0001\0")
        elif op == "release":
            send(Op.RELEASE, f"{6 + n}\0")
        elif op == "watchdog":
            send(Op.WRITE, f"{domain}/watchdog/0/timeout\0{10 + n}")
            send(Op.WRITE, f"{domain}/watchdog/0/control\0arm")
        elif op == "time":
            engine.tick(now + (n + 1) * 5_000_000)  # expiries write the watchdog nodes
        else:
            send(Op.TRANSACTION_START, "\0")
            tx = max(engine.state.connections[conn].transactions)
            body = f"{path}\0t{n}" if op == "tx-write" else f"{path}\0"
            send(Op.WRITE if op == "tx-write" else Op.RM, body, tx)
            send(Op.TRANSACTION_END, "T\0", tx)


def _delta_round_trip(engine: Engine, conn: int, ops: list[tuple[str, str, int]]) -> list[Any]:
    ahead = records.dump_ahead(engine.state.tree)
    _apply(engine, conn, ops)
    recs = list(records.dump(engine.state, None, ahead))
    again, _ = records.load(stream.decode_state(stream.encode_state(recs)))
    _same_tree(engine.state.tree, again.tree)
    # the usage travels; recounted from the kept dump and the delta, it is the same
    recount = list(records.dump(engine.state, None, ahead, with_usage=False))
    again, _ = records.load(stream.decode_state(stream.encode_state(recount)))
    _same_tree(engine.state.tree, again.tree)
    return recs


@settings(max_examples=200, deadline=None)
@given(before=_OPS, after=_OPS)
def test_a_kept_dump_and_the_delta_since_load_the_current_tree(
    before: list[tuple[str, str, int]], after: list[tuple[str, str, int]]
) -> None:
    engine = _engine_with_tree()
    conn = next(iter(engine.state.connections))
    _apply(engine, conn, before)
    _delta_round_trip(engine, conn, after)


def test_a_delta_carries_released_domains_and_flagged_acls() -> None:
    engine = _engine_with_tree()
    conn = next(iter(engine.state.connections))
    ahead = records.dump_ahead(engine.state.tree)
    engine.receive(conn, encode(Op.RELEASE, 50, 0, b"5\0"), 0)  # /a/b1 granted r5
    engine.receive(conn, encode(Op.WRITE, 51, 0, b"/new/node\0x"), 0)
    recs = list(records.dump(engine.state, None, ahead))
    assert [r[0] for r in recs if isinstance(r, list)].count("delta") == 1
    assert ahead.packed in recs
    again, _ = records.load(stream.decode_state(stream.encode_state(recs)))
    _same_tree(engine.state.tree, again.tree)
    assert again.tree.nodes["/a/b1"].perms == ((0, 0), (P.READ | P.IGNORE, 5))
    # recounted rather than taken: the delta recharges the owners
    recs = list(records.dump(engine.state, None, ahead, with_usage=False))
    again, _ = records.load(stream.decode_state(stream.encode_state(recs)))
    _same_tree(engine.state.tree, again.tree)


def test_named_domains_travel_and_earlier_domain_records_load_as_introduced() -> None:
    """Domains domain 0 named but did not introduce stay so across a live update; a
    ``domain`` record of an earlier version (no ``introduced``) is an introduced one."""
    engine = _engine_with_tree()  # introduces 5, names 7 in a permission
    conn = next(iter(engine.state.connections))
    engine.receive(conn, encode(Op.SET_PERMS, 60, 0, b"/a/b0\0n9\0r8\0"), 0)
    named = {d: dom.introduced for d, dom in engine.state.domains.items()}
    assert named == {0: True, 5: True, 7: False, 9: False, 8: False}
    recs = list(stream.decode_state(stream.encode_state(list(records.dump(engine.state)))))
    again, _ = records.load(recs)
    assert {d: dom.introduced for d, dom in again.domains.items()} == named
    moved = Engine(again)
    dom0 = next(iter(again.connections))
    moved.receive(dom0, encode(Op.IS_DOMAIN_INTRODUCED, 61, 0, b"9\0"), 0)
    moved.receive(dom0, encode(Op.INTRODUCE, 62, 0, b"9\0001\0001\0"), 0)
    moved.receive(dom0, encode(Op.IS_DOMAIN_INTRODUCED, 63, 0, b"9\0"), 0)
    out = b"".join(frame for frame, _, _ in again.connections[dom0].out)
    assert b"F\0" in out and out.endswith(b"T\0")
    assert again.domains[9].introduced and again.tree.nodes["/a/b0"].perms[0] == (0, 9)
    # as an earlier version wrote it: eight fields, every domain it knew introduced
    old = [r[:8] if r[0] == "domain" else r for r in recs]
    earlier, _ = records.load(old)
    assert all(dom.introduced for dom in earlier.domains.values())
    bad = [[*r, True, 1] if r[0] == "domain" else r for r in recs]
    with pytest.raises(StateError, match="unknown fields"):
        records.load(bad)


def test_too_many_changes_mean_a_full_dump() -> None:
    engine = _engine_with_tree()
    conn = next(iter(engine.state.connections))
    ahead = records.dump_ahead(engine.state.tree)
    _apply(engine, conn, [("write", f"/many/n{i}", 0) for i in range(200)])
    recs = list(records.dump(engine.state, None, ahead))
    again, _ = records.load(stream.decode_state(stream.encode_state(recs)))
    _same_tree(engine.state.tree, again.tree)
    assert ahead.packed not in recs
    assert not any(isinstance(r, list) and r[0] == "delta" for r in recs)


def _delta_recs() -> list[Any]:
    engine = _engine_with_tree()
    conn = next(iter(engine.state.connections))
    ahead = records.dump_ahead(engine.state.tree)
    _apply(engine, conn, [("write", "/t/a/b", 1), ("rm", "/a/b3", 0)])
    recs = list(records.dump(engine.state, None, ahead))
    return list(stream.decode_state(stream.encode_state(recs)))


def _with_delta(change: Any) -> list[Any]:
    recs = _delta_recs()
    change(next(r for r in recs if r[0] == "delta")[1])
    return recs


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.__setitem__(0, ["/", None]), "removes /|no parent listing"),
        (lambda d: d.append(["/", None]), "appears twice"),
        (lambda d: d.__setitem__(1, ["/a", None]), "disagree|no parent listing"),
        (lambda d: d.append(["/a/b0", None]), "disagree|no parent listing"),
        (lambda d: d.append(["/nowhere/x", b"", 0, 1, []]), "disagree"),
        (lambda d: d.__setitem__(1, ["/a", b"", 0, 1, ["b0", "b1", "b2", "ghost"]]), "not exist"),
        (lambda d: d.__setitem__(1, ["/a", b"", 0, 1, ["b0", "b1"]]), "no parent listing"),
        (lambda d: d.__setitem__(1, ["/a", b"", 0, 1, ["b0", "b/1"]]), "invalid child name"),
        (lambda d: d.__setitem__(1, ["/a", b"", 999, 1, []]), "names no permission"),
        (lambda d: d.__setitem__(1, ["/a", "text", 0, 1, []]), "malformed"),
        (lambda d: d.append(["a", None]), "no valid path"),
    ],
)
def test_malformed_deltas_are_refused(change: Any, message: str) -> None:
    good = _delta_recs()
    records.load(good)  # the unchanged one loads
    with pytest.raises(StateError, match=message):
        records.load(_with_delta(change))


@settings(max_examples=200, deadline=None)
@given(during=st.lists(_OPS, min_size=1, max_size=12), after=_OPS)
def test_a_dump_made_in_steps_while_the_tree_changes_loads_the_current_tree(
    during: list[list[tuple[str, str, int]]], after: list[tuple[str, str, int]]
) -> None:
    """The dry run dumps the tree in steps and serves between them: the kept dump is
    fuzzy, and the delta at -s must make it exact."""
    import handover.tree_columns

    engine = _engine_with_tree()
    conn = next(iter(engine.state.connections))
    _apply(engine, conn, [("write", f"/t/{x}/{y}/z", 0) for x in _NAMES for y in _NAMES])
    saved = handover.tree_columns.STEP_NODES
    handover.tree_columns.STEP_NODES = 3  # a step every few nodes
    try:
        steps = records.dump_ahead_steps(engine.state.tree)
        batches = iter(during)
        while True:
            try:
                next(steps)
            except StopIteration as done:
                ahead = done.value
                break
            _apply(engine, conn, next(batches, []))
    finally:
        handover.tree_columns.STEP_NODES = saved
    _apply(engine, conn, after)
    recs = list(records.dump(engine.state, None, ahead))
    again, _ = records.load(stream.decode_state(stream.encode_state(recs)))
    _same_tree(engine.state.tree, again.tree)


def test_a_big_state_is_checked_while_it_is_unpacked() -> None:
    """From 1 MiB on the checksum runs beside the unpacking: still nothing comes back
    from a damaged stream, and the damage is reported as such."""
    engine = Engine()
    dom0 = engine.connect(0)
    for i in range(400):
        engine.receive(dom0, encode(Op.WRITE, i, 0, b"/big/n%d\0" % i + b"x" * 4000), 0)
    blob = stream.encode_state(records.dump(engine.state))
    assert len(blob) > stream.PARALLEL_CHECK_BYTES
    state, _ = records.load(stream.decode_state(blob))
    assert state.tree.nodes["/big/n399"].value == b"x" * 4000
    for where in (len(blob) // 2, 40):  # inside a value; in the records' structure
        damaged = bytearray(blob)
        damaged[where] ^= 0xFF
        with pytest.raises(StateError, match="checksum mismatch"):
            stream.decode_state(bytes(damaged))


def test_a_stream_written_to_a_memfd_in_parts_is_the_encoded_stream() -> None:
    import os

    from handover import transports

    recs = list(records.dump(_engine_with_tree().state, {"k": 1}))
    fd = transports.write_memfd_stream(stream.pack_each(recs))
    try:
        assert bytes(transports.read_fd(fd)) == stream.encode_state(recs)
    finally:
        os.close(fd)


def test_child_lists_after_a_delta_hold_the_key_strings() -> None:
    engine = _engine_with_tree()
    conn = next(iter(engine.state.connections))
    ahead = records.dump_ahead(engine.state.tree)
    _apply(engine, conn, [("write", "/a/b0/new", 0), ("rm", "/a/b1", 0), ("write", "/t/a/b", 1)])
    recs = list(records.dump(engine.state, None, ahead))
    again, _ = records.load(stream.decode_state(stream.encode_state(recs)))
    _same_tree(engine.state.tree, again.tree)
    keys = {id(k) for k in again.tree.nodes}
    assert all(id(c) in keys for n in again.tree.nodes.values() for c in n.children)
