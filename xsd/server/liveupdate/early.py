"""Serving a restored state before the rest of the daemon is imported.

After a live update's exec, the new process has its state back well before trio and the
server's modules are imported (~100 ms here). Rather than keep everyone waiting for
them, it answers the ``-s`` that started it and serves the connections it inherited
through the same :class:`~xsd.server.mux.Multiplexer`, synchronously, while a thread
imports the rest; then the server takes the engine and the multiplexer over.

Invariants:

* nothing here needs trio or the server's modules;
* once the engine has an effect to apply (a domain introduced, a connection to close, a
  control command for the shell...), early serving stops: that effect and every reply
  after it wait for the server, which applies effects before it sends, as always;
* timers run as in the server: a deadline that passed during the update fires before
  the ``OK`` (after the requests already queued, kicks among them), later ones when due;
* requests are traced (``engine.trace``) if the log wants them, for the server to
  write out; new connections wait in the listen backlog.
"""

from __future__ import annotations

import os
import sys
import time
from _socket import socket
from collections.abc import Callable

from xsd.core.engine import Engine
from xsd.server.mux import Multiplexer

_SWITCH_INTERVAL = 0.001
"""While the import thread runs, the GIL changes hands this often (default 5 ms), so a
request waits at most about this long for it."""

_IDLE_WAKE = 0.01
"""How often the loop wakes with nothing to do (to see the import done, fire timers):
seldom, so as not to take the GIL from the import thread for nothing."""


class EarlyService:
    """The restored engine and its inherited connections, served without trio."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.mux = Multiplexer(engine, self._flush, self._drop)
        self.held = False
        self._next_check = 0  # when _tick() next looks for due deadlines (ns)
        settings = engine.state.settings
        if settings.trace_on and settings.trace_file and "io" in settings.log_classes:
            engine.trace = []

    def adopt(self, conn_fds: dict[int, int]) -> None:
        """Serve these connections (id -> inherited descriptor)."""
        for conn_id, fd in conn_fds.items():
            # The C socket, not socket.socket: the socket module (its enums) costs
            # milliseconds of the pause, and the multiplexer needs nothing it adds.
            os.set_inheritable(fd, False)
            sock = socket(fileno=fd)
            self.mux.add(int(conn_id), sock)

    def answer(self, conn_id: int) -> bool:
        """Answer the ``-s`` of connection ``conn_id`` (adopted already) and send it at
        once, before anything else is done, unless an effect must go first (then the
        server sends it). True if it was sent."""
        self.engine.complete_deferred(conn_id, b"OK\0")
        if self.engine.effects:
            self.held = True
            return False
        self.mux.send(conn_id)
        return True

    def start(self) -> None:
        """Every connection adopted: forget those that came without a descriptor, and
        answer the requests queued behind the ``-s`` and everyone else's."""
        for conn_id in list(self.engine.state.connections):
            if conn_id not in self.mux.clients:
                self.engine.disconnect(conn_id)  # no descriptor came with it
        for conn_id in list(self.engine.state.connections):
            self.mux.resume(conn_id)
        self._tick()  # flushes

    def serve_while(self, busy: Callable[[], bool]) -> None:
        """Serve until ``busy()`` turns false, or an effect needs the server."""
        interval = sys.getswitchinterval()
        sys.setswitchinterval(_SWITCH_INTERVAL)
        try:
            self.mux.serve_early(lambda: self.held or not busy(), self._tick, _IDLE_WAKE)
        finally:
            sys.setswitchinterval(interval)

    def _tick(self) -> None:
        """Fire what is due (an expiry's action is an effect: the server's), then flush."""
        if self.held:
            return
        now = time.monotonic_ns()
        if now >= self._next_check:  # next_deadline() looks at every connection
            self._next_check = now + int(_IDLE_WAKE * 1e9)
            deadline = self.engine.next_deadline()
            if deadline is not None and deadline <= now:
                self.engine.tick(now)
        self._flush()

    def _flush(self) -> None:
        if self.engine.effects:
            self.held = True  # the server applies them, then sends
            return
        for conn_id in self.engine.take_dirty():
            self.mux.send(conn_id)

    def _drop(self, conn_id: int) -> None:
        self.mux.remove(conn_id)
        self.engine.disconnect(conn_id)
