"""Kicks from outside the store: sd_notify datagrams and heartbeat streams.

Two kinds of sockets feed one watchdog each (``DOMID:N``), so that software that already
speaks either protocol needs no change:

* an sd_notify-compatible datagram socket (``--watchdog-notify``): each datagram holds
  newline-separated ``KEY=VALUE`` lines as ``sd_notify(3)`` sends them; ``WATCHDOG=1``
  kicks, ``WATCHDOG_USEC=N`` sets the timeout (rounded up to ms) and restarts it,
  ``WATCHDOG=trigger`` fires the watchdog now; other keys are ignored;
* a heartbeat stream listener (``--watchdog-heartbeat``), loopback TCP or Unix, where
  every message received on any connection is a kick (the Advanced Watch Dog between
  hosts); optionally the daemon sends its own heartbeats to a peer every pulse.

Invariants: a kick arms a stopped watchdog (as the Advanced Watch Dog is armed by its
first message); a kick for a domain that is not introduced is ignored; the engine changes
only inside :func:`_apply`, which sets ``engine.now`` and flushes output and effects right
after, as a request does; every socket is bound before the daemon says it listens.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from xsd.core.engine import Engine
from xsd.core.watchdogs.feature import of as watchdogs_of
from xsd.server.kicker_specs import HeartbeatSpec, NotifySpec, address
from xsd.server.unix_sockets import BindError, bind_unix

if TYPE_CHECKING:
    from xsd.server.shell import Shell

log = logging.getLogger("xsd")

HEARTBEAT = b"heartbeat\n"
"""What the daemon sends its peer at every pulse (any bytes kick a listener)."""


def _apply(server: Shell, what: Callable[[Engine], None]) -> None:
    engine = server.engine
    engine.now = time.monotonic_ns()
    what(engine)
    server.flush()


def kick(server: Shell, domid: int, slot: int, source: str) -> None:
    """Kick (or arm) watchdog ``slot`` of ``domid`` from ``source``."""

    def run(engine: Engine) -> None:
        if not watchdogs_of(engine).external_kick(domid, slot, source):
            log.debug("%s: domain %d has no watchdog %d", source, domid, slot)

    _apply(server, run)


def handle_notify(server: Shell, spec: NotifySpec, datagram: bytes) -> None:
    """Apply one sd_notify datagram."""
    source = f"sd_notify {spec.path}"

    def run(engine: Engine) -> None:
        wd = watchdogs_of(engine)
        if not wd.exists(spec.domid, spec.slot):
            log.debug("%s: domain %d has no watchdog %d", source, spec.domid, spec.slot)
            return
        for line in datagram.decode("utf-8", "replace").split("\n"):
            key, _, value = line.partition("=")
            if key == "WATCHDOG_USEC" and value.isdigit() and int(value) > 0:
                wd.set_timeout(spec.domid, spec.slot, -(-int(value) // 1000))
                wd.external_kick(spec.domid, spec.slot, source)
            elif key == "WATCHDOG" and value == "1":
                wd.external_kick(spec.domid, spec.slot, source)
            elif key == "WATCHDOG" and value == "trigger":
                wd.expire(spec.domid, spec.slot, f"triggered by {source}")

    _apply(server, run)


async def _serve_notify(server: Shell, spec: NotifySpec, sock: socket.socket) -> None:
    tsock = trio.socket.from_stdlib_socket(sock)
    with tsock:
        while True:
            datagram = await tsock.recv(4096)
            handle_notify(server, spec, datagram)


async def _open_listener(listen: str) -> trio.SocketListener:
    where = address(listen)
    if isinstance(where, str):
        sock = bind_unix(Path(where), backlog=16)
        return trio.SocketListener(trio.socket.from_stdlib_socket(sock))
    host, port = where
    try:
        listeners = await trio.open_tcp_listeners(port, host=host)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise BindError(exc.errno, f"cannot listen on {listen}: {reason}") from exc
    return listeners[0]


async def _connect(peer: str) -> trio.SocketStream:
    target = address(peer)
    if isinstance(target, str):
        return await trio.open_unix_socket(target)
    return await trio.open_tcp_stream(*target)


async def _serve_heartbeat(
    server: Shell, spec: HeartbeatSpec, listener: trio.SocketListener
) -> None:
    source = f"heartbeat {spec.listen}"

    async def handle(stream: trio.SocketStream) -> None:
        async with stream:
            with contextlib.suppress(trio.BrokenResourceError):
                while await stream.receive_some(4096):
                    kick(server, spec.domid, spec.slot, source)

    await trio.serve_listeners(handle, [listener])


async def _pulse(spec: HeartbeatSpec) -> None:
    """Send heartbeats to the peer every pulse, reconnecting whenever it is not there."""
    assert spec.peer is not None
    period = spec.pulse_ms / 1000
    while True:
        try:
            stream = await _connect(spec.peer)
        except OSError:
            await trio.sleep(period)
            continue
        async with stream:
            with contextlib.suppress(trio.BrokenResourceError, OSError):
                while True:
                    await stream.send_all(HEARTBEAT)
                    await trio.sleep(period)
        await trio.sleep(period)


async def serve_all(
    server: Shell, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Bind every configured kicker socket, report started, then serve them all."""
    async with trio.open_nursery() as nursery:
        for spec in server.config.watchdog_kickers:
            if isinstance(spec, NotifySpec):
                nursery.start_soon(
                    _serve_notify, server, spec, bind_unix(Path(spec.path), kind=socket.SOCK_DGRAM)
                )
                log.info(
                    "watchdog %d of domain %d: sd_notify at %s", spec.slot, spec.domid, spec.path
                )
            else:
                listener = await _open_listener(spec.listen)
                nursery.start_soon(_serve_heartbeat, server, spec, listener)
                if spec.peer is not None:
                    nursery.start_soon(_pulse, spec)
                log.info(
                    "watchdog %d of domain %d: heartbeats on %s", spec.slot, spec.domid, spec.listen
                )
        task_status.started()
