"""handover's records without a daemon: the tree columns, refusals, and old formats."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from handover import records, stream
from handover.records import StateError
from xsd.core.engine import Engine
from xsd.core.state import State
from xsd.core.tree import Tree, node_cost
from xsd_client.protocol import Op, encode

FIXTURES = Path(__file__).parent / "fixtures"


def _engine_with_tree() -> Engine:
    """A store with depth, siblings, several owners and permission lists."""
    engine = Engine()
    dom0 = engine.connect(0)
    requests: list[tuple[Op, bytes]] = [(Op.INTRODUCE, b"5\0001\0001\0")]
    for i in range(30):
        requests.append((Op.WRITE, f"/a/b{i % 4}/c{i}\0v{i}".encode()))
    requests += [
        (Op.WRITE, b"/local/domain/5/x\0" + b"y" * 300),
        (Op.SET_PERMS, b"/local/domain/5/x\0n5\0r0\0b7\0"),
        (Op.SET_PERMS, b"/a/b1\0r5\0"),
        (Op.WRITE, b"/deep/" + b"/".join(b"l%d" % i for i in range(200)) + b"\0end"),
        (Op.RM, b"/a/b2/c6\0"),
        (Op.WRITE, b"/a/b2/c6\0back"),  # re-created: now last among its siblings
    ]
    for rid, (op, payload) in enumerate(requests, 1):
        engine.receive(dom0, encode(op, rid, 0, payload), 0)
    return engine


def _same_tree(a: Tree, b: Tree) -> None:
    assert set(a.nodes) == set(b.nodes)  # dict order may differ: breadth first now
    for path, node in a.nodes.items():
        other = b.nodes[path]
        assert (other.value, other.perms, list(other.children), other.gen) == (
            node.value,
            node.perms,
            list(node.children),
            node.gen,
        ), path
        for child in other.children:
            assert child in b.nodes
    assert a.generation == b.generation
    assert a.usage == b.usage


def test_a_tree_round_trips_through_columns_and_msgpack() -> None:
    state = _engine_with_tree().state
    blob = stream.encode_state(records.dump(state))
    again, _ = records.load(stream.decode_state(blob))
    _same_tree(state.tree, again.tree)
    # usage is recounted from the nodes, as node_cost() counts them
    recount: dict[int, list[int]] = {}
    for path, node in again.tree.nodes.items():
        entry = recount.setdefault(node.perms[0][1], [0, 0])
        entry[0] += 1
        entry[1] += node_cost(path, node)
    assert recount == again.tree.usage
    # child lists hold the very strings used as keys (one string per path)
    keys = {id(k) for k in again.tree.nodes}
    assert all(id(c) in keys for n in again.tree.nodes.values() for c in n.children)


def _tree_record(recs: list[Any]) -> list[Any]:
    return next(r for r in recs if r[0] == "tree")


def _with_tree(recs: list[Any], change: Any) -> list[Any]:
    out = copy.deepcopy(recs)
    change(_tree_record(out))
    return out


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t[1].__setitem__(3, "bad/name"), "invalid node name 'bad/name'"),
        (lambda t: t[1].__setitem__(3, ""), "invalid node name ''"),
        (lambda t: t[1].__setitem__(0, "x"), "does not start at /"),
        (lambda t: t[1].__setitem__(2, 7), "malformed record"),
        (lambda t: t[2].__setitem__(1, "text"), "not a byte string"),
        (lambda t: t[3].__setitem__(1, 99), "malformed record"),
        (lambda t: t[3].__setitem__(1, -1), "malformed record"),
        (lambda t: t[4].__setitem__(1, -5), "generation"),
        (lambda t: t[5].__setitem__(0, t[5][0] + 1), "child counts add up"),
        (lambda t: t[5].__setitem__(-1, -1), "negative"),
        (lambda t: t[1].__setitem__(2, t[1][1]), "appears twice"),
        (lambda t: t.pop(), "wrong number of columns"),
        (lambda t: t[2].pop(), "different lengths"),
    ],
)
def test_malformed_tree_columns_are_refused(change: Any, message: str) -> None:
    recs = list(records.dump(_engine_with_tree().state))
    with pytest.raises(StateError, match=message):
        records.load(_with_tree(recs, change))


def test_a_tree_out_of_breadth_first_order_is_refused() -> None:
    recs = list(records.dump(_engine_with_tree().state))

    def swap_counts(t: list[Any]) -> None:
        # / claims no child and its first child claims /'s children: a node would come
        # before its parent
        counts = t[5]
        counts[0], counts[1] = 0, counts[0] + counts[1]

    with pytest.raises(StateError, match="breadth-first|add up"):
        records.load(_with_tree(recs, swap_counts))


def test_stream_structure_is_checked() -> None:
    recs = list(records.dump(Engine().state))
    tree = _tree_record(recs)
    with pytest.raises(StateError, match="unknown record kind"):
        records.load([*recs[:-1], ["mystery"], recs[-1]])
    with pytest.raises(StateError, match="end record"):
        records.load(recs[:-1])
    with pytest.raises(StateError, match="without a tree"):
        records.load([r for r in recs if r is not tree][:-1] + [["end", len(recs) - 2]])
    with pytest.raises(StateError, match="second one"):
        records.load([*recs[:-1], tree, ["end", len(recs)]])


def test_a_format_1_state_still_loads() -> None:
    """What an earlier xsd hands over (depth-first ``nodes`` records) loads unchanged.

    The fixture was written by the format-1 dumper: nodes and permissions, a domain with
    an armed watchdog, a connection with a watch and an open transaction."""
    blob = (FIXTURES / "state-v1.xsdstate").read_bytes()
    assert stream.check_header(blob)[0] == 1
    state, extra = records.load(stream.decode_state(blob))
    assert extra == {"note": "fixture"}
    tree = state.tree
    assert tree.nodes["/data/d1/child"].value == b"deep"
    assert [c.rsplit("/", 1)[1] for c in tree.nodes["/data"].children] == [
        "d0",
        "d1",
        "d2",
        "d3",
        "d4",
    ]
    assert tree.nodes["/data/d2"].perms == ((0, 3), (1, 0))
    assert 3 in state.domains
    dog = state.watchdogs.domains[3].dogs[1]
    assert (dog.state, dog.deadline) == ("armed", 255_000_000)
    (conn,) = state.connections.values()
    assert [w.path for w in conn.watches] == ["/data"]
    (tx,) = conn.transactions.values()
    assert tx.nodes["/data/intx"] is not None
    # it goes on as a store: the transaction commits and the write is there
    engine = Engine(state)
    engine.receive(conn.id, encode(Op.TRANSACTION_END, 9, tx.id, b"T\0"), 0)
    assert engine.state.tree.nodes["/data/intx"].value == b"txval"
    # and dumping it again writes the current format, which loads the same tree
    again, _ = records.load(stream.decode_state(stream.encode_state(records.dump(state))))
    _same_tree(state.tree, again.tree)


def test_an_empty_state_round_trips() -> None:
    state, _ = records.load(records.dump(State()))
    assert set(state.tree.nodes) == {"/", "/tool", "/tool/xenstored"}


def test_typed_state_parts_are_checked_against_their_types() -> None:
    engine = Engine()
    dom0 = engine.connect(0)
    for domid in (1, 2, 3):
        engine.receive(dom0, encode(Op.INTRODUCE, domid, 0, b"%d\0001\0001\0" % domid), 0)
    assert len(engine.state.watchdogs.domains) == 3
    recs = list(records.dump(engine.state))
    state, _ = records.load(recs)
    assert state.watchdogs == engine.state.watchdogs
    ext = next(r for r in recs if r[0] == "ext" and r[1] == "watchdogs")
    bad = copy.deepcopy(recs)
    bad_ext = next(r for r in bad if r[0] == "ext" and r[1] == "watchdogs")
    bad_ext[2]["domains"][0][1]["dogs"][0]["timeout_ms"] = "soon"
    with pytest.raises(StateError, match="state part 'watchdogs': expected int, got str"):
        records.load(bad)
    assert ext[2]["domains"][0][1]["dogs"][0]["timeout_ms"] == 60_000
    unknown = [*recs[:-1], ["ext", "mystery", {}], ["end", len(recs)]]
    with pytest.raises(StateError, match="unknown state part 'mystery'"):
        records.load(unknown)
