"""The request engine: bytes from a connection in, replies, events and effects out.

The shell feeds each connection's bytes to :meth:`Engine.receive` and writes out what
:meth:`Connection.output` holds. One request at a time per connection, in arrival
order, as C xenstored does. Invariants:

* every request gets exactly one reply, of its own type or ERROR, echoing its req_id
  and tx_id; a reply that would exceed the payload limit becomes E2BIG;
* watch events caused by a request are queued (to every connection, the requester's
  included) before the request's reply; WATCH's own first event comes after its ``OK``;
* a connection whose output queue is over :data:`OUT_HIGH_WATER` is not read further
  until it drains, so a client that does not read cannot make the daemon grow;
* an unprivileged domain's connections together hold at most its ``output`` quota of
  queued bytes, give or take one message each (:data:`OWN_MESSAGE`): past it, watch
  events for its connections that have output unread are dropped, and those
  connections are not read until they drain;
* the connections of a domain waiting for write credit take turns: the one that waited
  longest is served first when the credit comes back, so one cannot starve the others;
* the engine never performs I/O: what the shell must do besides writing (open a
  domain socket, close a connection, reopen the trace file) comes out of
  :meth:`Engine.take_effects`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial

from xsd.core import control, domain_requests, ops, ratelimit
from xsd.core import perms as P
from xsd.core.connections import EVENT, Account, Connection, Credentials
from xsd.core.domains import c_atoi
from xsd.core.effects import (
    CloseConnection,
    DeferredRequest,
    Effect,
    LogLine,
    MemReport,
    RequestBug,
    ResumeConnection,
    TimerChanged,
    TraceChanged,
)
from xsd.core.errors import Deferred, XsError
from xsd.core.ops import Caller
from xsd.core.paths import canonicalize, home_of, parent_of
from xsd.core.payloads import OK, one_arg
from xsd.core.quota import watch_cost
from xsd.core.state import State
from xsd.core.trace import TraceRecord
from xsd.core.views import DirectView, Transaction, TransactionView, View, apply, conflicts
from xsd.core.watchdogs import Watchdogs
from xsd_client.protocol import PAYLOAD_MAX, Op, Packet, encode, split_args

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)
if TYPE_CHECKING:
    from typing import Protocol
else:
    Protocol = object  # a protocol is for the type checker; at run time a plain base

OUT_HIGH_WATER = 1 << 20
"""Stop reading a connection's requests while this many output bytes wait for it."""

EVENT_QUEUE_LIMIT = 16 << 20
"""Drop watch events for a connection that has this many output bytes unread."""

OWN_MESSAGE = PAYLOAD_MAX + 16
"""Output a connection may always have queued, whatever its domain's ``output`` quota
says: one whole message, so a connection that reads is never cut off by one that
does not."""

_EVENT = int(Op.WATCH_EVENT)
_ERROR = int(Op.ERROR)


Handler = Callable[[Connection, Transaction | None, bytes], bytes]


class Observer(Protocol):
    """A feature built on the store (the watchdogs) that follows its changes.

    Observers keep their state in :class:`State`; the engine calls them with itself.
    """

    def on_change(self, engine: Engine, conn: Connection | None, events: list[ops.Event]) -> None:
        """Nodes changed (``conn`` did it; None for the daemon itself)."""

    def on_disconnect(self, engine: Engine, conn: Connection) -> None:
        """A connection is going away."""

    def on_release(self, engine: Engine, domid: int) -> None:
        """A domain was released."""

    def on_introduce(self, engine: Engine, domid: int) -> None:
        """A domain was introduced."""

    def tick(self, engine: Engine) -> None:
        """Time passed: act on deadlines at or before ``engine.now``."""

    def next_deadline(self, engine: Engine) -> int | None:
        """The earliest deadline (monotonic ns) this observer waits for."""


class Engine:
    """Applies requests to a :class:`State`."""

    def __init__(self, state: State | None = None) -> None:
        self.state = state if state is not None else State()
        self._direct = DirectView(self.state.tree)  # stateless between requests: reused
        self.now = 0
        self.observers: list[Observer] = []
        # Hooks that may refuse a WRITE (value) or RM (None) before it happens (watchdogs).
        self.checks: list[Callable[[Connection, str, bytes | None], None]] = []
        watchdogs = Watchdogs()
        self.observers.append(watchdogs)
        self.checks.append(lambda conn, path, value: watchdogs.check(self, conn, path, value))
        self.dirty: set[int] = set()
        self.effects: list[Effect] = []
        self.side_changed = False
        """A request that may change state besides the tree (domains, quotas, settings,
        special permissions) was handled since the shell last cleared this (durable
        mode, ``xsd.server.durable``; watchdog timers show in ``next_token``)."""
        # logging: while the shell traces requests, one record per message in and out
        # (xsd.core.trace); None when it does not, which costs a request one test.
        self.trace: list[TraceRecord] | None = None
        self._after_reply: list[tuple[Connection, bytes]] = []
        # Each domain's connections share an Account (xsd.core.connections).
        self._accounts: dict[int, Account] = {}
        # The connections of rate-limited domains waiting for credit, in turns.
        self._turns = ratelimit.Turns()
        # Queued output bytes let go (connections gone, events timed out) since the
        # shell last gave memory back to the system (xsd.server.memtrim); it resets it.
        self.freed_bytes = 0
        for conn in self.state.connections.values():  # restored by a live update
            self._join(conn)
            for tx in conn.transactions.values():
                tx.recount()
                tx.count_delta(self.state.tree)
        # A released domain is torn down after RELEASE's reply is queued, as C does.
        self.release_after_reply: int | None = None
        self._handlers: dict[int, Handler] = {
            Op.CONTROL: self._control,
            Op.DIRECTORY: self._directory,
            Op.READ: self._read,
            Op.GET_PERMS: self._get_perms,
            Op.WATCH: self._watch,
            Op.UNWATCH: self._unwatch,
            Op.TRANSACTION_START: self._transaction_start,
            Op.TRANSACTION_END: self._transaction_end,
            Op.INTRODUCE: partial(domain_requests.introduce, self),
            Op.RELEASE: partial(domain_requests.release, self),
            Op.GET_DOMAIN_PATH: partial(domain_requests.get_domain_path, self),
            Op.WRITE: self._write,
            Op.MKDIR: self._mkdir,
            Op.RM: self._rm,
            Op.SET_PERMS: self._set_perms,
            Op.IS_DOMAIN_INTRODUCED: partial(domain_requests.is_domain_introduced, self),
            Op.RESUME: partial(domain_requests.resume, self),
            Op.SET_TARGET: partial(domain_requests.set_target, self),
            Op.RESET_WATCHES: self._reset_watches,
            Op.DIRECTORY_PART: self._directory_part,
            Op.GET_QUOTA: partial(domain_requests.get_quota, self),
            Op.SET_QUOTA: partial(domain_requests.set_quota, self),
        }

    # ------------------------------------------------------------------ connections

    def connect(self, domid: int = 0, creds: Credentials | None = None) -> int:
        """Register a new connection acting as ``domid``; returns its id."""
        state = self.state
        conn_id = state.next_conn_id
        state.next_conn_id += 1
        conn = state.connections[conn_id] = Connection(conn_id, domid, domid == 0, creds)
        self._join(conn)
        return conn_id

    def _join(self, conn: Connection) -> None:
        """Make ``conn`` share its domain's account."""
        account = self._accounts.get(conn.domid)
        if account is None:
            account = self._accounts[conn.domid] = Account()
        account.conns.add(conn)
        account.out_bytes += conn.out_bytes
        if conn.transactions:
            account.tx_conns.add(conn)
        conn.account = account

    def disconnect(self, conn_id: int) -> None:
        """Forget a connection: its watches and open transactions go with it."""
        conn = self.state.connections.get(conn_id)
        if conn is None:
            return
        for observer in self.observers:
            observer.on_disconnect(self, conn)
        del self.state.connections[conn_id]
        for watch in conn.watches:
            self.state.watches.remove(watch)
        self.dirty.discard(conn_id)
        account = conn.account
        account.conns.discard(conn)
        account.tx_conns.discard(conn)
        account.out_bytes -= conn.out_bytes
        self.freed_bytes += conn.out_bytes
        if not account.conns and self._accounts.get(conn.domid) is account:
            del self._accounts[conn.domid]

    def receive(self, conn_id: int, data: bytes, now: int = 0, budget: int = 0) -> bool:
        """Buffer bytes from a connection and answer every whole request that fits.

        Returns True if whole requests remain buffered: because the output queue is full,
        a reply is deferred or too many replies are outstanding (:meth:`blocked` says
        so: call :meth:`resume` once that changes), or because ``budget`` requests (0:
        no limit) were answered already (call :meth:`resume` after writing them out).

        Raises:
            ProtocolError: the connection broke the framing rules and must be closed.
        """
        conn = self.state.connections[conn_id]
        conn.decoder.receive_data(data)
        self.now = now
        return self._process(conn, budget)

    def resume(self, conn_id: int, now: int = 0, budget: int = 0) -> bool:
        """Answer requests left buffered (see :meth:`receive`).

        Raises:
            ProtocolError: as :meth:`receive` (a bad header can wait in the buffer
                behind requests answered in an earlier batch).
        """
        self.now = now
        return self._process(self.state.connections[conn_id], budget)

    def blocked(self, conn_id: int) -> bool:
        """True if the connection's buffered requests must wait for its output to drain,
        its deferred reply, or its outstanding replies to be read."""
        conn = self.state.connections.get(conn_id)
        if conn is None:
            return True
        if conn.out_bytes >= OUT_HIGH_WATER or conn.deferred is not None:
            return True
        if conn.privileged:
            return False
        return self._held(conn) or self._waits_for_credit(conn, take=False)

    def _held(self, conn: Connection, limits: Mapping[str, int] | None = None) -> bool:
        """An unprivileged connection's requests wait for its (domain's) output to drain
        (``limits``: its domain's, if the caller has them)."""
        if limits is None:
            limits = self._limits(conn.domid)
        outstanding = limits["outstanding"]
        if outstanding and conn.replies >= outstanding:
            return True
        output = limits["output"]
        return bool(output and conn.out_bytes >= OWN_MESSAGE and conn.account.out_bytes >= output)

    def _spend_write(self, conn: Connection) -> None:
        settings = self.state.settings
        domain = self.state.domains.get(conn.domid)
        if domain is not None and settings.write_rate:
            ratelimit.spend(domain, self.now, settings.write_rate, settings.write_burst)
            if domain.wrl_credit < 0:
                self.effects.append(TimerChanged())  # a pay-back time to wake for

    def _in_debt(self, domain_id: int) -> bool:
        settings = self.state.settings
        domain = self.state.domains.get(domain_id)
        if domain is None or not settings.write_rate:
            return False
        return ratelimit.in_debt(domain, self.now, settings.write_rate, settings.write_burst)

    def _waits_for_credit(self, conn: Connection, take: bool) -> bool:
        """True if an unprivileged connection must wait for its domain's write credit:
        the domain is in debt, or other connections of it waited first (``take``: see
        :meth:`ratelimit.Turns.must_wait`)."""
        domid = conn.domid
        return self._turns.must_wait(domid, conn.id, self._in_debt(domid), take)

    def _process(self, conn: Connection, budget: int = 0) -> bool:
        decoder = conn.decoder
        privileged = conn.privileged
        # An unprivileged connection cannot change its own limits: look them up once.
        limits = None if privileged else self._limits(conn.domid)
        connections = self.state.connections
        left = budget
        while (
            conn.out_bytes < OUT_HIGH_WATER
            and conn.deferred is None
            and (limits is None or not self._held(conn, limits))
        ):
            if budget:
                if not left:
                    return decoder.has_packet()
                left -= 1
            if not privileged and decoder.has_packet() and self._waits_for_credit(conn, True):
                return True  # served again in its turn once paid back (tick)
            packet = decoder.next_packet()
            if packet is None:
                # Remember since when a request is half-received (it may time out): a
                # request trickled in byte by byte keeps the time its first byte came.
                if not decoder.pending:
                    conn.partial_since = None
                elif conn.partial_since is None:
                    conn.partial_since = self.now
                return False
            conn.partial_since = None  # whole: what follows is a new request
            self.handle(conn, packet)
            if conn.id not in connections:
                return False
        conn.partial_since = None
        return decoder.has_packet()

    def complete_deferred(self, conn_id: int, payload: bytes, error: str | None = None) -> None:
        """Give the reply of a deferred request (a CONTROL reply, or ERROR ``error``).

        The connection's later requests are answered from the next :meth:`resume`.
        """
        conn = self.state.connections.get(conn_id)
        if conn is None or conn.deferred is None:
            return
        req_id, tx_id = conn.deferred
        conn.deferred = None
        if error is not None:
            frame = encode(_ERROR, req_id, tx_id, error.encode() + b"\0")
        else:
            frame = encode(Op.CONTROL, req_id, tx_id, payload)
        conn.queue(frame, now=self.now)
        if self.trace is not None:  # logging
            self.trace.append((conn_id, conn.domid, self.now, frame))
        self.dirty.add(conn_id)

    # ------------------------------------------------------------------ time

    def tick(self, now: int) -> None:
        """Act on every deadline at or before ``now``."""
        self.now = now
        self._next_in_turn()
        settings = self.state.settings
        event_cutoff = now - settings.event_timeout_ns
        request_cutoff = now - settings.request_timeout_ns
        for conn in list(self.state.connections.values()):
            if settings.event_timeout_ns and not conn.privileged:
                oldest = conn.oldest_event()
                if oldest is not None and oldest <= event_cutoff:
                    queued = conn.out_bytes
                    dropped = conn.expire_events(event_cutoff + 1)
                    self.freed_bytes += queued - conn.out_bytes
                    self.log(f"conn {conn.id} (dom{conn.domid}): {dropped} watch events timed out")
            if (
                settings.request_timeout_ns
                and conn.partial_since is not None
                and conn.partial_since <= request_cutoff
            ):
                self.log(f"conn {conn.id} (dom{conn.domid}): request not completed in time")
                self.effects.append(CloseConnection(conn.id))
                self.disconnect(conn.id)
                continue
            if (
                not conn.privileged
                and conn.decoder.has_packet()
                and not self._in_debt(conn.domid)
                and not self.blocked(conn.id)
            ):
                self.effects.append(ResumeConnection(conn.id))  # it paid its writes back
        for observer in self.observers:
            observer.tick(self)

    def _next_in_turn(self) -> None:
        """Let the first connection of each paid-back domain's credit queue that can
        go now take its turn (:meth:`tick` then resumes it)."""
        connections = self.state.connections

        def can_go(conn_id: int) -> bool:
            conn = connections.get(conn_id)
            return (
                conn is not None
                and conn.decoder.has_packet()
                and conn.deferred is None
                and conn.out_bytes < OUT_HIGH_WATER
                and not self._held(conn)
            )

        for domid in list(self._turns.queues):
            if not self._in_debt(domid):
                self._turns.next_turn(domid, can_go)

    def next_deadline(self) -> int | None:
        """The earliest time (monotonic ns) :meth:`tick` has something to do, if any."""
        settings = self.state.settings
        deadlines = []
        for conn in self.state.connections.values():
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
                elif domain.domid in self._turns.queues:
                    deadlines.append(self.now + 1_000_000)  # the next one's turn, soon
        for observer in self.observers:
            deadline = observer.next_deadline(self)
            if deadline is not None:
                deadlines.append(deadline)
        return min(deadlines) if deadlines else None

    def take_effects(self) -> list[Effect]:
        """Effects produced since the last call, in order."""
        effects, self.effects = self.effects, []
        return effects

    def take_dirty(self) -> set[int]:
        """Ids of connections that got output since the last call."""
        dirty, self.dirty = self.dirty, set()
        return dirty

    # ------------------------------------------------------------------ dispatch

    def handle(self, conn: Connection, packet: Packet) -> None:
        """Answer one request (replies and events go to the output queues)."""
        op = packet.op
        tx: Transaction | None = None
        handler = self._handlers.get(op)
        trace = self.trace  # logging
        if trace is not None:
            trace.append((conn.id, conn.domid, self.now, packet))
        try:
            if handler is None:
                raise XsError("ENOSYS")
            if op in _PRIVILEGED and not conn.privileged:
                raise XsError("EACCES")
            if op in _SIDE:
                self.side_changed = True
            if op not in _IGNORES_TX and packet.tx_id:
                tx = conn.transactions.get(packet.tx_id)
                if tx is None:
                    raise XsError("ENOENT")
            payload = handler(conn, tx, packet.payload)
            if not conn.privileged and (
                op in _WRITES or (op == Op.TRANSACTION_END and packet.payload == b"T\0")
            ):
                # A write in a transaction costs as one outside does (C charges only the
                # commit, one): a transaction, committed or not, cannot bypass the limit.
                self._spend_write(conn)
            if len(payload) > PAYLOAD_MAX:
                raise XsError("E2BIG")
            frame = encode(op, packet.req_id, packet.tx_id, payload)
        except Deferred as deferred:
            conn.deferred = (packet.req_id, packet.tx_id)
            self.effects.append(DeferredRequest(conn.id, deferred.command, deferred.arguments))
            return
        except XsError as err:
            frame = encode(_ERROR, packet.req_id, packet.tx_id, err.name.encode() + b"\0")
        except Exception as exc:  # a bug must cost one reply, not the daemon
            # Checks run before changes (ops), so a failure here leaves no half-change
            # behind in the common case; the client gets EIO as C's internal errors give.
            self.effects.append(RequestBug(repr(packet), exc))
            frame = encode(_ERROR, packet.req_id, packet.tx_id, b"EIO\0")
        if conn.id in self.state.connections:
            conn.queue(frame, now=self.now)
            self.dirty.add(conn.id)
            if trace is not None:  # logging
                trace.append((conn.id, conn.domid, self.now, frame))
        if self._after_reply:
            for target, event in self._after_reply:
                self._queue_event(target, event)
            self._after_reply.clear()
        if self.release_after_reply is not None:
            domid, self.release_after_reply = self.release_after_reply, None
            domain_requests.release_domain(self, domid)

    # ------------------------------------------------------------------ helpers

    def _limits(self, domid: int) -> Mapping[str, int]:
        """The hard quotas that apply to ``domid``: its own overrides, else the global ones."""
        hard = self.state.quotas.hard
        domain = self.state.domains.get(domid)
        if domain is None or not domain.quota:
            return hard
        return {**hard, **domain.quota}

    def _caller(self, conn: Connection) -> Caller:
        if conn.privileged:
            if self.state.settings.quota_privileged:
                return Caller(conn.domid, True, None, self._limits(conn.domid))
            return ops.DOM0 if conn.domid == 0 else Caller(conn.domid, True)
        domain = self.state.domains.get(conn.domid)
        return Caller(
            conn.domid, False, domain.target if domain else None, self._limits(conn.domid)
        )

    def _view(self, conn: Connection, tx: Transaction | None) -> View:
        if tx is None:
            direct = self._direct
            if direct.tree is not self.state.tree:
                direct = self._direct = DirectView(self.state.tree)
            return direct
        if conn.privileged:
            return TransactionView(self.state.tree, tx)
        limits = self._limits(conn.domid)
        most = limits["transaction-memory"]
        budget = None
        if most:
            others = sum(map(_transaction_bytes, conn.account.tx_conns))
            budget = most - (others - tx.size)
        return TransactionView(self.state.tree, tx, limits["transaction-nodes"], budget)

    def _path(self, conn: Connection, raw: bytes, special: bool = False) -> str:
        path_max = self.state.settings.path_max
        if not conn.privileged:
            path_max = self._limits(conn.domid)["path-max"]
        return canonicalize(raw, conn.domid, allow_special=special, path_max=path_max)

    def _fire(self, conn: Connection, events: list[ops.Event], tx: Transaction | None) -> None:
        if tx is not None:
            tx.record(events)
            return
        for path, exact, old in events:
            self.fire(path, exact, old)
        for observer in self.observers:
            observer.on_change(self, conn, events)

    def fire(self, path: str, exact: bool = False, old_perms: P.Perms | None = None) -> None:
        """Queue a watch event for ``path`` to every watch it fires."""
        connections = self.state.connections
        for watch in self.state.watches.matching(path, exact):
            conn = connections.get(watch.conn_id)
            if conn is None:
                continue
            if not conn.privileged:
                size = 18 + len(path) + len(watch.token)  # the event's frame, at most
                if conn.out_bytes >= OWN_MESSAGE and self._over_output(conn, size):
                    conn.dropped_events += 1  # at its domain's quota: spare the work
                    continue
                if not self._may_see(conn, path, old_perms):
                    continue
            payload = watch.event_path(path).encode() + b"\0" + watch.token + b"\0"
            if len(payload) > PAYLOAD_MAX:
                continue  # C drops an event too large to send
            self._queue_event(conn, encode(_EVENT, 0, 0, payload), path[:1] != "@")

    def _queue_event(self, conn: Connection, frame: bytes, coalesce: bool = True) -> None:
        if coalesce and frame in conn.event_frames:
            return  # an identical event is still waiting to be sent: coalesce
        if conn.out_bytes > EVENT_QUEUE_LIMIT or (
            not conn.privileged
            and conn.out_bytes >= OWN_MESSAGE
            and self._over_output(conn, len(frame))
        ):
            conn.dropped_events += 1
            return
        conn.queue(frame, EVENT, self.now)
        self.dirty.add(conn.id)
        if self.trace is not None:  # logging
            self.trace.append((conn.id, conn.domid, self.now, frame))

    def _over_output(self, conn: Connection, more: int) -> bool:
        """``more`` bytes would take the connection's domain past its ``output`` quota."""
        most = self._limits(conn.domid)["output"]
        return bool(most) and conn.account.out_bytes + more > most

    def _may_see(self, conn: Connection, path: str, old_perms: P.Perms | None) -> bool:
        """C's watch_permitted(): the watcher could read the node before the change, or
        can read it now, or can read its parent."""
        caller = self._caller(conn)
        if path[:1] == "@":
            perms = self.state.special_perms.get(path)
            return perms is not None and bool(
                P.access_for(perms, caller.domid, caller.target) & P.READ
            )
        if old_perms is not None and P.access_for(old_perms, caller.domid, caller.target) & 1:
            return True
        tree = self.state.tree
        node = tree.get(path)
        if node is not None and caller.access(node) & P.READ:
            return True
        parent = tree.get(parent_of(path))
        return parent is not None and bool(caller.access(parent) & P.READ)

    # ------------------------------------------------------------------ node requests

    def _read(self, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
        path = self._path(conn, one_arg(payload))
        return ops.read(self._view(conn, tx), self._caller(conn), path)

    def _directory(self, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
        path = self._path(conn, one_arg(payload))
        return ops.directory(self._view(conn, tx), self._caller(conn), path)

    def _directory_part(self, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
        args = split_args(payload)
        if len(args) != 2:
            raise XsError("EINVAL")
        path = self._path(conn, args[0])
        return ops.directory_part(self._view(conn, tx), self._caller(conn), path, c_atoi(args[1]))

    def _get_perms(self, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
        raw = one_arg(payload)
        path = self._path(conn, raw)
        return ops.get_perms(self._view(conn, tx), self._caller(conn), path)

    def _write(self, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
        raw, sep, value = payload.partition(b"\0")
        if not sep:
            raise XsError("EINVAL")
        path = self._path(conn, raw)
        for check in self.checks:
            check(conn, path, value)
        self._fire(conn, ops.write(self._view(conn, tx), self._caller(conn), path, value), tx)
        return OK

    def _mkdir(self, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
        path = self._path(conn, one_arg(payload))
        self._fire(conn, ops.mkdir(self._view(conn, tx), self._caller(conn), path), tx)
        return OK

    def _rm(self, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
        path = self._path(conn, one_arg(payload))
        for check in self.checks:
            check(conn, path, None)
        self._fire(conn, ops.rm(self._view(conn, tx), self._caller(conn), path), tx)
        return OK

    def _set_perms(self, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
        args = split_args(payload)
        if len(args) < 2:
            raise XsError("EINVAL")
        caller = self._caller(conn)
        if caller.limits is not None:
            most = caller.limits["permissions"]
            if most and len(args) - 1 > most:
                raise XsError("ENOSPC")
        # Domain 0 naming a domain makes it known; an unknown owner is ENOENT, other
        # unknown entries are kept but ignored (XSA-322): xsd.core.domains has the rule.
        new = domain_requests.check_perms(self, conn, P.parse(args[1:]))
        if args[0][:1] == b"@":
            return self._set_special_perms(caller, args[0], new)
        path = self._path(conn, args[0])
        self._fire(conn, ops.set_perms(self._view(conn, tx), caller, path, new), tx)
        return OK

    def _set_special_perms(self, caller: Caller, raw: bytes, new: P.Perms) -> bytes:
        self.side_changed = True
        name = raw.decode("latin-1")
        special = self.state.special_perms
        if name not in special:
            raise XsError("EINVAL")
        if not caller.privileged and not (
            P.access_for(special[name], caller.domid, caller.target) & (P.WRITE | P.OWNER)
            == P.WRITE | P.OWNER
        ):
            raise XsError("EACCES")
        special[name] = new  # C 4.17 fires no event for the special nodes' permissions
        return OK

    # ------------------------------------------------------------------ watches

    def _watch(self, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
        args = split_args(payload)
        if len(args) != 2:
            raise XsError("EINVAL")
        raw, token = args
        relative_to = None
        if raw[:1] == b"@":
            if len(raw) > self.state.settings.path_max:
                raise XsError("EINVAL")
            path = raw.decode("latin-1")
        else:
            path = self._path(conn, raw)
            if raw[:1] != b"/":
                relative_to = home_of(conn.domid)
        for existing in conn.watches:
            if existing.path == path and existing.token == token:
                raise XsError("EEXIST")
        if not conn.privileged:
            limits = self._limits(conn.domid)
            most = limits["watches"]
            if most and self._domain_count(conn.domid, "watches") >= most:
                raise XsError("ENOSPC")
            most = limits["watch-memory"]
            if most:
                cost = 64 + len(path) + len(token)
                used = sum(watch_cost(w) for other in conn.account.conns for w in other.watches)
                if used + cost > most:
                    raise XsError("ENOSPC")
        watch = self.state.watches.add(conn.id, path, token, relative_to)
        conn.watches.append(watch)
        event = watch.event_path(path).encode() + b"\0" + token + b"\0"
        if len(event) <= PAYLOAD_MAX:
            self._after_reply.append((conn, encode(_EVENT, 0, 0, event)))
        return OK

    def _unwatch(self, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
        args = split_args(payload)
        if len(args) != 2:
            raise XsError("EINVAL")
        raw, token = args
        if raw[:1] in (b"/", b"@"):
            path = raw.decode("latin-1")
        else:
            path = home_of(conn.domid) + "/" + raw.decode("latin-1")
        for watch in conn.watches:
            if watch.path == path and watch.token == token:
                conn.watches.remove(watch)
                self.state.watches.remove(watch)
                return OK
        raise XsError("ENOENT")

    def _reset_watches(self, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
        for watch in conn.watches:
            self.state.watches.remove(watch)
        conn.watches.clear()
        conn.transactions.clear()
        conn.account.tx_conns.discard(conn)
        return OK

    # ------------------------------------------------------------------ transactions

    def _transaction_start(self, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
        if tx is not None:
            raise XsError("EBUSY")
        if not conn.privileged:
            most = self._limits(conn.domid)["transactions"]
            if most and self._domain_count(conn.domid, "transactions") >= most:
                raise XsError("ENOSPC")
        tx_id = conn.next_tx_id
        while tx_id == 0 or tx_id in conn.transactions:
            tx_id = (tx_id + 1) & 0xFFFFFFFF
        conn.next_tx_id = (tx_id + 1) & 0xFFFFFFFF
        tree = self.state.tree
        conn.transactions[tx_id] = Transaction(tx_id, tree.next_generation())
        conn.account.tx_conns.add(conn)
        return f"{tx_id}".encode() + b"\0"

    def _transaction_end(self, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
        arg = one_arg(payload)
        if arg not in (b"T", b"F"):
            raise XsError("EINVAL")
        if tx is None:
            raise XsError("ENOENT")
        del conn.transactions[tx.id]
        if not conn.transactions:
            conn.account.tx_conns.discard(conn)
        if arg == b"F":
            return OK
        if tx.failed:
            raise XsError("ENOMEM")
        tree = self.state.tree
        if conflicts(tree, tx):
            raise XsError("EAGAIN")
        if not conn.privileged:
            most = self._limits(conn.domid)["nodes"]
            if most and TransactionView(tree, tx).usage(conn.domid)[0] > most:
                raise XsError("ENOSPC")
        # As C: one event per changed node, in first-access order, exact only if every
        # change to it was; none for a node created and deleted within the transaction.
        # Permissions before commit decide, with the new ones, who may see each event.
        exact_of: dict[str, bool] = {}
        for path, exact, _ in tx.events:
            exact_of[path] = exact_of.get(path, True) and exact
        before = {p: tree.nodes[p].perms for p in exact_of if p in tree.nodes}
        apply(tree, tx)
        domain_requests.adopt_owners(self, tx)
        events: list[ops.Event] = []
        for path in tx.accessed:
            if path in exact_of and (path in before or path in tree.nodes):
                events.append((path, exact_of[path], before.get(path)))
        for path, exact, old in events:
            self.fire(path, exact, old)
        for observer in self.observers:
            observer.on_change(self, conn, events)
        return OK

    def _domain_count(self, domid: int, what: str) -> int:
        """Watches or open transactions of all of a domain's connections."""
        account = self._accounts.get(domid)
        if account is None:
            return 0
        if what == "watches":
            return sum(len(other.watches) for other in account.conns)
        return sum(len(other.transactions) for other in account.tx_conns)

    # ------------------------------------------------------------------ control

    def log(self, message: str) -> None:
        """Ask the shell to write a line to the daemon's log."""
        self.effects.append(LogLine(message))

    def trace_changed(self) -> None:
        """Tell the shell the trace settings changed (reopen or close the file)."""
        self.effects.append(TraceChanged())

    def memreport(self, target: str | None) -> None:
        """Ask the shell to write a memory report (to ``target``, else the trace file)."""
        self.effects.append(MemReport(target))

    def check(self) -> list[str]:
        """Consistency check of the tree: every listed child exists and vice versa."""
        nodes = self.state.tree.nodes
        problems = []
        listed = {"/"}
        for path, node in nodes.items():
            for child in node.children:
                listed.add(child)
                if child not in nodes:
                    problems.append(f"{path} lists missing child {child}")
        problems.extend(f"{p} is not listed by its parent" for p in nodes.keys() - listed)
        return problems

    def _control(self, conn: Connection, tx: Transaction | None, payload: bytes) -> bytes:
        return control.run(self, split_args(payload))


def _transaction_bytes(conn: Connection) -> int:
    return sum(tx.size for tx in conn.transactions.values())


_PRIVILEGED = frozenset(
    {
        Op.CONTROL,
        Op.INTRODUCE,
        Op.RELEASE,
        Op.IS_DOMAIN_INTRODUCED,
        Op.RESUME,
        Op.SET_TARGET,
        Op.GET_QUOTA,
        Op.SET_QUOTA,
    }
)
_SIDE = _PRIVILEGED
"""Requests that may change more than the tree (see ``Engine.side_changed``; SET_PERMS
of a special name says so itself)."""
_IGNORES_TX = frozenset({Op.WATCH, Op.UNWATCH})
_WRITES = frozenset({Op.WRITE, Op.MKDIR, Op.RM, Op.SET_PERMS})
