"""Records to a new state: the loader of live update's new process and its dry run.

``load`` builds a fresh state and raises :class:`StateError` at the first inconsistency,
so nothing is ever half-loaded. Records of earlier formats are read by
``handover.old_formats``.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable

from handover.dump import CORE_FIELDS
from handover.errors import StateError
from handover.old_formats import Format1
from handover.tree_columns import TreeError, load_tree
from handover.tree_delta import DeltaError, apply_delta
from handover.watchdog_columns import WatchdogRecordError, load_watchdogs
from xsd.core import perms as P
from xsd.core.connections import Connection
from xsd.core.credentials import Credentials
from xsd.core.domains import DOMID_MAX, Domain
from xsd.core.quota import Quotas
from xsd.core.state import Settings, State
from xsd.core.tree import NO_CHILDREN, Node, Tree
from xsd.core.views import Transaction
from xsd.core.watch_index import WatchIndex
from xsd.core.watches import Watch
from xsd_client.protocol import Decoder

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)
if TYPE_CHECKING:
    from typing import Any, TypeAlias

    Record: TypeAlias = list[Any]
    """One record: a list headed by its kind (a str)."""

_EXT_IN_FORMAT_2 = frozenset({"watchdogs"})
"""Parts that earlier versions sent as ``ext`` records, before they had their own."""


def load(records: Iterable[Record]) -> tuple[State, dict[str, Any]]:
    """Build a new state from records.

    Raises:
        StateError: the records are inconsistent, incomplete, or of an unknown kind.
    """
    # A load builds millions of objects that all live on: the cyclic collector would
    # scan them again and again for nothing (a fifth of a 1M-node load).
    collecting = gc.isenabled()
    gc.disable()
    try:
        return _Loader().run(records)
    except StateError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
        raise StateError(f"malformed record: {exc!r}") from exc
    finally:
        if collecting:
            gc.enable()


class _Loader(Format1):
    def __init__(self) -> None:
        self.state = State()
        self.state.tree = Tree()
        self.state.domains = {}
        self.extra: dict[str, Any] = {}
        self.pending_nodes: list[Record] = []
        self.perm_table: list[P.Perms] | None = None
        self.count = 0
        self.has_tree = False
        self.has_delta = False
        self.ended = False
        self.usage: dict[int, list[int]] | None = None
        """The tree's usage as the stream gives it (None: recount it)."""

    def run(self, records: Iterable[Record]) -> tuple[State, dict[str, Any]]:
        for record in records:
            if self.ended:
                raise StateError("data after the end record")
            if not isinstance(record, list) or not record or not isinstance(record[0], str):
                raise StateError("a record is not a list headed by its kind")
            kind = record[0]
            if self.count == 0 and kind != "meta":
                raise StateError("the stream does not start with a meta record")
            handler = getattr(self, "_" + kind, None)
            if handler is None or kind.startswith("_"):
                raise StateError(f"unknown record kind {kind!r}")
            handler(record)
            self.count += 1
        if not self.ended:
            raise StateError("the stream ends without an end record")
        if "/" not in self.state.tree.nodes:
            raise StateError("the tree has no root")
        return self.state, self.extra

    def _meta(self, r: Record) -> None:
        if self.count:
            raise StateError("a second meta record")
        meta = r[1]
        state = self.state
        state.tree.generation = int(meta["generation"])
        state.next_conn_id = int(meta["next_conn_id"])
        state.watches = WatchIndex()
        state.watches.next_seq = int(meta["next_watch_seq"])
        state.settings = Settings(**meta["settings"])
        state.quotas = Quotas(hard=dict(meta["quotas"]["hard"]), soft=dict(meta["quotas"]["soft"]))
        state.special_perms = {k: to_perms(v) for k, v in meta["special_perms"].items()}
        self.extra = dict(meta["extra"])
        usage = meta.get("usage")
        if usage is not None:
            if not all(len(u) == 3 and all(type(x) is int for x in u) for u in usage):
                raise StateError("the tree's usage is not a list of [owner, nodes, bytes]")
            self.usage = {owner: [n, size] for owner, n, size in usage}

    def _tree(self, r: Record) -> None:
        if self.perm_table is None or self.has_tree:
            raise StateError("a tree record before the permission table, or a second one")
        generation = self.state.tree.generation
        try:
            self.state.tree = load_tree(r, self.perm_table, count_usage=self.usage is None)
        except TreeError as exc:
            raise StateError(str(exc)) from None
        self.state.tree.generation = generation
        self.has_tree = True

    def _delta(self, r: Record) -> None:
        if not self.has_tree or self.perm_table is None or self.has_delta:
            raise StateError("a tree delta before the tree, or a second one")
        try:
            apply_delta(self.state.tree, r, self.perm_table)
        except DeltaError as exc:
            raise StateError(str(exc)) from None
        self.has_delta = True

    def _perms(self, r: Record) -> None:
        if self.perm_table is not None:
            raise StateError("a second permission table")
        table = [to_perms(p) for p in r[1]]
        self.perm_table = table
        if self.pending_nodes:
            self._build_nodes(table)
            self.has_tree = True

    def _domain(self, r: Record) -> None:
        # Earlier versions knew only introduced domains and sent no ``introduced``.
        _, domid, gfn, evtchn, target, quota, credit, stamp, *rest = r
        if len(rest) > 1 or not all(isinstance(x, bool) for x in rest):
            raise StateError(f"domain {domid}: unknown fields {rest!r}")
        if not 0 <= domid <= DOMID_MAX:
            raise StateError(f"domain id {domid} out of range")
        self.state.domains[domid] = Domain(
            domid, gfn, evtchn, target, dict(quota), float(credit), int(stamp), *rest
        )

    def _conn(self, r: Record) -> None:
        (
            _,
            cid,
            domid,
            privileged,
            creds,
            pending,
            out,
            offset,
            event_frames,
            next_tx,
            partial_since,
            dropped,
            deferred,
        ) = r
        if cid in self.state.connections:
            raise StateError(f"connection {cid} appears twice")
        conn = Connection(cid, domid, bool(privileged))
        conn.creds = None if creds is None else Credentials(*creds)
        conn.decoder = Decoder(bytes(pending))
        for frame, kind, queued in out:
            conn.queue(bytes(frame), kind, queued)
        conn.event_frames = set(event_frames)
        if offset:
            conn.out_offset = offset
            conn.out_bytes -= offset
        conn.next_tx_id = next_tx
        conn.partial_since = partial_since
        conn.dropped_events = dropped
        conn.deferred = None if deferred is None else tuple(deferred)
        self.state.connections[cid] = conn

    def _watches(self, r: Record) -> None:
        _, cids, seqs, paths, tokens, relatives = r
        connections = self.state.connections
        by_path = self.state.watches.by_path
        if not set(map(type, tokens)) <= {bytes} or not set(map(type, paths)) <= {str}:
            raise StateError("a watch path or token of the wrong type")
        for watch in map(Watch, cids, seqs, paths, tokens, relatives):
            conn = connections.get(watch.conn_id)
            if conn is None:
                raise StateError(f"watch of unknown connection {watch.conn_id}")
            by_path.setdefault(watch.path, []).append(watch)
            conn.watches.append(watch)

    def _tx(self, r: Record) -> None:
        _, cid, tx_id, generation, failed, accessed, copies, modified, events = r
        conn = self.state.connections.get(cid)
        if conn is None:
            raise StateError(f"transaction of unknown connection {cid}")
        tx = Transaction(tx_id, generation)
        tx.failed = bool(failed)
        tx.accessed = {p: g for p, g in accessed}
        for path, copy in copies:
            if copy is None:
                tx.nodes[path] = None
            else:
                value, perms, children, gen = copy
                tx.nodes[path] = Node(
                    bytes(value), to_perms(perms), list(children) or NO_CHILDREN, gen
                )
        tx.modified = set(modified)
        tx.events = [(p, bool(e), None if o is None else to_perms(o)) for p, e, o in events]
        if not set(tx.nodes) <= set(tx.accessed) or not tx.modified <= set(tx.nodes):
            raise StateError(f"transaction {tx_id} of connection {cid} is inconsistent")
        conn.transactions[tx_id] = tx

    def _watchdogs(self, r: Record) -> None:
        try:
            self.state.watchdogs = load_watchdogs(r)
        except WatchdogRecordError as exc:
            raise StateError(f"watchdogs: {exc}") from None

    def _ext(self, r: Record) -> None:
        from handover import plain  # typing and hints: only for parts sent this way

        _, name, value = r
        hints = plain.hints(State)
        if name not in hints or (name in CORE_FIELDS and name not in _EXT_IN_FORMAT_2):
            raise StateError(f"unknown state part {name!r}")
        try:
            setattr(self.state, name, plain.from_plain(hints[name], value))
        except plain.PlainError as exc:
            raise StateError(f"state part {name!r}: {exc}") from None

    def _end(self, r: Record) -> None:
        if not self.has_tree:
            raise StateError("the stream ends without a tree")
        if r[1] != self.count:
            raise StateError(f"end record counts {r[1]} records, the stream had {self.count}")
        for conn in self.state.connections.values():
            if conn.domid not in self.state.domains:
                raise StateError(f"connection {conn.id} of unknown domain {conn.domid}")
        if self.usage is not None:  # the delta's recharges were for nothing then
            self.state.tree.usage = self.usage
        self.ended = True


def to_perms(raw: list[list[int]]) -> P.Perms:
    """A permission list as records carry it, checked (StateError if invalid)."""
    if not raw:
        raise StateError("an empty permission list")
    out = []
    for access, domid in raw:
        known = access & ~P.IGNORE in (P.NONE, P.READ, P.WRITE, P.BOTH)  # stale flag kept
        if not known or not -(2**31) <= domid < 2**31:
            raise StateError(f"invalid permission entry {[access, domid]}")
        out.append((access, domid))
    return P.intern(tuple(out))
