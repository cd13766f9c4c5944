"""libxl's domain lifecycle replayed against xsd and against C xenstored, compared.

The requests are data (``tools/bench/libxl_lifecycle.txt``, read by
``tools/bench/libxl_lifecycle.py``, whose docstring says where each comes from and how
the comparison is designed): ``xl create`` of a PV and an HVM
guest with a disk and a vif, a vif hot-plugged and unplugged, ``xl shutdown``, ``xl
reboot``, ``xl destroy``, and a domain id released and used again. Each actor has its
own connection; against xsd a guest's kernel uses the domain's own socket (an
unprivileged connection, so only the permissions libxl wrote before INTRODUCE let it
work), against C xenstored, whose socket clients are all domain 0, a connection of its
own. C runs with every domain id known to its hypervisor shim (``XSD_STANDIN_DOMAINS=all``),
as on a Xen host where libxl created the domain before writing its nodes.

After every request each open connection is sent a barrier (GET_DOMAIN_PATH) and what
arrives before its answer is recorded, so the transcript holds every reply and every
watch event in the order each connection got them. The transcripts, and the trees left
behind, must be identical.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.daemons import ReferenceDaemon, XsdDaemon, need_reference
from tests.support.differential import (
    BARRIER_REQ_ID,
    REPLY_TIMEOUT,
    assert_same,
    dump_tree,
    fmt,
    load_rules,
    normalise_reply,
    open_conn,
)
from tests.support.wire import RawConn
from tools.bench.libxl_lifecycle import Guest, Request, expand, lifecycle
from xsd_client.protocol import Op, join_args

GuestSocket = Callable[[int], Path]


def payload_of(request: Request) -> bytes:
    """The wire payload of a replay request (libxenstore's forms)."""
    if request.op == "WRITE":
        path, value = request.args
        return path.encode() + b"\0" + value.encode()
    if request.op in ("TRANSACTION_START", "RESET_WATCHES"):
        return b"\0"
    return join_args(*request.args)


class Replay:
    """The actors' connections to one daemon, and the transcript of what they got."""

    def __init__(self, socket: Path, guest_socket: GuestSocket | None) -> None:
        self.socket = socket
        self.guest_socket = guest_socket
        self.conns: dict[str, RawConn] = {}
        self.tx: dict[str, int] = {}
        self.lines: list[str] = []
        self.rules = load_rules()
        self.next_req = 1

    def conn(self, actor: str) -> RawConn:
        if actor not in self.conns:
            path = self.socket
            if actor.startswith("guest") and self.guest_socket is not None:
                path = self.guest_socket(int(actor[5:]))
            self.conns[actor] = open_conn(path)
        return self.conns[actor]

    def close(self) -> None:
        for conn in self.conns.values():
            conn.close()

    def _read_until(self, actor: str, req_id: int, op: int = 0, payload: bytes = b"") -> None:
        conn = self.conns[actor]
        while True:
            try:
                packet = conn.recv_packet(REPLY_TIMEOUT)
            except (TimeoutError, EOFError, ConnectionResetError) as exc:
                self.lines.append(f"  {actor}: {type(exc).__name__}")
                del self.conns[actor]
                conn.close()
                return
            if packet.op == Op.WATCH_EVENT:
                self.lines.append(f"  {actor} event {fmt(packet)}")
                continue
            if packet.req_id == req_id:
                if req_id != BARRIER_REQ_ID:
                    body = normalise_reply(self.rules, op, payload, packet)
                    self.lines.append(f"  {actor} reply {fmt(packet, body)}")
                    if packet.op == Op.TRANSACTION_START:
                        self.tx[actor] = int(packet.payload.rstrip(b"\0"))
                return
            self.lines.append(f"  {actor} unexpected {fmt(packet)}")

    def play(self, n: int, request: Request) -> None:
        actor = request.actor
        self.lines.append(f"[{n}] {actor} {'tx ' if request.tx else ''}{request.op} {request.args}")
        start = len(self.lines)
        if request.op == "CLOSE":
            conn = self.conns.pop(actor, None)
            if conn is not None:
                conn.close()
            return
        conn = self.conn(actor)
        op = Op[request.op]
        payload = payload_of(request)
        tx = self.tx.get(actor, 0) if request.tx or op == Op.TRANSACTION_END else 0
        req_id = self.next_req
        self.next_req += 1
        conn.send(op, payload, tx, req_id)
        self._read_until(actor, req_id, op, payload)
        for other in list(self.conns):
            self.conns[other].send(Op.GET_DOMAIN_PATH, b"0\0", 0, BARRIER_REQ_ID)
            self._read_until(other, BARRIER_REQ_ID)
        # docs/differences.md: a step whose reply and events may come in either order
        if any(r.action == "unordered" and r.applies(op, payload) for r in self.rules):
            self.lines[start:] = sorted(self.lines[start:])

    def run(self, parts: list[tuple[str, list[Request]]]) -> list[str]:
        n = 0
        for what, requests in parts:
            self.lines.append(f"=== {what}")
            for request in requests:
                self.play(n, request)
                n += 1
        return self.lines


def replay(
    socket: Path, parts: list[tuple[str, list[Request]]], guest_socket: GuestSocket | None
) -> list[str]:
    session = Replay(socket, guest_socket)
    try:
        return session.run(parts)
    finally:
        session.close()


def errors(lines: list[str], actor: str) -> list[str]:
    """The error replies one actor got."""
    return [line for line in lines if line.startswith(f"  {actor} reply ERROR")]


@pytest.fixture(name="daemons")
def daemons_fixture(tmp_path: Path) -> Iterator[tuple[ReferenceDaemon, XsdDaemon]]:
    need_reference()
    ref = ReferenceDaemon(tmp_path / "ref", "c", domains="all")
    try:
        sut = XsdDaemon(tmp_path / "sut", "--watchdogs-per-domain", "0")
    except BaseException:
        ref.stop()
        raise
    yield ref, sut
    sut.stop()
    ref.stop()


def _guest_socket(daemon: XsdDaemon) -> GuestSocket:
    return lambda domid: daemon.rundir / "domains" / str(domid) / "socket"


@pytest.mark.reference
def test_the_libxl_lifecycle_gets_the_answers_c_xenstored_gives(
    daemons: tuple[ReferenceDaemon, XsdDaemon],
) -> None:
    ref, sut = daemons
    parts = lifecycle()
    c_lines = replay(ref.socket, parts, None)
    xsd_lines = replay(sut.socket, parts, _guest_socket(sut))
    assert_same(c_lines, xsd_lines, "libxl lifecycle transcript")
    assert_same(dump_tree(ref.socket), dump_tree(sut.socket), "tree after the lifecycle")
    # the replay did what a toolstack needs: the guests got no error at all, and the
    # toolstack only the ones libxl expects (removing what is not there yet, reading
    # what does not exist yet)
    guests = {line.split()[0] for line in xsd_lines if line.startswith("  guest")}
    assert guests == {"guest1", "guest2", "guest3"}
    for guest in guests:
        assert errors(xsd_lines, guest) == []
    assert {line.rsplit(" ", 1)[1] for line in errors(xsd_lines, "xl")} == {"b'ENOENT\\x00'"}
    # every guest saw its backends go InitWait then Connected; the domains came and went
    for guest in guests:
        seen = backend_states(xsd_lines, guest)
        assert seen[:2] == [b"2", b"4"] and seen.count(b"4") >= 2, (guest, seen)
    introduced = [line for line in xsd_lines if " reply INTRODUCE(" in line]
    released = [line for line in xsd_lines if " reply RELEASE(" in line]
    assert len(introduced) == len(released) == 4
    assert all(line.endswith("b'OK\\x00'") for line in introduced + released)
    # xenconsoled's watches: the event every new watch gets, then one per domain
    for special, token in (("@introduceDomain", "console-in"), ("@releaseDomain", "console-out")):
        event = f"  console event WATCH_EVENT(req=0,tx=0) b'{special}\\x00{token}\\x00'"
        assert xsd_lines.count(event) == 1 + 4, special


def backend_states(lines: list[str], actor: str) -> list[bytes]:
    """The values ``actor`` read from backend ``state`` nodes, in order."""
    out = []
    for request, reply in itertools.pairwise(lines):
        asked = f"] {actor} READ ('/local/domain/0/backend/" in request and "/state'" in request
        if asked and " reply READ(" in reply:
            out.append(reply.rsplit(" b'", 1)[1].rstrip("'").encode())
    return out


def test_the_lifecycle_with_watchdogs_leaves_nothing_behind(tmp_path: Path) -> None:
    """With the watchdogs on (xsd's default) INTRODUCE adds each guest's watchdog nodes
    to the home libxl made; destroying the domain leaves no node of it behind."""
    daemon = XsdDaemon(tmp_path / "xsd")
    try:
        parts = lifecycle()
        lines = replay(daemon.socket, parts, _guest_socket(daemon))
        for guest in ("guest1", "guest2", "guest3"):
            assert errors(lines, guest) == []
        tree = dump_tree(daemon.socket)
        assert not [line for line in tree if line.startswith(("/local/domain/1", "/libxl/1"))]
        assert not [line for line in tree if "/device-model/" in line or "/vm/0" in line]
        # a domain prepared again after all that gets its watchdogs once introduced
        again = [("xl create", list(expand("create", Guest(1, "pv"))))]
        lines = replay(daemon.socket, again, _guest_socket(daemon))
        assert errors(lines, "guest1") == []
        assert [line for line in dump_tree(daemon.socket) if "/local/domain/1/watchdog/0 " in line]
    finally:
        daemon.stop()
