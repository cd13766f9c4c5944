"""Bytes no client can kill the daemon with, from domain 0's socket or a guest's own.

Issue 15, item 1: sixteen or more whole requests and then a header announcing more than
4096 bytes, in one ``send()``. The batch limit (16 requests a turn) leaves the bad header
for the connection's next turn (``Multiplexer._take_turns -> Engine.resume``), where its
``ProtocolError`` used to escape and end the daemon. Whatever path decodes a
connection's bytes, a framing error ends that connection only, as C disconnects it, and
everyone else is served.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest

from tests.support.domains import Env, raw_socket
from tests.support.wire import RawConn
from xsd_client.protocol import HEADER, Decoder, Op, Packet, encode

OVERSIZED = HEADER.pack(Op.WRITE, 99, 0, 5000)  # announces 5000 > 4096 bytes


def _reads(count: int, path: str) -> bytes:
    return b"".join(encode(Op.READ, i + 1, 0, path.encode() + b"\0") for i in range(count))


def _answered_then_closed(sock: socket.socket, timeout: float = 5.0) -> list[Packet]:
    """Read until the daemon closes the connection; return the replies that came."""
    decoder = Decoder()
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            return list(decoder)
        decoder.receive_data(data)
    raise AssertionError("the daemon kept the connection open")


def _socket_of(env: Env, who: str, domid: int) -> tuple[Callable[[], socket.socket], str]:
    """How to connect as ``who``, and a path it may read (empty value)."""
    if who == "dom0":
        return (lambda: raw_socket(env.daemon.socket)), "/tool/xenstored"
    env.introduce(domid)
    path = env.daemon.rundir / "domains" / str(domid) / "socket"
    return (lambda: raw_socket(path)), f"/local/domain/{domid}"


def _alive_and_serving(env: Env, bystander: RawConn) -> None:
    time.sleep(0.3)  # a daemon on its way out has time to go
    assert env.daemon.proc.poll() is None, env.daemon.output()[-3000:]
    assert bystander.call(Op.READ, "/tool/xenstored") == ("OK", b"")
    assert env.served() < 1.0


@pytest.mark.parametrize("who", ["dom0", "guest"])
@pytest.mark.parametrize("whole", [16, 17, 32, 300])
def test_whole_requests_then_an_oversized_header_in_one_send(
    fresh: Callable[..., Env], who: str, whole: int
) -> None:
    env = fresh()
    connect, readable = _socket_of(env, who, 5)
    bystander = RawConn(str(env.daemon.socket))
    attacker = connect()
    attacker.sendall(_reads(whole, readable) + OVERSIZED)
    # The requests are answered in order until the bad header, then the connection is
    # closed; the replies not yet written when it came go with it, as C drops them
    # (tests/conformance: good-then-oversized): those of the pass that met it, at most
    # two batches of 16.
    replies = _answered_then_closed(attacker)
    assert [(p.op, p.req_id, p.payload) for p in replies] == [
        (Op.READ, i + 1, b"") for i in range(len(replies))
    ]
    assert whole - 2 * 16 <= len(replies) <= whole
    attacker.close()
    _alive_and_serving(env, bystander)
    out = env.daemon.output()
    assert "peer announced a payload of 5000 bytes; disconnecting" in out
    assert "Traceback" not in out


@pytest.mark.parametrize("who", ["dom0", "guest"])
def test_oversized_header_on_every_path(fresh: Callable[..., Env], who: str) -> None:
    """The bad header reaches the decoder by each path in turn: alone, behind a batch in
    the same read, split across sends after a batch, and behind requests held back
    while the client does not read its replies (decoded on resume, once it reads)."""
    env = fresh()
    connect, readable = _socket_of(env, who, 6)
    bystander = RawConn(str(env.daemon.socket))
    alone = connect()
    alone.sendall(OVERSIZED)
    assert _answered_then_closed(alone) == []
    split = connect()
    split.sendall(_reads(20, readable) + OVERSIZED[:7])
    time.sleep(0.05)
    split.sendall(OVERSIZED[7:])
    assert len(_answered_then_closed(split)) == 20
    # A client that does not read: big replies fill its output until the engine holds
    # its requests back; the bad header waits behind them for the resume.
    assert env.dom0.write("/big", b"x" * 4000) == ("OK", b"OK\0")
    if who == "guest":
        assert env.dom0.call(Op.SET_PERMS, "/big", "n0", "r6") == ("OK", b"OK\0")
    held = connect()
    held.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    many = b"".join(encode(Op.READ, i + 1, 0, b"/big\0") for i in range(600))
    held.settimeout(10)
    held.sendall(many + OVERSIZED)
    time.sleep(0.3)
    assert env.served() < 1.0  # the others are served while it is held
    replies = _answered_then_closed(held, timeout=15)
    # 2.4 MB of replies: more than the daemon queues (1 MiB; a guest, its quota of 20
    # replies) and the sockets hold, so it held the connection back and resumed it as
    # the client read. What was still unsent when the bad header came goes with the
    # connection, as in C (all was sent if a batch ended just before the header).
    assert 300 < len(replies) <= 600
    assert [p.req_id for p in replies] == list(range(1, len(replies) + 1))
    assert all(p.payload == b"x" * 4000 for p in replies)
    _alive_and_serving(env, bystander)
    out = env.daemon.output()
    assert out.count("peer announced a payload of 5000 bytes; disconnecting") == 3
    assert "Traceback" not in out
