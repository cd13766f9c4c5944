"""handover's records without a daemon: the tree columns, refusals, and old formats."""

from __future__ import annotations

import contextlib
import copy
import zlib
from pathlib import Path
from typing import Any

import msgpack
import pytest

from handover import plain, records, stream
from handover.records import StateError
from handover.tree_columns import INT_COLUMNS, pack_ints, unpack_ints
from tests.support.trees import _engine_with_tree, _same_tree
from xsd.core.engine import Engine
from xsd.core.state import State
from xsd.core.tree import node_cost
from xsd_client.protocol import Op, encode

FIXTURES = Path(__file__).parent / "fixtures"


def test_a_tree_round_trips_through_columns_and_msgpack() -> None:
    state = _engine_with_tree().state
    blob = stream.encode_state(records.dump(state))
    again, _ = records.load(stream.decode_state(blob))
    _same_tree(state.tree, again.tree)
    # usage, recounted from the columns, is what node_cost() counts
    recount: dict[int, list[int]] = {}
    for path, node in again.tree.nodes.items():
        entry = recount.setdefault(node.perms[0][1], [0, 0])
        entry[0] += 1
        entry[1] += node_cost(path, node)
    assert recount == again.tree.usage
    recounted, _ = records.load(
        stream.decode_state(stream.encode_state(records.dump(state, with_usage=False)))
    )
    assert recounted.tree.usage == recount
    # child lists hold the very strings used as keys (one string per path)
    keys = {id(k) for k in again.tree.nodes}
    assert all(id(c) in keys for n in again.tree.nodes.values() for c in n.children)


def test_the_usage_travels_and_is_taken_as_it_comes_unless_left_out(tmp_path: Path) -> None:
    import subprocess
    import sys

    from handover import transports

    state = _engine_with_tree().state
    right = state.tree.count_usage()
    loaded, _ = records.load(stream.decode_state(stream.encode_state(records.dump(state))))
    assert loaded.tree.usage == right == state.tree.usage
    # a usage that drifted (a bug) travels as it is...
    state.tree.usage = {owner: [n + 1, size + 7] for owner, (n, size) in right.items()}
    drifted = list(records.dump(state))
    loaded, _ = records.load(stream.decode_state(stream.encode_state(drifted)))
    assert loaded.tree.usage == state.tree.usage != right
    # ...the dry run tells (and still passes)...
    transports.write_lmdb(tmp_path / "drifted.lmdb", drifted)
    transports.write_lmdb(tmp_path / "right.lmdb", list(records.dump(_engine_with_tree().state)))
    verdicts = {}
    for name in ("drifted", "right"):
        check = subprocess.run(
            [sys.executable, "-m", "xsd", "--check-state", f"lmdb:{tmp_path / name}.lmdb"],
            capture_output=True,
            text=True,
        )
        assert check.returncode == 0, check.stderr
        verdicts[name] = "xsd: check-state: recount usage" in check.stdout.splitlines()
    assert verdicts == {"drifted": True, "right": False}
    # ...and left out, the new process recounts it
    recounted = records.dump(state, with_usage=False)
    loaded, _ = records.load(stream.decode_state(stream.encode_state(recounted)))
    assert loaded.tree.usage == right


def test_a_malformed_usage_is_refused() -> None:
    recs = list(records.dump(_engine_with_tree().state))
    recs[0][1]["usage"] = [[0, 1]]
    with pytest.raises(StateError, match="usage is not a list of"):
        records.load(recs)


def _tree_record(recs: list[Any]) -> list[Any]:
    return next(r for r in recs if r[0] == "tree")


def _with_tree(recs: list[Any], change: Any) -> list[Any]:
    """``recs`` with ``change`` made to the tree record's columns as lists. The columns
    of integers then go packed again (format 3) if they still can, else as the lists
    format 2 sent, which the loader checks value by value."""
    out = copy.deepcopy(recs)
    tree = _tree_record(out)
    for column, code in INT_COLUMNS.items():
        tree[column] = list(unpack_ints(tree[column], code, "ints"))
    change(tree)
    for column, code in INT_COLUMNS.items():
        if column < len(tree):
            with contextlib.suppress(TypeError, OverflowError):
                tree[column] = pack_ints(tree[column], code)
    return out


def _set(column: int, index: int, value: Any) -> Any:
    return lambda t: t[column].__setitem__(index, value)


def _shift(column: int, index: int, by: int) -> Any:
    return lambda t: t[column].__setitem__(index, t[column][index] + by)


def _text(change: Any) -> Any:
    return lambda t: t.__setitem__(1, change(t[1]))


# The columns: 1 names (text), 2 name lengths, 3 values, 4 permission ids,
# 5 generations, 6 child counts.
@pytest.mark.parametrize(
    ("change", "message"),
    [
        (_text(lambda x: x.replace("deep", "de/p", 1)), "invalid node name 'de/p'"),
        (_text(lambda x: x.replace("\n", "\n\n", 1)), "invalid node name ''"),
        (_text(lambda x: 7), "no text"),
        (_set(2, 0, 3), "does not start at /"),
        (_shift(2, 1, 1), "invalid node name|belie"),
        (lambda t: (_shift(2, 1, 1)(t), _shift(2, -1, -1)(t)), "do not match"),
        (_set(3, 1, "text"), "not a byte string"),
        (_set(4, 1, 99), "malformed record"),
        (_set(4, 1, -1), "malformed record"),
        (_set(5, 1, -5), "generation"),
        (_set(5, 1, 1.5), "generation"),
        (_set(5, 1, "7"), "generation"),
        (_shift(6, 0, 1), "child counts add up"),
        (_set(6, -1, -1), "add up|do not match"),
        (_text(lambda x: x.replace("deep", "tool", 1)), "appears twice"),
        (lambda t: t.pop(), "wrong number of columns"),
        (lambda t: t[3].pop(), "different lengths"),
    ],
)
def test_malformed_tree_columns_are_refused(change: Any, message: str) -> None:
    recs = list(records.dump(_engine_with_tree().state))
    with pytest.raises(StateError, match=message):
        records.load(_with_tree(recs, change))


@pytest.mark.parametrize(
    ("column", "damage", "message"),
    [
        (2, lambda b: b[:-1], "name lengths are not a whole number of 4 bytes"),
        (5, lambda b: b + b"\0\0\0\0", "generations are not a whole number of 8 bytes"),
        (4, lambda b: b[:-4], "different lengths"),
        (6, lambda b: b[:-4] + b"\xff\xff\xff\x7f", "add up"),
        (6, lambda b: "counts", "child counts are neither packed nor a list"),
    ],
)
def test_malformed_packed_columns_are_refused(column: int, damage: Any, message: str) -> None:
    recs = copy.deepcopy(list(records.dump(_engine_with_tree().state)))
    tree = _tree_record(recs)
    assert isinstance(tree[column], bytes)  # format 3 packs the ints
    tree[column] = damage(tree[column])
    with pytest.raises(StateError, match=message):
        records.load(recs)


def test_a_tree_with_its_ints_as_lists_still_loads() -> None:
    """Format 2 sent the columns of integers as lists."""
    state = _engine_with_tree().state
    recs = _with_tree(list(records.dump(state)), lambda t: None)
    tree = _tree_record(recs)
    for column in INT_COLUMNS:
        tree[column] = list(unpack_ints(tree[column], INT_COLUMNS[column], "ints"))
    again, _ = records.load(recs)
    _same_tree(state.tree, again.tree)


def test_a_tree_out_of_breadth_first_order_is_refused() -> None:
    recs = list(records.dump(_engine_with_tree().state))

    def swap_counts(t: list[Any]) -> None:
        # / claims no child and its first child claims /'s children: a node would come
        # before its parent
        counts = t[6]
        counts[0], counts[1] = 0, counts[0] + counts[1]

    with pytest.raises(StateError, match=r"breadth-first|add up"):
        records.load(_with_tree(recs, swap_counts))


def test_stream_structure_is_checked() -> None:
    recs = list(records.dump(Engine().state))
    tree = _tree_record(recs)
    with pytest.raises(StateError, match="unknown record kind"):
        records.load([*recs[:-1], ["mystery"], recs[-1]])
    with pytest.raises(StateError, match="end record"):
        records.load(recs[:-1])
    with pytest.raises(StateError, match="without a tree"):
        records.load([*[r for r in recs if r is not tree][:-1], ["end", len(recs) - 2]])
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


def test_a_format_2_state_still_loads() -> None:
    """What the previous xsd hands over (its checksum a SHA-256) loads unchanged, and a
    damaged one is refused. The fixture is the format-1 one, loaded and dumped again by
    the format-2 dumper."""
    blob = (FIXTURES / "state-v2.xsdstate").read_bytes()
    assert stream.check_header(blob)[0] == 2
    state, extra = records.load(stream.decode_state(blob))
    assert extra == {"note": "fixture"}
    assert state.tree.nodes["/data/d1/child"].value == b"deep"
    assert state.watchdogs.domains[3].dogs[1].deadline == 255_000_000
    (conn,) = state.connections.values()
    assert len(conn.transactions) == 1
    damaged = bytearray(blob)
    damaged[len(blob) // 2] ^= 1
    with pytest.raises(StateError, match="checksum mismatch"):
        stream.decode_state(bytes(damaged))
    with pytest.raises(StateError, match="truncated"):
        stream.decode_state(blob[:-4])  # a format-3 checksum's size is not enough
    again = stream.encode_state(records.dump(state, extra))
    assert stream.check_header(again)[0] == stream.FORMAT_VERSION == 3
    reloaded, _ = records.load(stream.decode_state(again))
    _same_tree(state.tree, reloaded.tree)


def _framed(body: bytes) -> bytes:
    """A format-3 stream around ``body``, its checksum right."""
    head = stream.MAGIC + (3).to_bytes(4, "little") + len(body).to_bytes(8, "little")
    return head + body + zlib.crc32(body).to_bytes(4, "little")


def test_a_format_3_body_is_one_array_of_records() -> None:
    recs = list(records.dump(State()))
    blob = stream.encode_state(recs)
    body = blob[20:-4]
    assert msgpack.unpackb(body) == msgpack.unpackb(msgpack.packb(recs))
    assert _framed(body) == blob
    with pytest.raises(StateError, match="not an array of records"):
        stream.decode_state(_framed(msgpack.packb({"meta": 1})))
    with pytest.raises(StateError, match="does not decode"):
        stream.decode_state(_framed(body + b"\xc0"))  # something after the array
    with pytest.raises(StateError, match="does not decode"):
        stream.decode_state(_framed(body[:-1]))  # the array cut short


def test_an_empty_state_round_trips() -> None:
    state, _ = records.load(records.dump(State()))
    assert set(state.tree.nodes) == {"/", "/tool", "/tool/xenstored"}


def _engine_with_watchdogs() -> Engine:
    engine = Engine()
    dom0 = engine.connect(0)
    for domid in (1, 2, 3):
        engine.receive(dom0, encode(Op.INTRODUCE, domid, 0, b"%d\0001\0001\0" % domid), 0)
    engine.receive(dom0, encode(Op.WRITE, 9, 0, b"/local/domain/2/watchdog/1/timeout\x0030"), 0)
    engine.receive(dom0, encode(Op.WRITE, 9, 0, b"/local/domain/2/watchdog/1/control\0arm"), 0)
    assert len(engine.state.watchdogs.domains) == 3
    assert engine.state.watchdogs.heap
    return engine


def test_the_watchdogs_go_as_columns_and_come_back_checked() -> None:
    engine = _engine_with_watchdogs()
    recs = list(records.dump(engine.state))
    state, _ = records.load(recs)
    assert state.watchdogs == engine.state.watchdogs
    (record,) = [r for r in recs if r[0] == "watchdogs"]
    assert record[2] == [1, 2, 3] and record[3] == [2, 2, 2]
    assert record[5]["timeout_ms"][:2] == [60_000, 60_000]

    def broken(change: Any) -> list[Any]:
        out = copy.deepcopy(recs)
        change(next(r for r in out if r[0] == "watchdogs"))
        return out

    for change, message in [
        (lambda r: r[5]["timeout_ms"].__setitem__(0, "soon"), r"Dog\.timeout_ms: not a column"),
        (lambda r: r[5]["state"].pop(), r"Dog\.state: 5 values for 6"),
        (lambda r: r[3].__setitem__(0, 3), "Dog.*values for 7"),
        (lambda r: r[2].__setitem__(1, 1), "a domain appears twice"),
        (
            lambda r: r[6].__setitem__(0, [1, 2, "3", 4]),
            r"timer heap is not a list of \[when, domid, slot, token\]",
        ),
        (lambda r: r[4].pop("seq"), None),  # a field with a default: filled
        (lambda r: r[4].__setitem__("later", [1, 2, 3]), None),  # unknown: ignored
        (lambda r: r.pop(), "wrong number of parts"),
    ]:
        if message is None:
            again, _ = records.load(broken(change))
            assert again.watchdogs.domains.keys() == engine.state.watchdogs.domains.keys()
        else:
            with pytest.raises(StateError, match=message):
                records.load(broken(change))


def test_the_watchdogs_as_earlier_versions_sent_them_still_load() -> None:
    """Format 2 before the watchdogs record: an ``ext`` record of plain maps."""
    engine = _engine_with_watchdogs()
    hint = plain.hints(State)["watchdogs"]
    recs = [
        ["ext", "watchdogs", plain.encoder(hint)(engine.state.watchdogs)]
        if r[0] == "watchdogs"
        else r
        for r in records.dump(engine.state)
    ]
    state, _ = records.load(recs)
    assert state.watchdogs == engine.state.watchdogs
    bad = copy.deepcopy(recs)
    bad_ext = next(r for r in bad if r[0] == "ext" and r[1] == "watchdogs")
    bad_ext[2]["domains"][0][1]["dogs"][0]["timeout_ms"] = "soon"
    with pytest.raises(
        StateError, match=r"state part 'watchdogs': Dog\.timeout_ms: expected int, got str"
    ):
        records.load(bad)
    bad_ext[2]["domains"][0][1]["dogs"][0]["timeout_ms"] = 60_000
    bad_ext[2]["heap"] = [[1, 2, "3", 4]]  # a tuple of ints, one of them not
    with pytest.raises(StateError, match="expected a tuple of int, int, int, int"):
        records.load(bad)
    bad_ext[2]["heap"] = [[1, 2, 3]]
    with pytest.raises(StateError, match="expected a tuple of int, int, int, int"):
        records.load(bad)
    unknown = [*recs[:-1], ["ext", "mystery", {}], ["end", len(recs)]]
    with pytest.raises(StateError, match="unknown state part 'mystery'"):
        records.load(unknown)
    tree_as_ext = [*recs[:-1], ["ext", "tree", {}], ["end", len(recs)]]
    with pytest.raises(StateError, match="unknown state part 'tree'"):
        records.load(tree_as_ext)
