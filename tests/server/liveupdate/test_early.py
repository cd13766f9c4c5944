"""Early serving after a live update: the restored clients answered before trio is up."""

from __future__ import annotations

import socket
import threading

from xsd.core.engine import Engine
from xsd.server.liveupdate.early import EarlyService
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
    early = EarlyService(engine)
    early.adopt({conn: theirs.detach()})
    early.start()
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
    early = EarlyService(engine)
    early.adopt({conn: theirs.detach()})
    early.start()
    ours.close()
    rounds = iter(range(50))
    early.serve_while(lambda: next(rounds, None) is not None and conn in early.mux.clients)
    assert conn not in early.mux.clients
    assert conn not in engine.state.connections


def _overdue_watchdog(engine: Engine, conn: int) -> None:
    """Domain 3's watchdog, armed ten seconds ago for one second."""
    import time

    from xsd.core.watchdogs.feature import of

    engine.receive(conn, encode(Op.INTRODUCE, 1, 0, b"3\0001\0001\0"), 0)
    engine.take_effects()  # the domain's socket: the old process opened it
    engine.take_dirty()
    engine.now = time.monotonic_ns() - 10_000_000_000
    of(engine).set_timeout(3, 0, 1000)
    of(engine).arm(3, 0)


def test_a_deadline_that_passed_during_the_update_fires_before_serving() -> None:
    from xsd.core.watchdogs import EXPIRED

    engine = Engine()
    ours, theirs = socket.socketpair()
    conn = engine.connect(0)
    _overdue_watchdog(engine, conn)
    early = EarlyService(engine)
    early.adopt({conn: theirs.detach()})
    early.start()
    assert engine.state.watchdogs.domains[3].dogs[0].state == EXPIRED
    assert early.held  # its action is the server's, and everything waits behind it
    assert "watchdog" in [e.kind for e in engine.take_effects()]
    early.mux.close()
    ours.close()


def test_the_ok_goes_out_before_the_others_are_adopted() -> None:
    from xsd.core.watchdogs import ARMED, EXPIRED

    engine = Engine()
    control_ours, control_theirs = socket.socketpair()
    other_ours, other_theirs = socket.socketpair()
    control = engine.connect(0)
    other = engine.connect(0)
    _overdue_watchdog(engine, other)
    # the -s, as the old process left it: deferred, the shell's to answer
    engine.receive(control, encode(Op.CONTROL, 9, 0, b"live-update\0-s\0"), 0)
    assert "deferred" in [e.kind for e in engine.take_effects()]  # the old shell's
    early = EarlyService(engine)
    early.adopt({control: control_theirs.detach()})
    assert early.answer(control)
    control_ours.settimeout(5)
    reply = _reply(control_ours, Decoder())
    assert (reply.req_id, reply.payload) == (9, b"OK\0")
    # nothing else happened yet: the overdue watchdog fires once all are adopted
    assert engine.state.watchdogs.domains[3].dogs[0].state == ARMED
    early.adopt({other: other_theirs.detach()})
    early.start()
    assert engine.state.watchdogs.domains[3].dogs[0].state == EXPIRED
    assert early.held
    early.mux.close()
    control_ours.close()
    other_ours.close()


def test_an_effect_owed_before_the_ok_holds_it_for_the_server() -> None:
    engine = Engine()
    ours, theirs = socket.socketpair()
    control = engine.connect(0)
    engine.receive(control, encode(Op.CONTROL, 9, 0, b"live-update\0-s\0"), 0)
    engine.take_effects()
    engine.receive(engine.connect(0), encode(Op.INTRODUCE, 1, 0, b"4\0001\0001\0"), 0)
    early = EarlyService(engine)  # the introduction's effect is still to be applied
    early.adopt({control: theirs.detach()})
    assert not early.answer(control)
    assert early.held
    ours.settimeout(0.2)
    try:
        early_bytes = ours.recv(65536)
    except TimeoutError:
        early_bytes = b""
    assert early_bytes == b""
    early.mux.close()
    ours.close()
