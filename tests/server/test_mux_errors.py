"""The multiplexer's last line of defence: a bug met while handling one connection's
bytes ends that connection, logged with its traceback, never the loop.

A bug cannot be provoked from outside on purpose (that is what the fuzzing harness looks
for), so here the engine is the real one with one fault planted in the victim's decoder,
met when the engine resumes it (the engine itself may be compiled, and a compiled class
cannot be subclassed), and the connections are real socket pairs served by the real
multiplexer (its trio-free loop, :meth:`Multiplexer.serve_early`).
"""

from __future__ import annotations

import logging
import socket
import time

import pytest

from xsd.core.engine import Engine
from xsd.server.mux import Multiplexer
from xsd_client.protocol import Decoder, Op, encode


class FaultyDecoder(Decoder):
    """Decodes the first batch (16 requests), then raises, as a bug met while the
    engine resumes the connection would."""

    taken = 0

    def next_fields(self) -> tuple[int, int, int, bytes] | None:
        self.taken += 1
        if self.taken > 16:
            raise RuntimeError("planted bug")
        return super().next_fields()


def _replies(sock: socket.socket, count: int) -> list[int]:
    decoder = Decoder()
    got: list[int] = []
    sock.settimeout(2)
    while len(got) < count:
        try:
            data = sock.recv(65536)
        except ConnectionResetError:  # closed with requests of ours unread
            break
        if not data:
            break
        decoder.receive_data(data)
        got += [p.req_id for p in decoder]
    return got


def test_a_bug_on_the_resume_path_drops_only_that_connection(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = Engine()
    dropped: list[int] = []

    def drop(conn_id: int) -> None:
        dropped.append(conn_id)
        mux.remove(conn_id)
        engine.disconnect(conn_id)

    def flush() -> None:
        for conn_id in engine.take_dirty():
            mux.send(conn_id)

    mux = Multiplexer(engine, flush, drop)
    pairs = []
    for _ in range(2):
        ours, theirs = socket.socketpair()
        conn_id = engine.connect(0)
        mux.add(conn_id, ours)
        pairs.append((conn_id, theirs))
    (victim, victim_sock), (other, other_sock) = pairs
    engine.state.connections[victim].decoder = FaultyDecoder()
    # Requests of 18 bytes: the first read of a quiet connection (xsd.server.mux,
    # _RECV_SMALL) takes more than one batch of them, and the rest waits for a resume.
    batch = b"".join(encode(Op.READ, i + 1, 0, b"/\0") for i in range(40))
    victim_sock.sendall(batch)
    other_sock.sendall(batch)
    deadline = time.monotonic() + 2
    with caplog.at_level(logging.ERROR, logger="xsd"):
        mux.serve_early(lambda: time.monotonic() > deadline or bool(dropped), flush)
        mux.serve_early(lambda: time.monotonic() > deadline, flush, 0.01)
    assert dropped == [victim]
    assert _replies(other_sock, 40) == list(range(1, 41))  # the other is served in full
    victim_sock.settimeout(2)
    # Its first batch was answered in the pass whose turn met the bug: its replies,
    # not yet written, went with the connection, as a bad header's do (C).
    assert _replies(victim_sock, 40) == []
    assert victim not in engine.state.connections
    assert other in engine.state.connections
    record = next(r for r in caplog.records if "internal error" in r.getMessage())
    assert f"connection {victim}: internal error; disconnecting" == record.getMessage()
    assert record.exc_info is not None and "planted bug" in str(record.exc_info[1])
    mux.close()
