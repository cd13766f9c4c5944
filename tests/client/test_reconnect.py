"""A watch set with a depth (``watch(..., depth=N)``, Xen 4.22's WATCH depth) is
registered again with that depth after a reconnection, by both clients (they share
``WatchTable`` and ``reconnect.resume``, sans I/O).

The xsd daemon itself answers a WATCH with a depth EINVAL (as daemons older than Xen
4.22 do), so no daemon at hand can take such a watch: what a reconnected client sends is
decoded here with the protocol's own decoder and compared with what ``watch()`` sends.
"""

from __future__ import annotations

from dataclasses import dataclass

from xsd_client import calls, reconnect
from xsd_client.protocol import Decoder, Op
from xsd_client.watch_table import WatchTable


@dataclass(eq=False)
class W:
    path: str
    token: str


def sent_watches(table: WatchTable[W]) -> list[bytes]:
    out, _, settled = reconnect.resume(table.registrations(), {}, 7)
    assert settled == []
    decoder = Decoder()
    decoder.receive_data(out)
    packets = list(decoder)
    assert all(p.op == Op.WATCH and p.tx_id == 0 for p in packets)
    assert [p.req_id for p in packets] == list(range(8, 8 + len(packets)))
    return sorted(p.payload for p in packets)


def test_a_reconnected_client_sets_each_watch_with_its_depth() -> None:
    table: WatchTable[W] = WatchTable()
    deep, shallow, zero, shared = W("/w", "a"), W("/v", "b"), W("/z", "c"), W("/v/x", "b")
    table.add(deep)
    table.add(shallow, 1)
    table.add(zero, 0)
    table.add(shared, 3)
    expected = sorted(
        [
            calls.watch("/w", "a").payload,
            calls.watch("/v", "b", 1).payload,
            calls.watch("/z", "c", 0).payload,
            calls.watch("/v/x", "b", 3).payload,
        ]
    )
    assert sent_watches(table) == expected
    assert calls.watch("/v", "b", 1).payload == b"/v\0b\x001\0"
    # Removed, then set again without a depth: the old depth is gone with it.
    table.remove(shallow)
    again = W("/v", "b")
    table.add(again)
    assert calls.watch("/v", "b").payload in sent_watches(table)
    assert calls.watch("/v", "b", 1).payload not in sent_watches(table)
    table.take_all()
    assert table.registrations() == []
