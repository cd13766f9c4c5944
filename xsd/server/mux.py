"""Every client connection served inline from one epoll: the host's passes.

The host's loop (``xsd.server.host``) waits on this epoll and hands each pass's ready
descriptors to :meth:`Multiplexer.pass_events`, which handles every ready socket
inline: read what is there, let the engine answer, write what the kernel takes. An
idle connection therefore costs its socket and its core record, no task; and a request
costs no task switch. The epoll also holds the host's own descriptors (listeners, its
wake-up), each with a callback in :attr:`Multiplexer.readers`.

Invariants:

* a socket is registered for input (EPOLLIN) unless the engine holds its requests back
  (output backed up, or a reply deferred by live update) or requests it sent are still
  buffered: then it is not read at all, so a client that does not read, or floods,
  cannot make the daemon grow;
* every pass answers at most two batches of each connection's requests (one when its
  bytes are read, one in its turn), round robin, so a flooding client delays the others
  by two batches, not by its whole backlog; a batch is 16 requests, fewer when many
  connections are busy (about 256 requests a pass in all, at least one each), so a
  pass stays short however many clients flood; and the
  turns of connections with requests left take at most 20 ms a pass (the round robin
  goes on in the next), so a socket that became ready is read within about that;
* the replies of a pass are written at its end (the flush), each connection's in one
  ``send`` however many batches it had answered, so durable mode commits the pass's
  changes once before any of them leaves (a connection the kernel cannot take more from
  is held by the engine once its queue is full, as always);
* it is registered for output (EPOLLOUT) exactly while it has output the kernel did not
  take; a byte leaves the core's queue only once the kernel accepted it;
* a pass is bounded (two batches per busy connection), and the host runs its timers and
  the services' callbacks between passes, whatever the load;
* a connection whose bytes raise, whichever path decodes them (a read, its next turn,
  a resume after its output drained), is that connection's end alone: a framing error
  (:class:`ProtocolError`) disconnects it as C does, any other exception is logged with
  its traceback and disconnects it too; nothing one connection sends ends the loop;
* once connections that held much output are gone (``Engine.freed_bytes``), a pass
  ends by giving the freed heap back to the system (:mod:`xsd.server.memtrim`);
* the same passes can run without trio (:meth:`Multiplexer.serve_early`): a restored
  daemon answers its clients while the rest of it is still being imported.
"""

from __future__ import annotations

import contextlib
import select
import time
from collections import deque
from collections.abc import Callable

from xsd.core.engine import Engine
from xsd.server import memtrim
from xsd_client.protocol import ProtocolError

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)

if TYPE_CHECKING:
    import logging
    from _socket import socket  # socket.socket's base: what restored sockets are
    from typing import Final


def _log() -> logging.Logger:
    # logging is imported when first needed: a live update's restore serves through
    # this module before it has any use for it.
    import logging

    return logging.getLogger("xsd")


_RECV_SIZE: Final = 65536
# A read fresh from a quiet connection asks for this much: its bytes object then fits
# Python's small-object allocator (512 bytes with its 33-byte header), where 64 KiB was
# a malloc of the C library's, a shrinking realloc and a free, ~800 instructions a
# request (callgrind). A read that brings this much or more (a pipelining client, a
# large value) makes the connection's next reads ask for _RECV_SIZE again.
_RECV_SMALL: Final = 512 - 33
_now: Final = time.monotonic_ns
_BATCH: Final = 256

_IN: Final = select.EPOLLIN | select.EPOLLRDHUP
_OUT: Final = select.EPOLLOUT
_READABLE: Final = select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLHUP | select.EPOLLERR
_BATCH_REQUESTS: Final = 16  # requests a connection has answered per batch (at most)
_PASS_REQUESTS: Final = 256  # a pass's share of requests, split among the busy connections
_TURNS_SLICE: Final = 0.02  # seconds of turns a pass takes at most before it polls again
_FULL_BATCHES: Final = _PASS_REQUESTS // _BATCH_REQUESTS  # busy connections that get whole batches


class Client:
    """The shell's side of one connection."""

    __slots__ = ("conn_id", "held", "mask", "recv", "recv_size", "send", "sock")

    def __init__(self, conn_id: int, sock: socket, mask: int = _IN) -> None:
        self.conn_id = conn_id
        self.sock = sock
        # The socket's two calls of every request, bound once: ``sock.send`` made a
        # bound method object at each call (a lookup by name, an allocation).
        self.recv = sock.recv
        self.send = sock.send
        self.recv_size = _RECV_SMALL  # what its next read asks for (see _RECV_SMALL)
        self.mask = mask
        self.held = False  # the engine holds this connection's requests back


class Multiplexer:
    """The client sockets of a server, and one pass over those that are ready."""

    def __init__(self, engine: Engine, flush: Callable[[], None], drop: Callable[[int], None]):
        self.engine = engine
        self.attach(flush, drop)
        self.epoll = select.epoll()
        self.clients: dict[int, Client] = {}  # by connection id
        self._by_fd: dict[int, Client] = {}
        self.turns: deque[int] = deque()  # connections with requests left to answer
        self.readers: dict[int, Callable[[], object]] = {}
        """The other descriptors in the epoll (the host's listeners, its wake-up) and
        what to call when one is readable."""
        self.before_write: Callable[[], None] | None = None
        """Called before :meth:`send` writes output (durable mode commits its journal);
        the server's flush commits once and calls :meth:`write`."""
        self._queued: set[int] = set()  # the same, as a set
        self._batch = _BATCH_REQUESTS  # requests per turn in the current pass

    def attach(self, flush: Callable[[], None], drop: Callable[[int], None]) -> None:
        """Who applies effects and writes dirty connections after a pass that needs more
        than the writes (``flush``: see :meth:`flush`), and who forgets a connection
        that ended (``drop``)."""
        self._flush = flush
        self._drop = drop

    # ------------------------------------------------------------------ membership

    def add(self, conn_id: int, sock: socket) -> None:
        """Serve ``sock`` as connection ``conn_id`` (already known to the engine)."""
        sock.setblocking(False)
        client = Client(conn_id, sock)
        self.epoll.register(sock.fileno(), client.mask)  # first: it may fail (ENOSPC)
        self.clients[conn_id] = client
        self._by_fd[sock.fileno()] = client

    def remove(self, conn_id: int) -> None:
        """Stop serving a connection and close its socket."""
        client = self.clients.pop(conn_id, None)
        if client is None:
            return
        fd = client.sock.fileno()
        if fd >= 0:
            self._by_fd.pop(fd, None)
            with contextlib.suppress(OSError):
                self.epoll.unregister(fd)
        client.sock.close()

    def sockets(self) -> dict[int, socket]:
        """Every client socket by connection id."""
        return {cid: c.sock for cid, c in self.clients.items()}

    def close(self) -> None:
        """Close every client socket and the epoll."""
        for conn_id in list(self.clients):
            self.remove(conn_id)
        self.epoll.close()

    # ------------------------------------------------------------------ output

    def send(self, conn_id: int) -> None:
        """Write what the kernel takes of a connection's output, ``before_write`` called
        first if there is any; watch for the rest."""
        if self.before_write is not None:
            conn = self.engine.connections.get(conn_id)
            if conn is not None and conn.out_bytes:
                self.before_write()
        self.write(conn_id)

    def write(self, conn_id: int) -> None:
        """:meth:`send` for a caller that has done what ``before_write`` does since the
        output was made (the server's flush: durable mode's one commit for the pass,
        where a call per connection written cost 8x1 writes about 3% of their speed)."""
        client = self.clients.get(conn_id)
        conn = self.engine.connections.get(conn_id)
        if client is None or conn is None:
            return
        send = client.send
        while conn.out_bytes:
            try:
                n = send(conn.output())
            except BlockingIOError:
                break
            except OSError:
                return  # broken: the next read sees it and drops the connection
            conn.consume(n)
        if conn.out_bytes:
            self._set_mask(client, client.mask | _OUT)
        else:
            if client.mask & _OUT:
                self._set_mask(client, client.mask & ~_OUT)
            if client.held:
                # Its held-back requests get their turn (in this pass if it has not
                # flushed yet, else the next): answered here, inside the flush, their
                # replies would wait for a pass nothing may start.
                client.held = False
                self._queue_turn(conn_id)

    def write_dirty(self) -> None:
        """:meth:`write` every connection that got output since the last call."""
        for conn_id in self.engine.take_dirty():
            self.write(conn_id)  # a native call: a bound method in a local is a Python one

    def flush(self) -> None:
        """After a pass (or a tick): the writes alone when that is all there is to do,
        else the ``flush`` given to :meth:`attach` (it commits durable mode's changes,
        logs the trace, applies the effects, then calls :meth:`write_dirty`).

        The writes alone are most passes: one request answered, nothing else. Doing
        them here, compiled, spares every such pass a call into the interpreted shell.
        """
        engine = self.engine
        if self.before_write is not None or engine.trace or engine.effects:
            self._flush()
        else:
            self.write_dirty()

    def resume(self, conn_id: int) -> None:
        """Answer a connection's held-back requests if it can take output again."""
        client = self.clients.get(conn_id)
        conn = self.engine.connections.get(conn_id)
        if client is None or conn is None or conn.deferred is not None:
            return
        client.held = False
        self._answer(client)

    def _answer(self, client: Client, data: bytes | None = None) -> None:
        """Answer one batch of a connection's buffered requests (with ``data``, the
        bytes just read, first), then decide what it waits for: its turn again (more
        buffered: ``turns``, not read meanwhile, so a flood cannot grow its buffer),
        the connection itself (``held``), or input."""
        conn_id = client.conn_id
        try:
            if data is None:
                more = self.engine.resume(conn_id, _now(), self._batch)
            else:
                more = self.engine.receive(conn_id, data, _now(), self._batch)
        except Exception as exc:
            # Whether the bad header came with this read or waited for a later turn
            # (receive, resume), a connection's bytes can only end that connection.
            self._fail(conn_id, exc)
            return
        if not more:
            if not client.mask & _IN and conn_id in self.clients:
                self._set_mask(client, client.mask | _IN)
            return
        if conn_id not in self.clients:
            return
        if self.engine.blocked(conn_id):
            client.held = True
        else:
            self._queue_turn(conn_id)
        self._set_mask(client, client.mask & ~_IN)

    def _queue_turn(self, conn_id: int) -> None:
        """Give a connection with requests buffered a turn (once, however often asked)."""
        if conn_id not in self._queued:
            self._queued.add(conn_id)
            self.turns.append(conn_id)

    def _take_turns(self) -> None:
        """One batch for each connection that still has requests buffered, round robin,
        for at most ``_TURNS_SLICE`` (at least one turn): the rest go on in the next
        pass, after the sockets that became ready meanwhile were read."""
        deadline = time.monotonic() + _TURNS_SLICE
        for _ in range(len(self.turns)):
            if time.monotonic() >= deadline:
                break
            conn_id = self.turns.popleft()
            self._queued.discard(conn_id)
            client = self.clients.get(conn_id)
            if client is None or client.held:
                continue
            try:
                # Its previous batch's replies wait for the pass's flush, with this
                # batch's: one write (and in durable mode one commit) for both.
                self._answer(client)
            except Exception as exc:
                self._fail(conn_id, exc)

    def _set_mask(self, client: Client, mask: int) -> None:
        if mask != client.mask:
            client.mask = mask
            with contextlib.suppress(OSError):
                self.epoll.modify(client.sock.fileno(), mask)

    # ------------------------------------------------------------------ the loop

    def serve_early(
        self, stop: Callable[[], bool], between: Callable[[], None], wait: float = 0.002
    ) -> None:
        """Serve without trio until ``stop()`` is true, checking it at least every
        ``wait`` seconds and calling ``between()`` as often (no accepts: only the
        clients already here)."""
        epoll = self.epoll
        while not stop():
            events = epoll.poll(0 if self.turns else wait, _BATCH)
            if events or self.turns:
                self.pass_events(events)
            between()

    def pass_events(self, events: list[tuple[int, int]]) -> None:
        """Handle ready sockets, give each connection with requests left its turn, and
        flush."""
        by_fd = self._by_fd
        # The more connections are busy, the fewer requests each answers per turn, so a
        # pass stays short and a connection that asks once (domain 0's tools) waits for
        # about _PASS_REQUESTS requests of the others, not for 16 of each.
        busy = len(events) + len(self.turns)
        self._batch = _BATCH_REQUESTS if busy <= _FULL_BATCHES else max(1, _PASS_REQUESTS // busy)
        for fd, mask in events:
            client = by_fd.get(fd)
            if client is None:
                reader = self.readers.get(fd)
                if reader is not None:
                    reader()
                continue
            try:
                if mask & _OUT:
                    self.send(client.conn_id)
                if mask & _READABLE:
                    self._read(client)
            except Exception as exc:
                self._fail(client.conn_id, exc)
        if self.turns:
            self._take_turns()
        try:
            self.flush()
        except Exception:
            # Not one connection's: log it, keep serving (the next pass flushes again).
            _log().exception("internal error flushing output; serving on")
        if self.engine.freed_bytes >= memtrim.TRIM_AFTER:
            self.engine.freed_bytes = 0
            memtrim.trim()  # what a connection that went held, back to the system

    def _read(self, client: Client) -> None:
        conn_id = client.conn_id
        if client.held or conn_id not in self.clients:
            return
        try:
            data = client.recv(client.recv_size)
        except BlockingIOError:
            return
        except OSError as exc:
            _log().debug("connection %d: %s", conn_id, exc)
            self._drop(conn_id)
            return
        if not data:
            self._drop(conn_id)
            return
        client.recv_size = _RECV_SIZE if len(data) >= _RECV_SMALL else _RECV_SMALL
        self._answer(client, data)

    # ------------------------------------------------------------------ errors

    def _fail(self, conn_id: int, exc: Exception) -> None:
        """End the connection whose input raised ``exc``; the daemon and the others stay.

        A :class:`ProtocolError` is the client's fault (C disconnects it too): one
        warning. Anything else is a bug in handling that connection: its traceback is
        logged. Dropping it must not fail in turn: if it does, the socket still goes.
        """
        if isinstance(exc, ProtocolError):
            # Replies not yet written go with the connection, as in C (which answers
            # nothing of a read that ends in a bad header: tests/conformance).
            _log().warning("connection %d: %s; disconnecting", conn_id, exc)
        else:
            _log().error("connection %d: internal error; disconnecting", conn_id, exc_info=exc)
        try:
            self._drop(conn_id)
        except Exception:
            _log().exception("connection %d: dropping it failed; closing its socket", conn_id)
            self.remove(conn_id)
            with contextlib.suppress(Exception):
                self.engine.disconnect(conn_id)
