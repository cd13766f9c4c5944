"""What a request handler or a feature may use: the small interface the engine hands out.

The engine (``xsd.core.engine``) keeps the flow: it decodes requests, decides when a
connection is served, dispatches through the table of ``xsd.core.requests`` and queues
the reply. A handler, or a feature built on the store (the watchdogs), gets a
:class:`Context` instead: the :class:`~xsd.core.state.State`, the time of the request, and
the ways out besides the reply (watch events, effects for the shell, log lines).
Invariants:

* ``now`` is the time the engine was given with the request or tick being handled; the
  core reads no clock;
* a change to nodes goes out through :meth:`Context.changed`: outside a transaction it
  fires the watches and tells every observer, in a transaction it is recorded for the
  commit;
* a watch event for a connection with :data:`EVENT_QUEUE_LIMIT` bytes queued, or (an
  unprivileged one) holding more than :data:`OWN_MESSAGE` while its domain is at its
  ``output`` quota, is dropped and counted, never queued;
* ``effects`` and ``dirty`` are only appended to here; the engine hands them to the shell;
* every connection of a domain shares one :class:`~xsd.core.connections.Account`
  (joined by :meth:`Context.connect`, left by :meth:`Context.disconnect`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from xsd.core import ops
from xsd.core import perms as P
from xsd.core.caller import Caller
from xsd.core.connections import EVENT, Account, Connection
from xsd.core.credentials import Credentials
from xsd.core.effects import Effect, LogLine
from xsd.core.paths import canonicalize, parent_of
from xsd.core.state import State
from xsd.core.trace import TraceRecord
from xsd.core.views import DirectView, Transaction, TransactionView, View
from xsd_client._typing import mypyc_attr  # no else under TYPE_CHECKING here: setup.py
from xsd_client.protocol import HEADER, PAYLOAD_MAX, Op

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)
if TYPE_CHECKING:
    from typing import Final, TypeVar

    F = TypeVar("F")

EVENT_QUEUE_LIMIT: Final = 16 << 20
"""Drop watch events for a connection that has this many output bytes unread."""

OWN_MESSAGE: Final = PAYLOAD_MAX + 16
"""Output a connection may always have queued, whatever its domain's ``output`` quota
says: one whole message, so a connection that reads is never cut off by one that
does not."""

_PATHS_KEPT: Final = 2048  # canonical paths remembered, each of at most _PATH_KEPT_MAX bytes:
_PATH_KEPT_MAX: Final = 256  # the cache holds at most ~1.5 MB (~0.6 MB for 50-byte paths).
# 2048 holds the ~1,600 paths eight domains built at once use (the boot storm, 8 workers).

_EVENT: Final = int(Op.WATCH_EVENT)
_pack: Final = HEADER.pack


@mypyc_attr(allow_interpreted_subclasses=True)  # a feature's class may be interpreted
class Observer:
    """A feature built on the store (the watchdogs) that follows its changes.

    It keeps its state in :class:`State` and its :class:`Context` from its installation.
    Every hook does nothing unless the feature overrides it. A base class, not a
    protocol: compiled, the engine calls a hook through the class's table of methods,
    where a call through a protocol is a call by name (about 700 instructions, twice a
    WRITE: ``callgrind``).
    """

    def check(self, conn: Connection, path: str, value: bytes | None) -> None:
        """May refuse a WRITE of ``value`` to ``path`` (``value`` None: an RM) before it
        happens, by raising :class:`~xsd.core.errors.XsError`."""

    def on_change(self, conn: Connection | None, events: list[ops.Event]) -> None:
        """Nodes changed (``conn`` did it; None for the daemon itself)."""

    def on_disconnect(self, conn: Connection) -> None:
        """A connection is going away."""

    def on_release(self, domid: int) -> None:
        """A domain was released."""

    def on_introduce(self, domid: int) -> None:
        """A domain was introduced."""

    def tick(self) -> None:
        """Time passed: act on deadlines at or before ``now``."""

    def next_deadline(self) -> int | None:
        """The earliest deadline (monotonic ns) this observer waits for."""
        return None


class Context:
    """The state, the time, and what handlers and features may do (see the module doc)."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.now = 0
        self.effects: list[Effect] = []
        # The connections with output to write, as a dict's keys, not a set: compiled,
        # a dict is iterated natively and a set through Python's iterator protocol.
        self.dirty: dict[int, None] = {}
        # logging: while the shell traces requests, one record per message in and out
        # (xsd.core.trace); None when it does not, which costs a request one test.
        self.trace: list[TraceRecord] | None = None
        self.observers: list[Observer] = []
        self.after_reply: list[Callable[[], None]] = []
        """What must happen once the request's reply is queued (WATCH's first event,
        RELEASE's teardown), in order."""
        # Queued output bytes let go (connections gone, events timed out) since the
        # shell last gave memory back to the system (xsd.server.memtrim); it resets it.
        self.freed_bytes = 0
        self.side_changed = False
        """A request that may change state besides the tree (domains, quotas, settings,
        special permissions) was handled since the shell last cleared this (durable
        mode, ``xsd.server.durable``; watchdog timers show in ``next_token``)."""
        self._features: dict[type, object] = {}
        self._accounts: dict[int, Account] = {}
        self._direct = DirectView(state.tree)  # stateless between requests: reused
        # Canonical paths by raw argument, each with what else it was made from (domid,
        # special allowed, path_max): a client asks for the same few paths again and
        # again, and canonicalize is pure. Keyed by the bytes alone: a tuple key cost a
        # tuple and its hash and comparison on every request, about 700 instructions.
        self._paths: dict[bytes, tuple[int, bool, int, str]] = {}
        for conn in state.connections.values():  # restored by a live update
            self._join(conn)
            for tx in conn.transactions.values():
                tx.recount()
                tx.count_delta(state.tree)

    # ------------------------------------------------------------------ features

    def install(self, feature: object, observer: Observer | None = None) -> None:
        """Register a feature (found again by :meth:`feature`), and its observer."""
        self._features[type(feature)] = feature
        if observer is not None:
            self.observers.append(observer)

    def feature(self, kind: type[F]) -> F:
        """The installed feature of class ``kind``.

        Raises:
            LookupError: none is installed.
        """
        found = self._features.get(kind)
        if not isinstance(found, kind):
            raise LookupError(f"no {kind.__name__} installed")
        return found

    # ------------------------------------------------------------------ connections

    def connect(self, domid: int, creds: Credentials | None) -> int:
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
            observer.on_disconnect(conn)
        del self.state.connections[conn_id]
        for watch in conn.watches:
            self.state.watches.remove(watch)
        self.dirty.pop(conn_id, None)
        account = conn.account
        account.conns.discard(conn)
        account.tx_conns.discard(conn)
        account.out_bytes -= conn.out_bytes
        self.freed_bytes += conn.out_bytes
        if not account.conns and self._accounts.get(conn.domid) is account:
            del self._accounts[conn.domid]

    def domain_count(self, domid: int, what: str) -> int:
        """Watches or open transactions of all of a domain's connections."""
        account = self._accounts.get(domid)
        if account is None:
            return 0
        if what == "watches":
            return sum(len(other.watches) for other in account.conns)
        return sum(len(other.transactions) for other in account.tx_conns)

    # ------------------------------------------------------------------ who asks

    def limits(self, domid: int) -> Mapping[str, int]:
        """The hard quotas that apply to ``domid``: its own overrides, else the global ones."""
        hard = self.state.quotas.hard
        domain = self.state.domains.get(domid)
        if domain is None or not domain.quota:
            return hard
        return {**hard, **domain.quota}

    def caller(self, conn: Connection) -> Caller:
        """Who ``conn`` is to the node operations (``xsd.core.ops``)."""
        if conn.privileged:
            if self.state.settings.quota_privileged:
                return Caller(conn.domid, True, None, self.limits(conn.domid))
            return ops.DOM0 if conn.domid == 0 else Caller(conn.domid, True)
        domain = self.state.domains.get(conn.domid)
        return Caller(conn.domid, False, domain.target if domain else None, self.limits(conn.domid))

    def view(self, conn: Connection, tx: Transaction | None) -> View:
        """The tree as ``conn`` sees it: directly, or through its transaction ``tx``."""
        if tx is None:
            direct = self._direct
            if direct.tree is not self.state.tree:
                direct = self._direct = DirectView(self.state.tree)
            return direct
        tree = self.state.tree
        if conn.privileged:
            # No quota: the transaction is counted only when asked (quota-privileged).
            return TransactionView(tree, tx, count=self.state.settings.quota_privileged)
        limits = self.limits(conn.domid)
        most = limits["transaction-memory"]
        budget = None
        if most:
            others = 0
            for other in conn.account.tx_conns:
                for open_tx in other.transactions.values():
                    open_tx.settle(tree)
                    others += open_tx.size
            tx.settle(tree)
            budget = most - (others - tx.size)
        return TransactionView(tree, tx, limits["transaction-nodes"], budget)

    def path(self, conn: Connection, raw: bytes, special: bool = False) -> str:
        """A request's path argument, canonical (EINVAL if it is not a valid one)."""
        path_max = self.state.settings.path_max
        if not conn.privileged:
            path_max = self.limits(conn.domid)["path-max"]
        domid = conn.domid
        kept = self._paths.get(raw)
        if kept is not None and kept[0] == domid and kept[1] == special and kept[2] == path_max:
            return kept[3]
        path = canonicalize(raw, domid, allow_special=special, path_max=path_max)
        if len(raw) <= _PATH_KEPT_MAX:
            if len(self._paths) >= _PATHS_KEPT:
                self._paths.clear()
            self._paths[raw] = (domid, special, path_max, path)
        return path

    # ------------------------------------------------------------------ ways out

    def changed(
        self, conn: Connection | None, events: list[ops.Event], tx: Transaction | None
    ) -> None:
        """Nodes changed: in a transaction, remember the events for the commit; else
        fire them and tell the observers."""
        if tx is not None:
            tx.record(events)
            return
        for path, exact, old in events:
            self.fire(path, exact, old)
        for observer in self.observers:
            observer.on_change(conn, events)

    def fire(self, path: str, exact: bool = False, old_perms: P.Perms | None = None) -> None:
        """Queue a watch event for ``path`` to every watch it fires."""
        watches = self.state.watches.matching(path, exact)
        if not watches:
            return
        connections = self.state.connections
        raw = path.encode()  # what most watches report (those not relative)
        coalesce = path[:1] != "@"
        for watch in watches:
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
            if watch.relative_to is None:
                payload = raw + b"\0" + watch.token + b"\0"
            else:
                payload = watch.event_path(path).encode() + b"\0" + watch.token + b"\0"
            size = len(payload)
            if size > PAYLOAD_MAX:
                continue  # C drops an event too large to send
            self.queue_event(conn, _pack(_EVENT, 0, 0, size) + payload, coalesce)

    def queue_event(self, conn: Connection, frame: bytes, coalesce: bool = True) -> None:
        """Queue a watch event frame for ``conn``, unless an identical one still waits
        (``coalesce``) or its output is over the limits."""
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
        self.dirty[conn.id] = None
        if self.trace is not None:  # logging
            self.trace.append((conn.id, conn.domid, self.now, frame))

    def _over_output(self, conn: Connection, more: int) -> bool:
        """``more`` bytes would take the connection's domain past its ``output`` quota."""
        most = self.limits(conn.domid)["output"]
        return bool(most) and conn.account.out_bytes + more > most

    def _may_see(self, conn: Connection, path: str, old_perms: P.Perms | None) -> bool:
        """C's watch_permitted(): the watcher could read the node before the change, or
        can read it now, or can read its parent."""
        caller = self.caller(conn)
        if path[:1] == "@":
            perms = self.state.special_perms.get(path)
            return perms is not None and bool(
                P.access_for(perms, caller.domid, caller.target) & P.READ
            )
        if old_perms is not None and P.access_for(old_perms, caller.domid, caller.target) & 1:
            return True
        tree = self.state.tree
        node = tree.get(path)
        if node is not None and ops.access(caller, node) & P.READ:
            return True
        parent = tree.get(parent_of(path))
        return parent is not None and bool(ops.access(caller, parent) & P.READ)

    def log(self, message: str) -> None:
        """Ask the shell to write a line to the daemon's log."""
        self.effects.append(LogLine(message))
