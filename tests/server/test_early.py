"""Early serving after a live update: the restored clients answered before trio is up."""

from __future__ import annotations

import socket
import threading

from xsd.core.engine import Engine
from xsd.server.early import EarlyService
from xsd_client.protocol import Decoder, Op, Packet, encode


def _reply(sock: socket.socket, decoder: Decoder) -> Packet:
    while True:
        packet = decoder.next_packet()
        if packet is not None:
            return packet
        data = sock.recv(65536)
        assert data, "the daemon side closed the connection"
        decoder.receive_data(data)


def test_requests_are_answered_until_an_effect_needs_the_server() -> None:
    engine = Engine()
    ours, theirs = socket.socketpair()
    conn = engine.connect(0)
    early = EarlyService(engine, {conn: theirs.detach()})
    seen: dict[str, object] = {}

    def client() -> None:
        decoder = Decoder()
        ours.sendall(encode(Op.WRITE, 1, 0, b"/x\0v"))
        seen["write"] = _reply(ours, decoder).payload
        ours.sendall(encode(Op.READ, 2, 0, b"/x\0"))
        seen["read"] = _reply(ours, decoder).payload
        # INTRODUCE opens a domain socket: an effect, which is the server's to apply
        # before the reply goes out
        ours.sendall(encode(Op.INTRODUCE, 3, 0, b"7\0001\0001\0"))
        ours.settimeout(0.5)
        try:
            seen["introduce"] = ours.recv(65536)
        except TimeoutError:
            seen["introduce"] = None

    thread = threading.Thread(target=client)
    thread.start()
    early.serve_while(thread.is_alive)  # returns once the effect holds it
    assert early.held
    thread.join()
    assert seen == {"write": b"OK\0", "read": b"v", "introduce": None}
    # the effect and the reply behind it wait for the server, in that order
    assert [e.kind for e in engine.take_effects()] == ["introduced"]
    for conn_id in engine.take_dirty():
        early.mux.send(conn_id)
    ours.settimeout(5)
    assert _reply(ours, Decoder()).payload == b"OK\0"
    early.mux.close()
    ours.close()


def test_a_client_that_leaves_early_is_forgotten() -> None:
    engine = Engine()
    ours, theirs = socket.socketpair()
    conn = engine.connect(0)
    early = EarlyService(engine, {conn: theirs.detach()})
    ours.close()
    rounds = iter(range(50))
    early.serve_while(lambda: next(rounds, None) is not None and conn in early.mux.clients)
    assert conn not in early.mux.clients
    assert conn not in engine.state.connections


def test_a_deadline_that_passed_during_the_update_fires_before_serving() -> None:
    import time

    from xsd.core.watchdogs import EXPIRED, of

    engine = Engine()
    ours, theirs = socket.socketpair()
    conn = engine.connect(0)
    engine.receive(conn, encode(Op.INTRODUCE, 1, 0, b"3\0001\0001\0"), 0)
    engine.take_effects()  # the domain's socket: the old process opened it
    engine.take_dirty()
    engine.now = time.monotonic_ns() - 10_000_000_000  # armed ten seconds ago...
    of(engine).set_timeout(engine, 3, 0, 1000)  # ...for one second
    of(engine).arm(engine, 3, 0)
    early = EarlyService(engine, {conn: theirs.detach()})
    early.answer(conn)
    assert engine.state.watchdogs.domains[3].dogs[0].state == EXPIRED
    assert early.held  # its action is the server's, and everything waits behind it
    assert "watchdog" in [e.kind for e in engine.take_effects()]
    early.mux.close()
    ours.close()
