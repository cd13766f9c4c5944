"""Helpers for the domain tests: guests on their own sockets, accounting, memory.

A :class:`Env` wraps one running xsd and a domain 0 connection. ``env.introduce(d)`` does
what a toolstack does (INTRODUCE, a home owned by the guest) and returns a connection
acting as domain ``d``. :meth:`Env.healthy` is what every test ends with: domain 0 is
served promptly, the daemon's consistency check finds nothing, and each live domain's node
usage as the daemon reports it equals a count of the nodes it owns.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.daemons import XsdDaemon
from tests.support.wire import RawConn
from xsd_client.protocol import (
    Op,
    encode,
    join_args,
    parse_directory,
    parse_directory_part,
    parse_perms,
)

OK = ("OK", b"OK\0")

# Options every daemon of these tests runs with: no watchdog nodes in the guests' homes,
# and the slow-client deadlines short enough to see them expire within a test.
FAST = ("--watchdogs-per-domain", "0", "--event-timeout", "1", "--request-timeout", "1")

DomId = Callable[[], int]
"""The ``domid`` fixture: each call, a domid no earlier test of the session used."""
MIB = 1024


def home(d: int) -> str:
    return f"/local/domain/{d}"


def err(name: str) -> tuple[str, bytes]:
    """The ``call`` result of an error reply."""
    return ("ERROR", name.encode() + b"\0")


def rss_kib(pid: int) -> int:
    """The process's resident set size (VmRSS) in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def wait_until(check: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``check`` until it holds (True) or ``timeout`` passes (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def send_nowait(conn: RawConn, data: bytes) -> int:
    """Send as much of ``data`` as the socket takes without blocking; return how much."""
    sent = 0
    conn.sock.setblocking(False)
    try:
        while sent < len(data):
            try:
                sent += conn.sock.send(data[sent : sent + 65536])
            except BlockingIOError:
                break
    finally:
        conn.sock.setblocking(True)
        conn.sock.settimeout(5.0)
    return sent


def pipeline(
    conn: RawConn, packets: list[tuple[int, bytes]], tx_id: int = 0
) -> list[tuple[str, bytes]]:
    """Send every request at once, then read the replies in order."""
    data = b"".join(encode(op, i + 1, tx_id, payload) for i, (op, payload) in enumerate(packets))
    conn.send_raw(data)
    out = []
    for i in range(len(packets)):
        reply = conn.recv_reply()
        assert reply.req_id == i + 1
        out.append(("ERROR" if reply.op == Op.ERROR else "OK", reply.payload))
    return out


def write_req(path: str, value: bytes | str = b"") -> tuple[int, bytes]:
    """A WRITE request for :func:`pipeline` (the value exact, no trailing NUL)."""
    data = value.encode() if isinstance(value, str) else value
    return (Op.WRITE, path.encode() + b"\0" + data)


class Env:
    """One daemon, a domain 0 connection, and the guests a test introduced."""

    def __init__(self, daemon: XsdDaemon) -> None:
        self.daemon = daemon
        self.dom0 = RawConn(str(daemon.socket))
        self.domains: list[int] = []
        self.conns: list[RawConn] = [self.dom0]

    @property
    def pid(self) -> int:
        return self.daemon.pid

    def rss(self) -> int:
        return rss_kib(self.daemon.pid)

    def connect0(self) -> RawConn:
        """Another domain 0 connection."""
        conn = RawConn(str(self.daemon.socket))
        self.conns.append(conn)
        return conn

    def guest(self, domid: int) -> RawConn:
        """A new connection of domain ``domid`` (through its own socket)."""
        conn = RawConn(str(self.daemon.rundir / "domains" / str(domid) / "socket"))
        self.conns.append(conn)
        return conn

    def introduce(self, domid: int, home: bool = True) -> RawConn:
        """Introduce ``domid`` (with a home it owns, ``n<domid>``) and connect as it."""
        assert self.dom0.call(Op.INTRODUCE, domid, 1, 1) == OK
        if domid not in self.domains:
            self.domains.append(domid)
        if home:
            assert self.dom0.call(Op.MKDIR, f"/local/domain/{domid}") == OK
            assert self.dom0.call(Op.SET_PERMS, f"/local/domain/{domid}", f"n{domid}") == OK
        return self.guest(domid)

    def release(self, domid: int) -> None:
        assert self.dom0.call(Op.RELEASE, domid) == OK
        if domid in self.domains:
            self.domains.remove(domid)

    def control(self, *args: str | int) -> str:
        kind, payload = self.dom0.call(Op.CONTROL, *args)
        assert kind == "OK", (args, payload)
        return payload.rstrip(b"\0").decode()

    def usage(self, domid: int) -> int:
        """Nodes the daemon charges to ``domid`` (``xenstore-control quota <domid>``)."""
        for line in self.control("quota", domid).splitlines():
            if line.startswith("nodes"):
                return int(line.split(":")[1])
        raise AssertionError("no nodes line")

    def owners(self, top: str = "/") -> dict[str, int]:
        """Every node below ``top`` and its owner, as domain 0 sees them."""
        out: dict[str, int] = {}
        stack = [top]
        while stack:
            path = stack.pop()
            kind, perms = self.dom0.call(Op.GET_PERMS, path)
            if kind != "OK":
                continue
            out[path] = int(parse_perms(perms)[0][1:])
            base = "" if path == "/" else path
            stack.extend(f"{base}/{name}" for name in self.children(path))
        return out

    def children(self, path: str) -> list[str]:
        """Child names of ``path`` as domain 0 sees them, paging a big directory."""
        kind, listing = self.dom0.call(Op.DIRECTORY, path)
        if kind == "OK":
            return parse_directory(listing)
        names: list[str] = []
        offset = 0
        while listing == b"E2BIG\0":
            kind, payload = self.dom0.call(Op.DIRECTORY_PART, path, offset)
            _, chunk, complete = parse_directory_part(payload)
            names += chunk
            offset += sum(len(n) + 1 for n in chunk)
            if complete:
                break
        return names

    def served(self, timeout: float = 2.0) -> float:
        """Seconds a fresh domain 0 connection waits for a READ (asserts it is answered)."""
        start = time.monotonic()
        with RawConn(str(self.daemon.socket), timeout=timeout) as probe:
            assert probe.call(Op.READ, "/tool/xenstored") == ("OK", b"")
        return time.monotonic() - start

    def healthy(self) -> None:
        """Domain 0 is served, the tree is consistent, and the node accounting is true."""
        assert self.daemon.proc.poll() is None, "the daemon died"
        self.served()
        before = self.daemon.output().count("check:")
        assert self.control("check") == "OK"
        assert self.daemon.output().count("check:") == before, self.daemon.output()[-2000:]
        if self.domains:
            owners = self.owners()
            for domid in self.domains:
                counted = sum(1 for o in owners.values() if o == domid)
                assert self.usage(domid) == counted, (domid, counted)

    def close(self) -> None:
        for conn in self.conns:
            conn.close()


def raw_socket(path: Path) -> socket.socket:
    """A plain connected Unix socket (for framing abuse)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5.0)
    for _ in range(500):
        try:
            sock.connect(str(path))
            return sock
        except BlockingIOError:  # the listen backlog is full: the daemon is accepting
            time.sleep(0.01)
    raise AssertionError(f"cannot connect to {path}")


def call_args(*args: bytes | str | int) -> bytes:
    return join_args(*args)
