"""The daemon's state to records (the format is in ``handover.records``), and a dump of the
tree made ahead of a live update.

``dump`` reads the state without changing it. The tree goes as one record of columns
(``handover.tree_columns``), or as a dump made ahead plus a delta of what changed since
(``handover.tree_delta``); the watchdogs as columns (``handover.watchdog_columns``).
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from operator import attrgetter

import msgpack

from handover.tree_columns import dump_tree, dump_tree_steps, run_steps
from handover.tree_delta import dump_delta
from handover.watchdog_columns import dump_watchdogs
from xsd.core import fields
from xsd.core import perms as P
from xsd.core.connections import Connection
from xsd.core.state import State
from xsd.core.tree import Tree
from xsd.core.views import Transaction

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)
if TYPE_CHECKING:
    from typing import Any, TypeAlias

    Record: TypeAlias = list[Any]
    """One record: a list headed by its kind (a str)."""

CORE_FIELDS = frozenset(
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
"""The parts of the state that have records of their own (others go as ``ext``)."""

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


def dump(
    state: State,
    extra: dict[str, Any] | None = None,
    ahead: TreeAhead | None = None,
    *,
    with_usage: bool = True,
) -> Iterator[Record | Packed]:
    """The records of ``state``; ``extra`` is opaque data for the shell (its descriptors:
    ``handover.shell_record``; durable mode's checkpoint info).

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
        if name not in CORE_FIELDS:
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
