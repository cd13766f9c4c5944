"""Durable mode's state on disk: a checkpoint plus a journal of changes, and back.

The daemon started with ``--state-dir`` (``xsd.server.durable``) keeps what outlives a
connection: nodes, permissions, generation counters, domains, quotas, settings and the
watchdogs (deadlines, boot status). Both halves reuse the records of ``handover.records``
(one serialization path, one loader):

* the **checkpoint** is a whole framed stream (``handover.stream``) of the state without
  connections, watches or transactions (:func:`durable_view`), its ``meta`` extra
  carrying ``durable`` = ``{"seq", "boot_id", "mono_ns"}``: the last journal entry it
  includes, the boot it was written in and the monotonic time then;
* each **journal entry** is what one pass of the daemon changed, as
  ``["journal", seq, mono_ns, generation, next_conn_id, next_watch_seq, perms, delta,
  side]``: ``perms`` and ``delta`` are a permission table and the entries of a
  ``handover.tree_delta`` record for the paths written or removed; ``side`` is None,
  or, when more than the tree may have changed, the records of a whole state whose tree
  is a stub (:func:`side_records`): its domains, quotas, settings, special permissions
  and watchdogs replace the current ones. An entry is stored packed, after the CRC-32
  of the packed bytes (:func:`pack_entry`).

:func:`restore` builds a state from a checkpoint and the entries that follow it, in
order and without a gap (their deltas collapsed into one, each path as the last entry
naming it left it; each side part replacing the last, only the final one is loaded),
and raises :class:`StateError` at the first problem: the
caller never sees a half-loaded state.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Collection, Generator, Iterable

import msgpack

from handover import records, stream
from handover.records import StateError, TreeAhead
from handover.tree_columns import dump_tree_steps
from handover.tree_delta import DeltaError, apply_delta, dump_delta
from xsd.core import perms as P
from xsd.core.state import State
from xsd.core.tree import Tree
from xsd.core.watch_index import WatchIndex

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (see xsd.core.fields)
if TYPE_CHECKING:
    from typing import Any

_CRC = struct.Struct("<I")


def durable_view(state: State, tree: Tree | None = None) -> State:
    """``state`` as durable mode keeps it: its tree (or ``tree``), without connections,
    watches or transactions (they die with the process); shares ``state``'s parts."""
    watches = WatchIndex()
    watches.next_seq = state.watches.next_seq
    return State(
        tree=state.tree if tree is None else tree,
        special_perms=state.special_perms,
        watches=watches,
        connections={},
        next_conn_id=state.next_conn_id,
        domains=state.domains,
        settings=state.settings,
        quotas=state.quotas,
        watchdogs=state.watchdogs,
    )


def checkpoint_records(
    state: State, info: dict[str, Any], ahead: TreeAhead | None = None
) -> list[Any]:
    """The records of a checkpoint of ``state`` (``info``: its ``durable`` extra). With
    ``ahead``, ``state.tree.journal`` must name every path changed since that dump."""
    return list(records.dump(durable_view(state), {"durable": info}, ahead))


def checkpoint_ahead_steps(tree: Tree) -> Generator[None, None, TreeAhead]:
    """Dump the tree in steps for a checkpoint (the daemon serves between them), packed
    as ``records.dump_ahead`` packs it. Whoever calls this must note every path changed
    from its first step on, and hand them to :func:`checkpoint_records` as the journal."""
    record, table = yield from dump_tree_steps(tree)
    packer = msgpack.Packer(use_bin_type=True)
    parts = [packer.pack_array_header(len(record))]
    for column in record:
        parts.append(packer.pack(column))
        yield
    return TreeAhead(b"".join(parts), table)


def side_records(state: State) -> list[Any]:
    """A whole state's records with ``state``'s domains, quotas, settings, special
    permissions, counters and watchdogs, and a stub tree (the tree goes as deltas)."""
    stub = Tree.initial()
    stub.generation = state.tree.generation
    return list(records.dump(durable_view(state, stub), with_usage=False))


def journal_entry(
    state: State, seq: int, mono_ns: int, changed: Iterable[str], side: bool
) -> list[Any]:
    """The journal entry for the paths ``changed`` (and the rest if ``side``); the delta's
    entries in no particular order (durable mode's hot path: one per pass that changed
    something)."""
    ids: dict[P.Perms, int] = {}
    delta = dump_delta(state.tree, changed, ids, ordered=False)[1]
    return [
        "journal",
        seq,
        mono_ns,
        state.tree.generation,
        state.next_conn_id,
        state.watches.next_seq,
        list(ids),  # tuples of (domid, access) pairs: msgpack packs them as arrays
        delta,
        side_records(state) if side else None,
    ]


def _tuple_as_list(obj: object) -> list[Any]:
    if isinstance(obj, tuple):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not packed strictly")


_PACKER = msgpack.Packer(use_bin_type=True)
_STRICT = msgpack.Packer(use_bin_type=True, strict_types=True, default=_tuple_as_list)
"""Packs as :data:`_PACKER` does, a third faster: exact types are packed without asking
whether they are an ``ExtType`` or a ``Timestamp`` first (msgpack's isinstance tests);
tuples become arrays through ``default``; anything else falls back to ``_PACKER``."""
_STRICT_FROM = 3
"""Changed paths from which an entry is packed strictly: calling ``default`` for the
permission table costs more than strict packing saves on one or two paths."""


def pack_journal(
    state: State, seq: int, mono_ns: int, changed: Collection[str], side: bool
) -> bytes:
    """:func:`pack_entry` of :func:`journal_entry`: what durable mode appends.

    A pass that wrote one leaf and nothing else (the commonest, one request in flight)
    has its entry built here in one go, the same as :func:`journal_entry` builds it,
    without the calls and lists of the general path: the daemon's commit runs with cold
    caches between two requests, where each one saved counts about three times what it
    does in a loop."""
    if len(changed) == 1 and not side:
        tree = state.tree
        for path in changed:
            node = tree.nodes.get(path)
            if node is not None and not node.children:
                return pack_entry(
                    ["journal", seq, mono_ns, tree.generation, state.next_conn_id,
                     state.watches.next_seq, [node.perms], [[path, node.value, 0, node.gen, []]],
                     None]
                )  # fmt: skip
    return pack_entry(journal_entry(state, seq, mono_ns, changed, side))


def pack_entry(entry: list[Any]) -> bytes:
    """A journal entry as stored: the CRC-32 of its msgpack bytes, then those."""
    if len(entry[7]) < _STRICT_FROM:
        body: bytes = _PACKER.pack(entry)
    else:
        try:
            body = _STRICT.pack(entry)
        except TypeError:  # a subclass of a packable type (side records): packed loosely
            body = _PACKER.pack(entry)
    return _CRC.pack(zlib.crc32(body)) + body


def unpack_entry(raw: bytes | memoryview) -> list[Any]:
    """A stored journal entry back (see :func:`pack_entry`).

    Raises:
        StateError: it is truncated, altered, or not a journal entry.
    """
    if len(raw) < _CRC.size + 1:
        raise StateError("a journal entry is truncated")
    body = bytes(raw[_CRC.size :])
    if _CRC.unpack_from(raw)[0] != zlib.crc32(body):
        raise StateError("journal entry checksum mismatch: the journal was altered or damaged")
    try:
        entry = msgpack.unpackb(body, raw=False, use_list=True, strict_map_key=False)
    except (msgpack.ExtraData, msgpack.FormatError, msgpack.StackError, ValueError) as exc:
        raise StateError(f"a journal entry does not decode: {exc}") from exc
    if not isinstance(entry, list) or len(entry) != 9 or entry[0] != "journal":
        raise StateError("a journal entry is not a journal record")
    return entry


def restore(
    checkpoint: bytes | memoryview, entries: Iterable[tuple[int, bytes | memoryview]]
) -> tuple[State, dict[str, Any], int]:
    """The state a checkpoint (a framed stream) and the journal after it describe:
    ``(state, its durable info as of the last entry, the last seq applied)``; the info's
    ``"nodes"`` is how many nodes the checkpoint itself held.

    ``entries`` are ``(seq, stored bytes)`` in increasing order; those the checkpoint
    already includes are skipped, the rest must follow it without a gap.

    Raises:
        StateError: anything is damaged, missing or inconsistent; nothing is returned.
    """
    state, extra = records.load(stream.decode_state(checkpoint))
    info = extra.get("durable")
    if not isinstance(info, dict) or type(info.get("seq")) is not int:
        raise StateError("the checkpoint is not a durable-mode checkpoint")
    info = dict(info)
    info["nodes"] = len(state.tree.nodes)
    last = included = info["seq"]
    unpacked = []
    for seq, raw in entries:
        if seq <= included:
            continue
        if seq != last + 1:
            raise StateError(f"journal entry {last + 1} is missing (next is {seq})")
        entry = unpack_entry(raw)
        if entry[1] != seq:
            raise StateError(f"journal entry {seq} is stored as entry {entry[1]}")
        unpacked.append(entry)
        last = seq
    if not unpacked:
        return state, info, last
    span = f"journal entries {unpacked[0][1]}-{last}"
    # Each side part replaces the one before: only the last one is loaded.
    side = next((e[8] for e in reversed(unpacked) if e[8] is not None), None)
    final = unpacked[-1]
    try:
        delta, table = _collapse(unpacked)
        apply_delta(state.tree, ["delta", delta], table)
        if side is not None:
            other, _ = records.load(side)
            state.special_perms = other.special_perms
            state.domains = other.domains
            state.settings = other.settings
            state.quotas = other.quotas
            state.watchdogs = other.watchdogs
        state.tree.generation = int(final[3])
        state.next_conn_id = int(final[4])
        state.watches.next_seq = int(final[5])
    except (TypeError, ValueError, KeyError, IndexError, AttributeError) as exc:
        if isinstance(exc, DeltaError):
            raise StateError(f"{span}: {exc}") from None
        raise StateError(f"{span} are malformed: {exc!r}") from exc
    info["mono_ns"] = final[2]
    return state, info, last


def _collapse(entries: list[list[Any]]) -> tuple[list[Any], list[P.Perms]]:
    """The deltas of ``entries`` as one: each path as the last entry naming it left it,
    their permissions in one table. Applied once, it gives the tree that applying them
    in order would (each entry holds the whole of every node it names), checked once:
    replaying one by one costs a check of every entry's parents, a hundred thousand
    children each in a big directory."""
    latest: dict[str, list[Any]] = {}
    ids: dict[P.Perms, int] = {}
    for entry in entries:
        remap = []
        for raw in entry[6]:
            perms = records.to_perms(raw)
            pid = ids.get(perms)
            if pid is None:
                pid = ids[perms] = len(ids)
            remap.append(pid)
        for item in entry[7]:
            if len(item) == 5:
                old = item[2]
                if type(old) is not int or not 0 <= old < len(remap):
                    raise DeltaError(f"a tree-delta entry for {item[0]!r:.80} names no permission")
                item[2] = remap[old]
            latest[item[0]] = item
    return list(latest.values()), list(ids)


def shift_deadlines(state: State, by_ns: int) -> None:
    """Move every watchdog deadline by ``by_ns`` (a state from another boot: its
    monotonic clock started elsewhere), keeping the time each had left."""
    wd = state.watchdogs
    for dd in wd.domains.values():
        for dog in dd.dogs:
            if dog.deadline:
                dog.deadline += by_ns
    wd.heap = [(when + by_ns, domid, slot, token) for when, domid, slot, token in wd.heap]
