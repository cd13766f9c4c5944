"""A request's path argument resolves for the connection that sends it, every time.

The context remembers canonical paths (``Context.path``): the same bytes from another
domain, or an invalid path asked again, must still get their own answer.
"""

from __future__ import annotations

from xsd.core.engine import Engine
from xsd_client.protocol import Decoder, Op, encode, join_args


def call(
    engine: Engine, conn_id: int, op: int, *args: bytes | str, raw: bytes | None = None
) -> bytes:
    """The reply payload, prefixed with b"E:" for an error."""
    engine.receive(conn_id, encode(op, 1, 0, raw if raw is not None else join_args(*args)))
    conn = engine.state.connections[conn_id]
    decoder = Decoder()
    while data := conn.output():
        decoder.receive_data(data)
        conn.consume(len(data))
    replies = [p for p in decoder if p.op != Op.WATCH_EVENT]
    assert len(replies) == 1
    reply = replies[0]
    return b"E:" + reply.payload if reply.op == Op.ERROR else reply.payload


def test_the_same_relative_path_from_two_domains_lands_in_each_home() -> None:
    engine = Engine()
    dom0 = engine.connect(0)
    guest = engine.connect(3)
    assert call(engine, dom0, Op.MKDIR, "/local/domain/3") == b"OK\0"
    assert call(engine, dom0, Op.SET_PERMS, "/local/domain/3", "n3") == b"OK\0"
    for _ in range(2):
        assert call(engine, guest, Op.WRITE, raw=b"data\0from-guest") == b"OK\0"
        assert call(engine, dom0, Op.WRITE, raw=b"data\0from-dom0") == b"OK\0"
    assert call(engine, dom0, Op.READ, "/local/domain/3/data") == b"from-guest"
    assert call(engine, dom0, Op.READ, "/local/domain/0/data") == b"from-dom0"
    assert call(engine, guest, Op.READ, "data") == b"from-guest"


def test_an_invalid_path_is_refused_each_time_it_is_asked() -> None:
    engine = Engine()
    dom0 = engine.connect(0)
    for _ in range(3):
        assert call(engine, dom0, Op.WRITE, raw=b"/a//b\0v") == b"E:EINVAL\0"
        assert call(engine, dom0, Op.READ, "/a b") == b"E:EINVAL\0"
    assert call(engine, dom0, Op.WRITE, raw=b"/a/b\0v") == b"OK\0"
    assert call(engine, dom0, Op.READ, "/a/b") == b"v"


def test_a_special_path_is_only_taken_where_the_request_allows_it() -> None:
    engine = Engine()
    dom0 = engine.connect(0)
    assert call(engine, dom0, Op.WATCH, "@releaseDomain", "tok") == b"OK\0"
    # The same argument, now where only node paths are allowed: refused.
    assert call(engine, dom0, Op.READ, "@releaseDomain") == b"E:EINVAL\0"
