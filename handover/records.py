"""The daemon's state as a flat list of records, and back.

Every record is a msgpack-able list whose first item names its kind. Records are flat
on purpose: the tree goes as one record of columns (``handover.tree_columns``), so a
path 1,500 levels deep costs no nesting and no recursion, and a million nodes pack as a
few large arrays. Invariants of a stream (format 2):

* ``meta`` comes first and ``end`` last, ``end`` carrying the number of records before it;
* the permission table (``perms``) comes before the ``tree`` that refers to it;
* connections come before their watches and transactions;
* a kind this version does not know is refused, never skipped;
* ``meta`` may carry the tree's ``usage`` (``[[owner, nodes, bytes], ...]``), exact when
  dumped: the loader then takes it rather than recounting every node in the pause of a
  live update. A live update's dry run recounts it (``xsd --check-state``), and if the
  two differ the update sends no usage, so that the new process recounts. A stream
  without it (from an earlier version) is recounted;
* a ``domain`` record is ``["domain", domid, gfn, evtchn, target, quota, wrl_credit,
  wrl_stamp, introduced]``: ``introduced`` False for a domain domain 0 has named but not
  introduced (``xsd.core.domains``). Earlier versions knew introduced domains only and
  sent no ``introduced``; such records load as introduced.

Format 1 (written by earlier versions, still loaded) sent the tree as ``nodes`` records
of full paths in depth-first order, parents first, followed by the permission table.

``dump`` reads the state without changing it; ``load`` builds a fresh state and raises
:class:`StateError` at the first inconsistency, so nothing is ever half-loaded.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Generator, Iterable, Iterator
from operator import attrgetter

import msgpack

from handover.tree_columns import TreeError, dump_tree, dump_tree_steps, load_tree, run_steps
from handover.tree_delta import DeltaError, apply_delta, dump_delta
from handover.watchdog_columns import WatchdogRecordError, dump_watchdogs, load_watchdogs
from xsd.core import fields
from xsd.core import perms as P
from xsd.core.connections import Connection, Credentials
from xsd.core.domains import DOMID_MAX, Domain
from xsd.core.quota import Quotas
from xsd.core.state import Settings, State
from xsd.core.tree import NO_CHILDREN, Node, Tree
from xsd.core.views import Transaction
from xsd.core.watches import Watch, WatchIndex
from xsd_client.protocol import Decoder

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)
if TYPE_CHECKING:
    from typing import Any, TypeAlias

    Record: TypeAlias = list[Any]
    """One record: a list headed by its kind (a str)."""

_CORE_FIELDS = frozenset(
    {
        "tree",
        "special_perms",
        "watches",
        "connections",
        "next_conn_id",
        "domains",
        "settings",
        "quotas",
        "watchdogs",
    }
)
_EXT_IN_FORMAT_2 = frozenset({"watchdogs"})
"""Parts that earlier versions sent as ``ext`` records, before they had their own."""


class StateError(Exception):
    """The records do not describe a state this version can load."""


Packed = bytes
"""A record already packed (msgpack), which the stream carries as it is."""

DELTA_SHARE_MAX = 4
"""A delta is sent only while it names at most 1/4 of the nodes (else a full dump)."""


class TreeAhead:
    """A dump of the tree made ahead of a live update, the tree's journal started with it
    (see ``handover.tree_delta``)."""

    __slots__ = ("packed", "table")

    def __init__(self, packed: Packed, table: list[P.Perms]) -> None:
        self.packed = packed
        self.table = table


def dump_ahead(tree: Tree) -> TreeAhead:
    """Dump (and pack) ``tree`` now and start its journal: a later :func:`dump` given the
    result sends this dump and only the paths changed since."""
    return run_steps(dump_ahead_steps(tree))


def dump_ahead_steps(tree: Tree) -> Generator[None, None, TreeAhead]:
    """:func:`dump_ahead` in steps (see ``tree_columns.dump_tree_steps``): the tree may
    change between them, since the journal starts first."""
    tree.journal = set()
    record, table = yield from dump_tree_steps(tree)
    packer = msgpack.Packer(use_bin_type=True)
    parts = [packer.pack_array_header(len(record))]
    for column in record:  # a column per step: each is one C call
        parts.append(packer.pack(column))
        yield
    return TreeAhead(b"".join(parts), table)


def forget_ahead(tree: Tree) -> None:
    """Stop the journal a :func:`dump_ahead` started (the update ended or failed)."""
    tree.journal = None


# ---------------------------------------------------------------------------- dump


def dump(
    state: State,
    extra: dict[str, Any] | None = None,
    ahead: TreeAhead | None = None,
    *,
    with_usage: bool = True,
) -> Iterator[Record | Packed]:
    """The records of ``state``; ``extra`` is opaque data for the shell (descriptors).

    With ``ahead`` (from :func:`dump_ahead` on this tree, its journal kept since), the
    tree goes as that dump plus a delta of what changed, unless too much did. Without
    ``with_usage``, the loader recounts the tree's usage rather than taking ours."""
    yield [
        "meta",
        {
            "generation": state.tree.generation,
            "next_conn_id": state.next_conn_id,
            "next_watch_seq": state.watches.next_seq,
            "settings": fields.as_dict(state.settings),
            "quotas": {"hard": state.quotas.hard, "soft": state.quotas.soft},
            "special_perms": {k: _perms(v) for k, v in state.special_perms.items()},
            "extra": extra or {},
            "usage": [[owner, n, size] for owner, (n, size) in state.tree.usage.items()]
            if with_usage
            else None,
        },
    ]
    tree = state.tree
    journal = tree.journal
    if (
        ahead is not None
        and journal is not None
        and len(journal) * DELTA_SHARE_MAX <= len(tree.nodes)
    ):
        ids = {p: i for i, p in enumerate(ahead.table)}
        delta = dump_delta(tree, journal, ids)  # adds new permissions to ids, in order
        yield ["perms", [_perms(p) for p in ids]]
        yield ahead.packed
        yield delta
        count = 4
    else:
        tree_record, perm_table = dump_tree(tree)
        yield ["perms", [_perms(p) for p in perm_table]]
        yield tree_record
        count = 3
    for domain in state.domains.values():
        yield [
            "domain",
            domain.domid,
            domain.gfn,
            domain.evtchn,
            domain.target,
            domain.quota,
            domain.wrl_credit,
            domain.wrl_stamp,
            domain.introduced,
        ]
        count += 1
    for conn in state.connections.values():
        yield _connection(conn)
        count += 1
    watches = sorted((w for bucket in state.watches.by_path.values() for w in bucket), key=_seq)
    yield [
        "watches",
        list(map(_conn_id, watches)),
        list(map(_seq, watches)),
        list(map(_path, watches)),
        list(map(_token, watches)),
        list(map(_relative_to, watches)),
    ]
    count += 1
    for conn in state.connections.values():
        for tx in conn.transactions.values():
            yield _transaction(conn.id, tx)
            count += 1
    yield dump_watchdogs(state.watchdogs)
    count += 1
    for name in fields.names(State):
        if name not in _CORE_FIELDS:
            from handover import plain  # only for parts without a record of their own

            encode = plain.encoder(plain.hints(State)[name])
            yield ["ext", name, encode(getattr(state, name))]
            count += 1
    yield ["end", count]


_conn_id = attrgetter("conn_id")
_seq = attrgetter("seq")
_path = attrgetter("path")
_token = attrgetter("token")
_relative_to = attrgetter("relative_to")


def _perms(perms: P.Perms) -> list[list[int]]:
    return [[a, d] for a, d in perms]


def _connection(conn: Connection) -> Record:
    creds = None if conn.creds is None else [conn.creds.pid, conn.creds.uid, conn.creds.gid]
    return [
        "conn",
        conn.id,
        conn.domid,
        conn.privileged,
        creds,
        conn.decoder.pending,
        [[frame, kind, queued] for frame, kind, queued in conn.out],
        conn.out_offset,
        sorted(conn.event_frames),
        conn.next_tx_id,
        conn.partial_since,
        conn.dropped_events,
        conn.deferred,
    ]


def _transaction(conn_id: int, tx: Transaction) -> Record:
    copies: list[list[Any]] = []
    for path, node in tx.nodes.items():
        if node is None:
            copies.append([path, None])
        else:
            copies.append([path, [node.value, _perms(node.perms), list(node.children), node.gen]])
    return [
        "tx",
        conn_id,
        tx.id,
        tx.generation,
        tx.failed,
        [[p, g] for p, g in tx.accessed.items()],
        copies,
        sorted(tx.modified),
        [[p, exact, None if old is None else _perms(old)] for p, exact, old in tx.events],
    ]


# ---------------------------------------------------------------------------- load


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


class _Loader:
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
        state.special_perms = {k: _to_perms(v) for k, v in meta["special_perms"].items()}
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

    def _nodes(self, r: Record) -> None:
        # Format 1. Permission ids are resolved when the table arrives (it follows).
        if self.perm_table is not None:
            raise StateError("node records after the permission table")
        _, paths, values, perm_col, gens = r
        if not (len(paths) == len(values) == len(perm_col) == len(gens)):
            raise StateError("a nodes record has columns of different lengths")
        self.pending_nodes.append(r)

    def _perms(self, r: Record) -> None:
        if self.perm_table is not None:
            raise StateError("a second permission table")
        table = [_to_perms(p) for p in r[1]]
        self.perm_table = table
        if self.pending_nodes:
            self._build_nodes(table)
            self.has_tree = True

    def _build_nodes(self, table: list[P.Perms]) -> None:
        """Format 1: the tree from ``nodes`` records, one node at a time."""
        tree = self.state.tree
        nodes = tree.nodes
        usage = tree.usage
        for _, paths, values, perm_col, gens in self.pending_nodes:
            _check_paths(paths, values)
            # The hot loop of a restore: one iteration per node, nothing it can skip.
            for path, value, pid, gen in zip(paths, values, perm_col, gens, strict=True):
                perms = table[pid]
                node = Node(value, perms, NO_CHILDREN, gen)
                cut = path.rfind("/")
                if cut > 0:
                    parent = nodes.get(path[:cut])
                elif path != "/":
                    parent = nodes.get("/")
                else:
                    if nodes:
                        raise StateError("the root is not the first node")
                    parent = None
                if parent is not None:
                    siblings = parent.children  # add_child(), inlined: the hot loop
                    if siblings:
                        siblings.append(path)
                    else:
                        parent.children = [path]
                elif path != "/":
                    raise StateError(f"node {path} comes before its parent")
                if nodes.setdefault(path, node) is not node:
                    raise StateError(f"node {path} appears twice")
                owner = perms[0][1]
                cost = 32 + len(path) + len(value) + 8 * (len(perms) - 1)
                if cut >= 0 and path != "/":
                    cost += len(path) - cut
                entry = usage.get(owner)
                if entry is None:
                    usage[owner] = [1, cost]
                else:
                    entry[0] += 1
                    entry[1] += cost
        self.pending_nodes = []

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

    def _watch(self, r: Record) -> None:
        # Format 1: a record per watch.
        _, cid, seq, path, token, relative_to = r
        self._watches(["watches", [cid], [seq], [path], [bytes(token)], [relative_to]])

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
                    bytes(value), _to_perms(perms), list(children) or NO_CHILDREN, gen
                )
        tx.modified = set(modified)
        tx.events = [(p, bool(e), None if o is None else _to_perms(o)) for p, e, o in events]
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
        if name not in hints or (name in _CORE_FIELDS and name not in _EXT_IN_FORMAT_2):
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


_PATHS_OK = re.compile(r"(?:(?:/[A-Za-z0-9_@-]+)+|/)(?:\n(?:(?:/[A-Za-z0-9_@-]+)+|/))*")
_PATH_OK = re.compile(r"(?:/[A-Za-z0-9_@-]+)+|/")


def _check_paths(paths: list[Any], values: list[Any]) -> None:
    """Every path canonical and every value bytes, checked in bulk (one regex pass over
    all paths; only a failure looks for the culprit)."""
    if not all(type(p) is str for p in paths) or not _PATHS_OK.fullmatch("\n".join(paths)):
        bad = next(p for p in paths if type(p) is not str or not _PATH_OK.fullmatch(p))
        raise StateError(f"invalid node path {bad!r}")
    if not all(type(v) is bytes for v in values):
        raise StateError("a node value is not a byte string")


def _to_perms(raw: list[list[int]]) -> P.Perms:
    if not raw:
        raise StateError("an empty permission list")
    out = []
    for access, domid in raw:
        known = access & ~P.IGNORE in (P.NONE, P.READ, P.WRITE, P.BOTH)  # stale flag kept
        if not known or not -(2**31) <= domid < 2**31:
            raise StateError(f"invalid permission entry {[access, domid]}")
        out.append((access, domid))
    return P.intern(tuple(out))
