"""Random request sequences against the engine, from domain 0 and two guests.

Whatever the requests, the engine never reaches its internal-error path, answers
every request once and in order, keeps the tree and its accounting consistent, and
its state survives a handover round trip. Seeded, so a failure is reproducible.
"""

from __future__ import annotations

import random

import pytest

from handover.records import dump, load
from xsd.core.engine import Engine
from xsd_client.protocol import Decoder, Op, encode

WORDS = [
    b"/", b"/a", b"/a/b", b"/a/b/c", b"a", b"a/b", b"/local/domain/5", b"/local/domain/6/x",
    b"@introduceDomain", b"@releaseDomain", b"@watchdog", b"@other",
    b"/local/domain/5/watchdog/0/control", b"/local/domain/5/watchdog/0/timeout",
    b"/local/domain/5/watchdog/0/keepalive", b"/local/domain/5/watchdog/0/pretimeout",
    b"/local/domain/5/watchdog/action", b"/local/domain/5/watchdog/0/nowayout",
    b"watchdog/0/control", b"watchdog/1/timeout", b"arm", b"disarm", b"magic", b"V",
    b"0", b"1", b"-1", b"99999999999999999999", b"5", b"6", b"7", b"65535", b"32752",
    b"n0", b"r5", b"b6", b"w0", b"x5", b"", b"T", b"F", b"\xff\xfe", b"a" * 3000,
    b"//", b"/a/", b"/a//b", b"help", b"quota", b"quota-soft", b"check", b"print",
    b"connections", b"log", b"nodes", b"transaction-nodes", b"watches",
]  # fmt: skip
"""Paths, values, permissions, numbers and command words, valid and not."""

OPS = [int(op) for op in Op if op not in (Op.ERROR, Op.WATCH_EVENT)]
DEFERRED_WORDS = (b"live-update", b"memreport", b"logfile")  # answered by the shell


def _payload(rnd: random.Random) -> bytes:
    parts = [rnd.choice(WORDS) + (b"\0" if rnd.random() < 0.85 else b"") for _ in range(4)]
    return b"".join(parts[: rnd.randint(0, 4)])[:4096]


@pytest.mark.parametrize("seed", range(8))
def test_random_requests_keep_the_engine_sound(seed: int) -> None:
    rnd = random.Random(seed)
    engine = Engine()
    dom0 = engine.connect(0)
    for domid in (5, 6):
        engine.receive(dom0, encode(Op.INTRODUCE, 1, 0, b"%d\x001\x001\x00" % domid), 0)
    conns = [dom0, engine.connect(5), engine.connect(6), engine.connect(0)]
    decoders = {c: Decoder() for c in conns}
    asked: dict[int, list[int]] = {c: [] for c in conns}
    asked[dom0] = [1, 1]  # the INTRODUCEs
    answered: dict[int, list[int]] = {c: [] for c in conns}
    tx_ids = [0]
    now = 0
    for req_id in range(2, 10_002):
        conn = rnd.choice([c for c in conns if c in engine.state.connections])
        op = rnd.choice([*OPS, 0, 99])  # and two message types that do not exist
        payload = _payload(rnd)
        if op == Op.CONTROL and any(w in payload for w in DEFERRED_WORDS):
            continue
        tx = rnd.choice(tx_ids) if rnd.random() < 0.3 else 0
        now += rnd.randint(0, 50_000_000)
        engine.receive(conn, encode(op, req_id, tx, payload), now)
        asked[conn].append(req_id)
        if rnd.random() < 0.05:
            engine.tick(now)
        effects = engine.take_effects()
        assert [e for e in effects if e.kind == "bug"] == []
        for conn_id in engine.take_dirty():
            live = engine.state.connections.get(conn_id)
            if live is None:
                continue
            while out := live.output():
                live.consume(len(out))
                decoders[conn_id].receive_data(out)
            for packet in decoders[conn_id]:
                if packet.op == Op.WATCH_EVENT:
                    continue
                answered[conn_id].append(packet.req_id)
                if packet.op == Op.TRANSACTION_START:
                    tx_ids.append(int(packet.payload.rstrip(b"\0")))
    for conn_id in conns:
        if conn_id in engine.state.connections and not engine.blocked(conn_id):
            assert answered[conn_id] == asked[conn_id], f"conn {conn_id}"
    tree = engine.state.tree
    assert engine.check() == []
    counted = tree.count_usage()
    assert {k: v for k, v in tree.usage.items() if v != [0, 0]} == counted
    state, _ = load(list(dump(engine.state)))
    again = state.tree
    assert {p: (n.value, n.perms, n.gen) for p, n in again.nodes.items()} == {
        p: (n.value, n.perms, n.gen) for p, n in tree.nodes.items()
    }
