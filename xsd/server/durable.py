"""Durable mode (``--state-dir DIR``): the store survives a crash of the daemon.

The state lives in ``DIR`` (``xsd.server.durable_store``) as a checkpoint plus a journal
(``handover.checkpoint``). Invariants:

* every change is in a committed journal entry before any byte that could tell a client
  about it leaves the daemon (committed: in the kernel's page cache, which a crash of
  the daemon cannot lose; with ``--state-dir-sync``, on the disk too): the shell calls
  :meth:`Durable.commit` once per pass before it applies effects and again after them,
  then writes replies, and the multiplexer calls it before any other socket write
  (``Multiplexer.before_write``); a commit with nothing changed costs two tests;
* the changes of one pass (every request answered in it) go as one entry, one append
  to the journal's file;
* the checkpoint is rewritten in the background once the journal holds
  ``--state-dir-checkpoint`` entries (:data:`COMPACT_ENTRIES`), or half as many as the
  tree has nodes if that is more (a checkpoint's cost grows with the tree, so each
  journal entry pays about the same share of it however big the tree: at 100k nodes a
  fixed 20,000 took 15% of pipelined durable writes' throughput, and a restore replays
  a long journal collapsed, in about 14 us an entry), or :data:`COMPACT_BYTES` (or the
  last checkpoint's size, if more), or once the tree has grown by as many nodes as the
  last checkpoint held (``--state-dir-checkpoint`` at least: a restart replays each new
  node, and a bulk load makes many in few entries): the tree is dumped in steps between
  which the daemon serves (paths changed meanwhile go as a delta, as a live update
  does), then, in a thread, the stream is written and the journal started afresh (a
  new file with only the entries after the checkpoint: ``Store.write_checkpoint``);
* a state is restored whole or not at all, and only in the boot it was saved in unless
  ``--state-dir-restore=any`` says otherwise (watchdog deadlines then keep the time
  they had left); a deadline that passed while the daemon was down fires at once.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from handover import checkpoint, stream
from handover.records import StateError
from xsd.core.engine import Engine
from xsd.core.state import State
from xsd.server.durable_store import Store, StoreError, read_state

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

log = logging.getLogger("xsd")

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
COMPACT_ENTRIES = 20_000
"""Journal entries after which a new checkpoint is written in the background."""
COMPACT_BYTES = 32 << 20
"""Journal bytes after which the same happens."""


class DurableError(Exception):
    """Durable mode cannot start; ``str()`` is one line that says what to do."""


def add_options(parser: argparse.ArgumentParser) -> None:
    """The options of durable mode."""
    group = parser.add_argument_group("durable mode")
    group.add_argument(
        "--state-dir",
        type=Path,
        metavar="DIR",
        help="keep the store in DIR (a checkpoint in LMDB and a journal, each change written "
        "before it is acknowledged) and restore it from there on start, so that a crash "
        "of the daemon loses no acknowledged change; created if missing (default: in "
        "memory only, as C xenstored)",
    )
    group.add_argument(
        "--state-dir-sync",
        action="store_true",
        help="also sync every commit to disk before its reply leaves, so that the state "
        "survives a crash of the host, not only of the daemon (costs a disk flush per pass; "
        "worth it only with --state-dir-restore=any: a state saved before a reboot is "
        "refused otherwise)",
    )
    group.add_argument(
        "--state-dir-checkpoint",
        type=int,
        default=COMPACT_ENTRIES,
        metavar="N",
        help=f"write a new checkpoint in the background once the journal holds N entries "
        f"(one per pass that changed something), or half as many as the tree has nodes "
        f"if that is more, or once the tree has grown by as many nodes as it had at the "
        f"last checkpoint, N at least (default: {COMPACT_ENTRIES})",
    )
    group.add_argument(
        "--state-dir-restore",
        choices=("same-boot", "any"),
        default="same-boot",
        help="which state --state-dir restores: same-boot (default) refuses a state saved "
        "before the host rebooted (its domains are gone); any restores it anyway, "
        "watchdogs keeping the time they had left",
    )


def boot_id() -> str:
    """This boot's id (empty if the kernel does not say)."""
    try:
        return BOOT_ID.read_text().strip()
    except OSError:
        return ""


def open_state(args: argparse.Namespace, fresh: State, engine: Engine | None) -> Durable:
    """The durable store of ``--state-dir``: restored from it if it holds a state, else
    started with ``fresh`` (or, after a live update, ``engine``'s state, which the
    previous process kept in the same directory).

    Raises:
        DurableError: the directory is in use, unreadable, damaged, or from another boot.
    """
    directory: Path = args.state_dir
    try:
        store = Store(directory, sync=bool(getattr(args, "state_dir_sync", False)))
    except StoreError as exc:
        raise DurableError(str(exc)) from None
    try:
        return _open(store, args, fresh, engine)
    except BaseException:
        store.close()
        raise


def _open(store: Store, args: argparse.Namespace, fresh: State, engine: Engine | None) -> Durable:
    directory = store.directory
    every = max(1, int(getattr(args, "state_dir_checkpoint", COMPACT_ENTRIES)))
    if engine is not None:  # a live update: the state came with it, the journal goes on
        store.open()
        durable = Durable(store, engine, store.last_seq(), every)
        durable.checkpoint_sync()
        return durable
    if not store.exists():
        store.open()
        durable = Durable(store, Engine(fresh), 0, every)
        durable.checkpoint_sync()
        log.info("durable: new state in %s", directory)
        return durable
    started = time.monotonic()
    try:
        blob, entries = read_state(directory)
        state, info, last = checkpoint.restore(blob, entries)
    except (StoreError, StateError) as exc:
        raise DurableError(
            f"cannot restore the state in {directory}: {exc}; "
            "move the directory away to start with an empty store"
        ) from None
    this_boot = boot_id()
    if info.get("boot_id") != this_boot:
        if args.state_dir_restore != "any":
            raise DurableError(
                f"the state in {directory} was saved before the host rebooted (boot "
                f"{info.get('boot_id') or '?'}), so its domains are gone: start with "
                "--state-dir-restore=any to restore it anyway, or move the directory away"
            )
        checkpoint.shift_deadlines(state, time.monotonic_ns() - int(info.get("mono_ns", 0)))
    store.open()
    durable = Durable(store, Engine(state), last, every)
    durable.entries = last - int(info["seq"])  # the journal after the checkpoint
    durable.grown_from(int(info["nodes"]))  # what the journal grew counts: not replayed twice
    if info.get("boot_id") != this_boot or store.legacy_journal_path.exists():
        # From now on, a state of this boot; or the legacy journal's entries included,
        # and that file gone.
        durable.checkpoint_sync()
    durable.restored_ms = (time.monotonic() - started) * 1000
    log.info(
        "durable: restored %d nodes, %d domains from %s in %.0f ms (%d journal entries)",
        len(state.tree.nodes),
        len(state.domains),
        directory,
        durable.restored_ms,
        len(entries),
    )
    return durable


class Durable:
    """The state directory of a running daemon, fed at every pass."""

    def __init__(
        self, store: Store, engine: Engine, seq: int, compact_entries: int = COMPACT_ENTRIES
    ) -> None:
        self.store = store
        self.engine = engine
        self.seq = seq
        self.entries = 0  # since the last checkpoint
        self.compact_entries = compact_entries
        """``--state-dir-checkpoint``: entries (and new nodes) after which a checkpoint
        may be due."""
        self.due_entries = 0
        """Entries before which no checkpoint is due by their count (set by the last
        :meth:`checkpoint_due` that said no, from the tree's size then), so that a commit
        asks again only once the journal reaches it."""
        self.due_bytes = COMPACT_BYTES
        """Journal bytes after which the next checkpoint is due (see the module doc)."""
        self.due_nodes = 0
        """Nodes in the tree from which the next checkpoint is due."""
        self.grown_from(len(engine.state.tree.nodes))
        self.bytes = 0
        self.boot_id = boot_id()
        self.restored_ms = 0.0
        self.compacting: set[str] | None = None
        """While a checkpoint's tree is being dumped: every path changed since."""
        self._token = engine.state.watchdogs.next_token
        self._wanted: Any = None  # a trio.Event once run() started
        self.stall_ms = 0.0
        """The longest the last checkpoint held the daemon up in one go."""
        engine.state.tree.dirty = set()

    def commit(self) -> None:
        """Write what changed since the last commit as one journal entry (the hot path:
        nothing changed costs two tests)."""
        engine = self.engine
        state = engine.state
        tree = state.tree
        dirty = tree.dirty
        token = state.watchdogs.next_token
        side = engine.side_changed or token != self._token
        if not dirty and not side:
            return
        if dirty is None:
            dirty = set()
        elif not side:
            # A watchdog's node written: its state changed too. One search of the paths
            # joined (each starts with "/": a match cannot span two of them).
            side = "/watchdog" in "".join(dirty)
        tree.dirty = set()
        engine.side_changed = False
        self._token = token
        if self.compacting is not None:
            self.compacting |= dirty
        self.seq = seq = self.seq + 1
        raw = checkpoint.pack_journal(state, seq, time.monotonic_ns(), dirty, side)
        try:
            self.store.append(seq, raw)
        except OSError as exc:
            # Nothing of this pass may be acknowledged: stop here, restart from the disk.
            log.critical("durable: cannot write the journal in %s: %s", self.store.directory, exc)
            logging.shutdown()
            os._exit(70)
        self.entries += 1
        self.bytes += len(raw)
        if (
            self._wanted is not None
            and self.compacting is None
            # The cheap half of checkpoint_due first: this runs at every commit.
            and (
                self.entries >= self.due_entries
                or self.bytes >= self.due_bytes
                or len(tree.nodes) >= self.due_nodes
            )
            and self.checkpoint_due()
        ):
            self._wanted.set()

    def checkpoint_sync(self) -> None:
        """Write a checkpoint of the state as it is, at once (at start)."""
        self.commit()
        end = self.store.journal_end()
        parts = self._frame(None)
        self.store.write_checkpoint(parts, self.seq, end)
        self.entries = self.bytes = 0
        self._next_due(parts)

    def checkpoint_due(self) -> bool:
        """True if the journal is long enough for a new checkpoint: ``compact_entries``
        entries and half as many as the tree has nodes now, or ``due_bytes`` bytes, or
        the tree grew to ``due_nodes`` nodes."""
        nodes = len(self.engine.state.tree.nodes)
        if self.bytes >= self.due_bytes or nodes >= self.due_nodes:
            return True
        self.due_entries = max(self.compact_entries, nodes // 2)
        return self.entries >= self.due_entries

    def _next_due(self, parts: list[bytes]) -> None:
        """The bytes and the tree's size at which the checkpoint after ``parts`` (just
        written) is due. Size: once the tree has grown by as many nodes as it has now,
        and by ``compact_entries`` at least. A restart replays each node created since
        the last checkpoint (about 11 us a node, where a checkpoint loads 100k nodes in
        0.14 s), and a bulk load makes many nodes in few entries: 100k nodes in 5,861
        passes were replayed in 1.16 s after a kill -9, the entries' count never having
        reached half the tree's."""
        self.due_bytes = max(COMPACT_BYTES, sum(len(part) for part in parts))
        self.grown_from(len(self.engine.state.tree.nodes))

    def grown_from(self, nodes: int) -> None:
        """Make the next checkpoint due once the tree has grown enough from ``nodes``
        nodes (those of the last checkpoint)."""
        self.due_nodes = nodes + max(nodes, self.compact_entries)

    def _frame(self, ahead: Any) -> list[bytes]:
        info = {"seq": self.seq, "boot_id": self.boot_id, "mono_ns": time.monotonic_ns()}
        recs = checkpoint.checkpoint_records(self.engine.state, info, ahead)
        return stream.frame_parts(stream.pack_each(recs))

    async def run(self) -> None:
        """Write checkpoints in the background whenever the journal grows long."""
        import trio

        while True:
            self._wanted = trio.Event()
            if self.checkpoint_due():
                self._wanted.set()
            await self._wanted.wait()
            try:
                await self.checkpoint_background()
            except Exception:
                log.exception("durable: writing a checkpoint failed; the journal goes on")
                self.compacting = None
                await trio.sleep(10)

    async def checkpoint_background(self) -> None:
        """A new checkpoint, the daemon serving meanwhile; logs the longest hold-up."""
        import trio

        tree = self.engine.state.tree
        clock = time.perf_counter
        worst = 0.0
        self.commit()
        self.compacting = set()
        steps = checkpoint.checkpoint_ahead_steps(tree)
        ahead = None
        while True:
            began = clock()
            try:
                next(steps)
            except StopIteration as done:
                ahead = done.value
                break
            finally:
                worst = max(worst, clock() - began)
            await trio.sleep(0)
        began = clock()
        self.commit()
        changed, self.compacting = self.compacting, None
        if tree.journal is not None:  # a live update keeps its journal: dump in full
            ahead = None
        tree.journal = changed if ahead is not None else tree.journal
        try:
            parts = self._frame(ahead)
        finally:
            if ahead is not None:
                tree.journal = None
        seq, end = self.seq, self.store.journal_end()
        self.entries = self.bytes = 0
        self._next_due(parts)
        worst = max(worst, clock() - began)
        await trio.to_thread.run_sync(self.store.write_checkpoint, parts, seq, end)
        self.stall_ms = worst * 1000
        log.info(
            "durable: checkpoint of %d nodes at entry %d (longest pause %.1f ms)",
            len(tree.nodes),
            seq,
            self.stall_ms,
        )

    def open_domain_sockets(
        self, listening: Collection[int], open_socket: Callable[[int], None]
    ) -> None:
        """Listen again (``open_socket``) on the sockets of the domains the state has
        introduced that are not ``listening`` yet."""
        for domid, domain in sorted(self.engine.state.domains.items()):
            if domid != 0 and domain.introduced and domid not in listening:
                open_socket(domid)

    def close(self) -> None:
        """Stopping: commit what is left, make it the checkpoint (the next start then
        reads no journal) and close the directory."""
        try:
            self.commit()
            if self.entries:
                self.checkpoint_sync()
        finally:
            self.store.close()
