"""Helpers for the watchdog tests: domains, raw node writes, polling.

Every helper talks the raw protocol (``wire.RawConn``) so a test sees exactly what a
guest's connection sees. Timing: tests wait for eventual states with generous upper
bounds (:func:`wait_until`) and never assert tight durations.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from pathlib import Path

from tests.support.daemons import XsdDaemon
from tests.support.wire import RawConn
from xsd_client.protocol import Op


def write(conn: RawConn, path: str, value: str | bytes) -> tuple[str, bytes]:
    """WRITE ``value`` exactly (no trailing NUL); ("OK", b"OK\\0") or ("ERROR", b"E...\\0")."""
    data = value.encode() if isinstance(value, str) else value
    reply = conn.request(Op.WRITE, path.encode() + b"\0" + data)
    return ("ERROR" if reply.op == Op.ERROR else "OK"), reply.payload


def ok(conn: RawConn, path: str, value: str | bytes) -> None:
    """Write, and insist it succeeds."""
    result = write(conn, path, value)
    assert result == ("OK", b"OK\0"), (path, value, result)


def refused(conn: RawConn, path: str, value: str | bytes) -> str:
    """Write, insist it fails, and return the error name."""
    kind, payload = write(conn, path, value)
    assert kind == "ERROR", (path, value, payload)
    return payload.rstrip(b"\0").decode()


def read(conn: RawConn, path: str) -> str:
    """The value as text, or ``!ERRNAME`` for an error."""
    reply = conn.request(Op.READ, path.encode() + b"\0")
    if reply.op == Op.ERROR:
        return "!" + reply.payload.rstrip(b"\0").decode()
    return reply.payload.decode()


def introduce(dom0: RawConn, daemon: XsdDaemon, domid: int) -> RawConn:
    """Introduce ``domid`` as a toolstack does and return a connection acting as it."""
    assert dom0.call(Op.INTRODUCE, domid, 1, 1) == ("OK", b"OK\0")
    ok(dom0, f"/local/domain/{domid}", "")
    assert dom0.call(Op.SET_PERMS, f"/local/domain/{domid}", f"n{domid}") == ("OK", b"OK\0")
    return guest(daemon, domid)


def guest(daemon: XsdDaemon, domid: int) -> RawConn:
    """A new connection of domain ``domid`` (its per-domain socket)."""
    return RawConn(str(daemon.rundir / "domains" / str(domid) / "socket"))


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll ``predicate`` until true (True) or ``timeout`` seconds pass (False)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def state(conn: RawConn, domid: int, slot: int) -> str:
    """The watchdog's ``state`` node."""
    return read(conn, f"/local/domain/{domid}/watchdog/{slot}/state")


def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(rundir: Path, *args: str) -> XsdDaemon:
    """An xsd daemon with extra options."""
    return XsdDaemon(rundir, *args)
