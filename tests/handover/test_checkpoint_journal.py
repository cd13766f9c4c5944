"""The journal entry of durable mode's hot path (``checkpoint.pack_journal``, built in one
go, its delta in set order) restores the same state as the general one
(``journal_entry`` + ``pack_entry``): a real engine answers real requests, one pass at a
time, and the state restored from a checkpoint of the start plus those entries is the
state the engine has. Restoring collapses the entries into one delta (each path as the
last entry naming it left it), so paths removed and made again, and permissions from
several entries' tables, are among the passes."""

from __future__ import annotations

import enum
import zlib

import msgpack
import pytest

from handover import checkpoint, stream
from xsd.core.engine import Engine
from xsd.core.state import State
from xsd_client.protocol import Decoder, Op, encode

PASSES = [
    [(Op.WRITE, b"/a/b/c\0one")],
    [(Op.SET_PERMS, b"/a/b\0b0\0r3\0"), (Op.WRITE, b"/a/b/d\0two")],
    [(Op.MKDIR, b"/x/y/z\0"), (Op.WRITE, b"/a/q\0three")],
    [(Op.RM, b"/a/b\0")],
    [(Op.WRITE, b"/\0root value")],
    [(Op.WRITE, b"/a/b/c\0again")],  # removed, then made again: the last entry counts
    [(Op.SET_PERMS, b"/a/b/c\0b0\0"), (Op.WRITE, b"/a/q\0four")],  # one table for all
    [(Op.WRITE, b"/a/q\0five")],  # one leaf written: built in one go
    [(Op.SET_PERMS, b"/a/q\0b0\0r7\0")],  # the same, its permissions
    [(Op.INTRODUCE, b"5\0001\0001\0")],  # more than the tree: a side part
    [(Op.WRITE, b"/local/domain/5/data\0four"), (Op.RM, b"/x\0")],
]


def nodes_of(state: State) -> dict[str, tuple[bytes, object, int, list[str]]]:
    return {
        path: (node.value, node.perms, node.gen, sorted(node.children))
        for path, node in state.tree.nodes.items()
    }


def test_packed_entries_restore_the_engines_state() -> None:
    engine = Engine(State())
    state = engine.state
    conn = engine.connect(0)
    info = {"seq": 0, "boot_id": "b", "mono_ns": 0}
    parts = stream.frame_parts(stream.pack_each(checkpoint.checkpoint_records(state, info)))
    start = b"".join(parts)
    state.tree.dirty = set()
    entries = []
    one_go = 0
    for seq, requests in enumerate(PASSES, 1):
        for i, (op, payload) in enumerate(requests):
            engine.receive(conn, encode(op, i + 1, 0, payload))
        engine.take_effects()
        out = state.connections[conn]
        replies = out.output()
        out.consume(len(replies))
        decoder = Decoder()
        decoder.receive_data(replies)
        assert [p.op for p in decoder] == [op for op, _ in requests]  # no ERROR
        dirty = state.tree.dirty
        assert dirty
        state.tree.dirty = set()
        side = engine.side_changed
        engine.side_changed = False
        raw = checkpoint.pack_journal(state, seq, seq * 1000, dirty, side)
        general = checkpoint.unpack_entry(
            checkpoint.pack_entry(checkpoint.journal_entry(state, seq, seq * 1000, dirty, side))
        )
        if len(dirty) == 1 and not side:  # the same entry (and a leaf's built in one go)
            one_go += not state.tree.nodes[next(iter(dirty))].children
            assert checkpoint.unpack_entry(raw) == general
        fast = checkpoint.unpack_entry(raw)
        assert fast[:6] == general[:6]  # seq, time, generation, counters
        assert sorted(e[0] for e in fast[7]) == sorted(e[0] for e in general[7])
        assert fast[8] == general[8]  # the side part
        entries.append((seq, raw))
    assert one_go == 2
    restored, info_after, last = checkpoint.restore(start, entries)
    assert last == len(PASSES)
    assert info_after["mono_ns"] == len(PASSES) * 1000
    assert nodes_of(restored) == nodes_of(state)
    assert restored.tree.generation == state.tree.generation
    assert sorted(restored.domains) == sorted(state.domains)
    assert restored.tree.usage == state.tree.usage


class Access(enum.IntEnum):
    READ = 1


class Name(str):
    __slots__ = ()


@pytest.mark.parametrize(
    "extra",
    [
        None,  # the hot path's types: exact ones, and tuples (the permission table)
        {"domains": [(Access.READ, Name("x"))], "quota": 2.5, "on": True},  # subclasses
    ],
)
def test_an_entry_is_stored_as_msgpack_packs_it(extra: object) -> None:
    delta = [["/a", b"value", 0, 7, ["b", "c"]], ["/a/b", None], ["/a/c", b"", 0, 8, []]]
    entry = ["journal", 3, 4, 5, 6, 7, [((0, 2), (5, 1))], delta, extra]
    body = msgpack.packb(entry, use_bin_type=True)
    stored = checkpoint.pack_entry(entry)
    assert stored == zlib.crc32(body).to_bytes(4, "little") + body
    assert checkpoint.unpack_entry(stored)[6] == [[[0, 2], [5, 1]]]
