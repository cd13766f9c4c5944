"""The request engine: bytes from a connection in, replies, events and effects out.

The shell feeds each connection's bytes to :meth:`Engine.receive` and writes out what
:meth:`Connection.output` holds. One request at a time per connection, in arrival
order, as C xenstored does. The engine keeps the flow: it decodes, decides when a
connection is served, looks the request type up in the one table of
``xsd.core.requests`` (handler and flags) and queues the reply; the handlers and the
features get a :class:`~xsd.core.context.Context`, not the engine. Invariants:

* every request gets exactly one reply, of its own type or ERROR, echoing its req_id
  and tx_id; a reply that would exceed the payload limit becomes E2BIG;
* watch events caused by a request are queued (to every connection, the requester's
  included) before the request's reply; WATCH's own first event comes after its ``OK``;
* a connection is served only while :mod:`xsd.core.flow` allows it: its output under
  :data:`OUT_HIGH_WATER` (a client that does not read cannot make the daemon grow), its
  domain's ``outstanding`` and ``output`` quotas, its domain's write credit, in turns;
* the engine never performs I/O: what the shell must do besides writing (open a
  domain socket, close a connection, reopen the trace file) comes out of
  :meth:`Engine.take_effects`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from xsd.core import ratelimit
from xsd.core.connections import REPLY, Connection
from xsd.core.context import EVENT_QUEUE_LIMIT, OWN_MESSAGE, Context
from xsd.core.credentials import Credentials
from xsd.core.effects import (
    CloseConnection,
    DeferredRequest,
    Effect,
    RequestBug,
    ResumeConnection,
)
from xsd.core.errors import Deferred, XsError
from xsd.core.flow import OUT_HIGH_WATER, Flow
from xsd.core.requests import TABLE
from xsd.core.requests.request_type import COMMIT, IGNORES_TX, PRIVILEGED, SIDE, WRITE
from xsd.core.state import State
from xsd.core.trace import TraceRecord
from xsd.core.views import Transaction
from xsd.core.watchdogs.feature import install as install_watchdogs
from xsd_client.protocol import HEADER, PAYLOAD_MAX, Op, Packet, encode

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)
if TYPE_CHECKING:
    from typing import Final, TypeVar

    F = TypeVar("F")

__all__ = ["EVENT_QUEUE_LIMIT", "OUT_HIGH_WATER", "OWN_MESSAGE", "Engine"]

_ERROR: Final = int(Op.ERROR)
_pack: Final = HEADER.pack
_TABLE: Final = TABLE  # here, compiled code reads it without a lookup by name


class Engine:
    """Applies requests to a :class:`State`.

    ``features`` are called with the engine's :class:`Context` to install themselves
    (as observers, each with its check of writes); by default the watchdogs.
    """

    def __init__(
        self,
        state: State | None = None,
        features: Iterable[Callable[[Context], object]] = (install_watchdogs,),
    ) -> None:
        self.ctx = ctx = Context(state if state is not None else State())
        self.state = ctx.state
        # The state's connections by id, read on every request: State is a Fields class
        # (not compiled), so reading it through the state is a lookup by name. The dict
        # is the state's for its whole life (filled and emptied, never replaced).
        self.connections = ctx.state.connections
        self._flow = Flow(ctx)
        for install in features:
            install(ctx)

    # The shell's view of the context: the time of the request, effects, the trace, and
    # the output let go since it last gave memory back (xsd.server.memtrim).

    @property
    def now(self) -> int:
        return self.ctx.now

    @now.setter
    def now(self, value: int) -> None:
        self.ctx.now = value

    @property
    def effects(self) -> list[Effect]:
        return self.ctx.effects

    @property
    def trace(self) -> list[TraceRecord] | None:
        return self.ctx.trace

    @trace.setter
    def trace(self, value: list[TraceRecord] | None) -> None:
        self.ctx.trace = value

    @property
    def side_changed(self) -> bool:
        return self.ctx.side_changed

    @side_changed.setter
    def side_changed(self, value: bool) -> None:
        self.ctx.side_changed = value

    @property
    def freed_bytes(self) -> int:
        return self.ctx.freed_bytes

    @freed_bytes.setter
    def freed_bytes(self, value: int) -> None:
        self.ctx.freed_bytes = value

    def feature(self, kind: type[F]) -> F:
        """The installed feature of class ``kind`` (LookupError if none)."""
        return self.ctx.feature(kind)

    def check(self) -> list[str]:
        """Consistency check of the tree (``xenstore-control check``)."""
        return self.state.tree.check()

    # ------------------------------------------------------------------ connections

    def connect(self, domid: int = 0, creds: Credentials | None = None) -> int:
        """Register a new connection acting as ``domid``; returns its id."""
        return self.ctx.connect(domid, creds)

    def disconnect(self, conn_id: int) -> None:
        """Forget a connection: its watches and open transactions go with it."""
        self.ctx.disconnect(conn_id)

    def receive(
        self, conn_id: int, data: bytes | memoryview, now: int = 0, budget: int = 0
    ) -> bool:
        """Buffer bytes from a connection and answer every whole request that fits.

        Returns True if whole requests remain buffered: because the output queue is full,
        a reply is deferred or too many replies are outstanding (:meth:`blocked` says
        so: call :meth:`resume` once that changes), or because ``budget`` requests (0:
        no limit) were answered already (call :meth:`resume` after writing them out).

        Raises:
            ProtocolError: the connection broke the framing rules and must be closed.
        """
        conn = self.connections[conn_id]
        conn.decoder.receive_data(data)
        self.ctx.now = now
        return self._process(conn, budget)

    def resume(self, conn_id: int, now: int = 0, budget: int = 0) -> bool:
        """Answer requests left buffered (see :meth:`receive`).

        Raises:
            ProtocolError: as :meth:`receive` (a bad header can wait in the buffer
                behind requests answered in an earlier batch).
        """
        self.ctx.now = now
        return self._process(self.connections[conn_id], budget)

    def blocked(self, conn_id: int) -> bool:
        """True if the connection's buffered requests must wait for its output to drain,
        its deferred reply, its outstanding replies to be read, or write credit."""
        conn = self.connections.get(conn_id)
        return conn is None or self._flow.blocked(conn)

    def _process(self, conn: Connection, budget: int = 0) -> bool:
        decoder = conn.decoder
        privileged = conn.privileged
        # An unprivileged connection cannot change its own limits: look them up once.
        limits = None if privileged else self.ctx.limits(conn.domid)
        connections = self.connections
        flow = self._flow
        left = budget
        while (
            conn.out_bytes < OUT_HIGH_WATER
            and conn.deferred is None
            and (limits is None or not flow.held(conn, limits))
        ):
            if budget:
                if not left:
                    return decoder.has_packet()
                left -= 1
            if not privileged and decoder.has_packet() and flow.waits(conn, True):
                return True  # served again in its turn once paid back (tick)
            request = decoder.next_fields()
            if request is None:
                # Remember since when a request is half-received (it may time out): a
                # request trickled in byte by byte keeps the time its first byte came.
                if not decoder.has_data():
                    conn.partial_since = None
                elif conn.partial_since is None:
                    conn.partial_since = self.ctx.now
                return False
            conn.partial_since = None  # whole: what follows is a new request
            # Unpacked: a call with *request is a generic Python call even compiled.
            op, req_id, tx_id, payload = request
            self.handle(conn, op, req_id, tx_id, payload)
            if conn.id not in connections or not decoder.has_data():
                return False  # gone, or nothing buffered (one request a read, mostly)
        conn.partial_since = None
        return decoder.has_packet()

    def complete_deferred(self, conn_id: int, payload: bytes, error: str | None = None) -> None:
        """Give the reply of a deferred request (a CONTROL reply, or ERROR ``error``).

        The connection's later requests are answered from the next :meth:`resume`.
        """
        conn = self.connections.get(conn_id)
        if conn is None or conn.deferred is None:
            return
        req_id, tx_id = conn.deferred
        conn.deferred = None
        if error is not None:
            frame = encode(_ERROR, req_id, tx_id, error.encode() + b"\0")
        else:
            frame = encode(Op.CONTROL, req_id, tx_id, payload)
        ctx = self.ctx
        conn.queue(frame, now=ctx.now)
        if ctx.trace is not None:  # logging
            ctx.trace.append((conn_id, conn.domid, ctx.now, frame))
        ctx.dirty[conn_id] = None

    # ------------------------------------------------------------------ time

    def tick(self, now: int) -> None:
        """Act on every deadline at or before ``now``."""
        ctx = self.ctx
        ctx.now = now
        self._flow.next_in_turn()
        settings = self.state.settings
        event_cutoff = now - settings.event_timeout_ns
        request_cutoff = now - settings.request_timeout_ns
        for conn in list(self.connections.values()):
            if settings.event_timeout_ns and not conn.privileged:
                oldest = conn.oldest_event()
                if oldest is not None and oldest <= event_cutoff:
                    queued = conn.out_bytes
                    dropped = conn.expire_events(event_cutoff + 1)
                    ctx.freed_bytes += queued - conn.out_bytes
                    ctx.log(f"conn {conn.id} (dom{conn.domid}): {dropped} watch events timed out")
            if (
                settings.request_timeout_ns
                and conn.partial_since is not None
                and conn.partial_since <= request_cutoff
            ):
                ctx.log(f"conn {conn.id} (dom{conn.domid}): request not completed in time")
                ctx.effects.append(CloseConnection(conn.id))
                ctx.disconnect(conn.id)
                continue
            if (
                not conn.privileged
                and conn.decoder.has_packet()
                and not self._flow.in_debt(conn.domid)
                and not self.blocked(conn.id)
            ):
                ctx.effects.append(ResumeConnection(conn.id))  # it paid its writes back
        for observer in ctx.observers:
            observer.tick()

    def next_deadline(self) -> int | None:
        """The earliest time (monotonic ns) :meth:`tick` has something to do, if any."""
        settings = self.state.settings
        deadlines = []
        for conn in self.connections.values():
            if settings.event_timeout_ns and not conn.privileged:
                oldest = conn.oldest_event()
                if oldest is not None:
                    deadlines.append(oldest + settings.event_timeout_ns)
            if settings.request_timeout_ns and conn.partial_since is not None:
                deadlines.append(conn.partial_since + settings.request_timeout_ns)
        if settings.write_rate:
            for domain in self.state.domains.values():
                paid = ratelimit.paid_back_at(domain, settings.write_rate)
                if paid is not None:
                    deadlines.append(paid)
                elif domain.domid in self._flow.turns.queues:
                    deadlines.append(self.ctx.now + 1_000_000)  # the next one's turn, soon
        for observer in self.ctx.observers:
            deadline = observer.next_deadline()
            if deadline is not None:
                deadlines.append(deadline)
        return min(deadlines) if deadlines else None

    def take_effects(self) -> list[Effect]:
        """Effects produced since the last call, in order."""
        ctx = self.ctx
        effects, ctx.effects = ctx.effects, []
        return effects

    def take_dirty(self) -> dict[int, None]:
        """Ids of connections that got output since the last call (the keys, in the
        order they got it)."""
        ctx = self.ctx
        dirty, ctx.dirty = ctx.dirty, {}
        return dirty

    # ------------------------------------------------------------------ dispatch

    def handle(self, conn: Connection, op: int, req_id: int, tx_id: int, payload: bytes) -> None:
        """Answer one request (replies and events go to the output queues)."""
        ctx = self.ctx
        tx: Transaction | None = None
        request = _TABLE.get(op)
        trace = ctx.trace  # logging
        if trace is not None:
            trace.append((conn.id, conn.domid, ctx.now, Packet(op, req_id, tx_id, payload)))
        try:
            if request is None:
                raise XsError("ENOSYS")
            flags = request.flags
            if flags & PRIVILEGED and not conn.privileged:
                raise XsError("EACCES")
            if flags & SIDE:
                ctx.side_changed = True
            if tx_id and not flags & IGNORES_TX:
                tx = conn.transactions.get(tx_id)
                if tx is None:
                    raise XsError("ENOENT")
            reply = request.handler(ctx, conn, tx, payload)
            if not conn.privileged and (flags & WRITE or (flags & COMMIT and payload == b"T\0")):
                # A write in a transaction costs as one outside does (C charges only the
                # commit, one): a transaction, committed or not, cannot bypass the limit.
                self._flow.spend(conn)
            size = len(reply)
            if size > PAYLOAD_MAX:
                raise XsError("E2BIG")
            frame = _pack(op, req_id, tx_id, size) + reply
        except Deferred as deferred:
            conn.deferred = (req_id, tx_id)
            ctx.effects.append(DeferredRequest(conn.id, deferred.command, deferred.arguments))
            return
        except XsError as err:
            frame = encode(_ERROR, req_id, tx_id, err.name.encode() + b"\0")
        except Exception as exc:  # a bug must cost one reply, not the daemon
            # Checks run before changes (ops), so a failure here leaves no half-change
            # behind in the common case; the client gets EIO as C's internal errors give.
            ctx.effects.append(RequestBug(repr(Packet(op, req_id, tx_id, payload)), exc))
            frame = encode(_ERROR, req_id, tx_id, b"EIO\0")
        if conn.id in self.connections:
            conn.queue(frame, REPLY, ctx.now)
            ctx.dirty[conn.id] = None
            if trace is not None:  # logging
                trace.append((conn.id, conn.domid, ctx.now, frame))
        if ctx.after_reply:
            actions, ctx.after_reply = ctx.after_reply, []
            for action in actions:
                action()
