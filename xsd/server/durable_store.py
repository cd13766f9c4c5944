"""The state directory of durable mode: a checkpoint, a journal, and reading them safely.

``DIR/checkpoint.lmdb`` holds one checkpoint, a framed stream (``handover.stream``)
kept as ``transports.write_lmdb`` keeps one (``head``, ``r`` + index, ``digest``), and
is replaced whole in one LMDB transaction. ``DIR/journal`` holds the journal entries
(``handover.checkpoint``), appended through a shared map (``xsd.server.journal_file``,
which says why it is not LMDB); once a checkpoint includes its entries, a new file
holding those after it (``DIR/journal.new`` while written) is renamed over it. An entry
is in the kernel's page cache when its append returns (on the disk too with ``sync``);
a checkpoint syncs its files, a clean close both. ``DIR/lock`` is held (flock) by the
daemon using the directory. The journal's writers, the daemon's appends and a
checkpoint thread's move to the next file, take :attr:`Store.writing`, a Python lock
that costs nothing when free. A journal written by xsd before 2026-12-07, an LMDB file
(``DIR/journal.lmdb``, entries under ``j`` + their sequence number, big-endian), is
still read; the first checkpoint after the restore replaces it.

Reading happens in a forked child that sends the bytes through a pipe: a truncated or
damaged LMDB file can make a reader fault on a page that is not there (SIGBUS), and
that must cost a refusal, not the daemon. The parent checks everything it receives
(``handover.checkpoint.restore``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import struct
import threading
from pathlib import Path
from typing import Any

import lmdb
import msgpack

from handover.stream import check_header
from xsd.server.journal_file import JournalFile, JournalFormatError, read_journal

_KEY = struct.Struct(">Q")
LEGACY_JOURNAL_FORMAT = b"xsd-journal 1"
"""The ``format`` key of an LMDB journal (written by xsd before 2026-12-07)."""
CHECKPOINT_MAP = 1 << 36


class StoreError(Exception):
    """The state directory cannot be used; ``str()`` is one line that says why."""


class Store:
    """The open state directory: its lock, its journal file and its checkpoint's LMDB file."""

    def __init__(self, directory: Path, *, sync: bool = True) -> None:
        self.directory = directory
        try:
            directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self.lock_fd = os.open(directory / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            raise StoreError(f"cannot use the state directory {directory}: {exc.strerror}") from exc
        try:
            fcntl.flock(self.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(self.lock_fd)
            raise StoreError(f"another daemon uses the state directory {directory}") from None
        self.sync = sync
        self.writing = threading.RLock()
        """Held by each write to the journal (the daemon's thread appends, a
        checkpoint's thread moves it to its next file), and by the daemon's thread
        across a live update's fork of its guardian (``Server.forking``: the guardian
        must not inherit it held by a thread it does not have); reentrant, so that the
        daemon's thread never waits for itself."""
        self.journal: JournalFile | None = None
        self.checkpoint: Any = None

    @property
    def journal_path(self) -> Path:
        """The journal's file."""
        return self.directory / "journal"

    @property
    def fresh_journal_path(self) -> Path:
        """Where a checkpoint writes the journal's next file (:meth:`_next_file`)."""
        return self.directory / "journal.new"

    @property
    def legacy_journal_path(self) -> Path:
        """An LMDB journal, as xsd wrote one before 2026-12-07 (read, then replaced)."""
        return self.directory / "journal.lmdb"

    @property
    def checkpoint_path(self) -> Path:
        """The checkpoint's LMDB file."""
        return self.directory / "checkpoint.lmdb"

    def exists(self) -> bool:
        """True if the directory holds a state (or a part of one)."""
        return any(
            path.exists()
            for path in (self.journal_path, self.legacy_journal_path, self.checkpoint_path)
        )

    def open(self) -> None:
        """Open the journal and the checkpoint for writing (creating them if missing)."""
        try:
            with contextlib.suppress(FileNotFoundError):  # a rewrite a crash cut short
                self.fresh_journal_path.unlink()
            self.journal = JournalFile(self.journal_path, sync=self.sync)
            self.checkpoint = lmdb.open(
                str(self.checkpoint_path), subdir=False, map_size=CHECKPOINT_MAP, max_dbs=0,
                mode=0o600, sync=self.sync, metasync=self.sync,
            )  # fmt: skip
        except (OSError, JournalFormatError, lmdb.Error) as exc:
            raise StoreError(f"cannot open the state in {self.directory}: {exc}") from exc

    def last_seq(self) -> int:
        """The sequence number of the last journal entry (0: none)."""
        assert self.journal is not None
        return self.journal.last_seq()

    def append(self, seq: int, raw: bytes) -> None:
        """Store journal entry ``seq`` (in the page cache when this returns; on the
        disk too if ``sync``).

        Raises:
            OSError: no space for it: it is not in the journal.
        """
        with self.writing:
            self.journal.append(seq, raw)  # type: ignore[union-attr]

    def journal_end(self) -> int:
        """Where the journal ends now: what :meth:`write_checkpoint` needs to know with
        the last entry's sequence number (taken together, between two appends)."""
        assert self.journal is not None
        return self.journal.end()

    def write_checkpoint(self, parts: list[bytes], seq: int, end: int) -> None:
        """Replace the checkpoint with a framed stream given in parts (head, body parts,
        digest), then drop the journal entries up to ``seq``, which it includes (``end``:
        :meth:`journal_end` when ``seq`` was the last). Runs in a thread: the daemon's
        commits wait only while the journal moves to its next file (:meth:`_next_file`)."""
        head, body, digest = parts[0], parts[1:-1], parts[-1]
        with self.checkpoint.begin(write=True) as txn:
            txn.drop(self.checkpoint.open_db(), delete=False)  # the main database: emptied
            txn.put(b"head", head)
            txn.put(b"digest", digest)
            for i, item in enumerate(body):
                txn.put(b"r" + _KEY.pack(i), item, append=True)
        self.checkpoint.sync(True)
        self._next_file(seq, end)

    def _next_file(self, seq: int, end: int) -> None:
        """Drop the journal entries up to ``seq``: a new journal file holding only the
        entries after ``seq`` (those appended while the checkpoint was written), synced,
        takes the old one's name (``rename``: a crash leaves one or the other, and the
        directory is synced too), with the daemon's commits held meanwhile (a few
        milliseconds: the new file is a few pages; with ``sync``, the directory's sync
        too, so that no commit in the new file is acknowledged before its name is on
        the disk).

        Not the old file cut in place: the kept entries would move to its start, and a
        crash in the middle of the move would leave no whole journal. The kept entries
        are read from ``end`` on, not found by reading the file from its start: a
        Python loop over 20,000 entries, some 20 ms against the daemon's thread for the
        interpreter."""
        fresh_path = self.fresh_journal_path
        with self.writing:
            assert self.journal is not None
            kept = self.journal.entries(end)  # the few appended since: not a parse of all
            if kept and kept[0][0] != seq + 1:
                raise StoreError(f"the journal does not go on from entry {seq} at {end}")
            fresh: JournalFile | None = None
            try:
                fresh = JournalFile(fresh_path, sync=False, map_size=self.journal.map_size)
                for key, value in kept:
                    fresh.append(key, value)
                fresh.flush()
                fresh.sync = self.sync
                os.replace(fresh_path, self.journal_path)
            except BaseException:
                if fresh is not None:
                    fresh.close()
                with contextlib.suppress(OSError):
                    fresh_path.unlink()
                raise
            old, self.journal = self.journal, fresh
            if self.sync:  # before any commit in the new file can be acknowledged
                _sync_directory(self.directory)
        old.close()
        with contextlib.suppress(FileNotFoundError):  # its entries are in the checkpoint
            self.legacy_journal_path.unlink()
        if not self.sync:
            _sync_directory(self.directory)

    def close(self) -> None:
        """Close the environments and let go of the directory (once a checkpoint's
        thread, if one is moving the journal to its next file, is done)."""
        with self.writing:
            if self.journal is not None:
                self.journal.flush()
                self.journal.close()
            if self.checkpoint is not None:
                self.checkpoint.sync(True)
                self.checkpoint.close()
            self.journal = self.checkpoint = None
        with contextlib.suppress(OSError):
            os.close(self.lock_fd)


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_state(directory: Path) -> tuple[bytes, list[tuple[int, bytes]]]:
    """The checkpoint (a framed stream) and the journal entries of a state directory,
    read in a forked child.

    Raises:
        StoreError: a file is missing, not ours, truncated, or reading it crashed.
    """
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: read, send, exit without running anything of the parent's
        code = 0
        try:
            os.close(rfd)
            try:
                reply: Any = ["ok", *_read(directory)]
            except StoreError as exc:
                reply = ["error", str(exc)]
            data = msgpack.packb(reply, use_bin_type=True)
            view = memoryview(data)
            while view:
                view = view[os.write(wfd, view) :]
        except BaseException:
            code = 1
        os._exit(code)
    os.close(wfd)
    chunks = []
    with os.fdopen(rfd, "rb") as pipe:
        while chunk := pipe.read(1 << 20):
            chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    if os.WIFSIGNALED(status):
        name = signal.Signals(os.WTERMSIG(status)).name
        raise StoreError(f"the state in {directory} is damaged (reading it crashed: {name})")
    try:
        reply = msgpack.unpackb(b"".join(chunks), raw=False, use_list=True)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError):
        reply = None
    if not isinstance(reply, list) or not reply:
        raise StoreError(f"the state in {directory} could not be read")
    if reply[0] == "error":
        raise StoreError(str(reply[1]))
    _, blob, entries = reply
    return blob, [(int(seq), raw) for seq, raw in entries]


def _read(directory: Path) -> tuple[bytes, list[tuple[int, bytes]]]:
    journal = directory / "journal"
    legacy = directory / "journal.lmdb"
    checkpoint = directory / "checkpoint.lmdb"
    for path in (journal if journal.exists() or not legacy.exists() else legacy, checkpoint):
        if not path.exists():
            raise StoreError(f"the state in {directory} is incomplete: {path.name} is missing")
    with _open_checked(checkpoint) as env, env.begin() as txn:
        head = txn.get(b"head")
        digest = txn.get(b"digest")
        if head is None or digest is None:
            raise StoreError(f"{checkpoint} holds no checkpoint")
        try:
            check_header(head)
        except Exception as exc:
            raise StoreError(f"{checkpoint}: {exc}") from None
        parts = [bytes(v) for k, v in txn.cursor() if k.startswith(b"r")]
        blob = bytes(head) + b"".join(parts) + bytes(digest)
    # A legacy journal's entries come first: the journal file was started after them
    # (and the checkpoint that includes them deletes it).
    entries = _read_legacy(legacy) if legacy.exists() else []
    if journal.exists():
        try:
            entries += read_journal(journal)
        except (OSError, JournalFormatError) as exc:
            raise StoreError(str(exc)) from None
    return blob, entries


def _read_legacy(legacy: Path) -> list[tuple[int, bytes]]:
    """The entries of an LMDB journal (written by xsd before 2026-12-07)."""
    with _open_checked(legacy) as env, env.begin() as txn:
        if txn.get(b"format") != LEGACY_JOURNAL_FORMAT:
            raise StoreError(f"{legacy} is not an xsd journal")
        return [
            (int(_KEY.unpack(k[1:])[0]), bytes(v))
            for k, v in txn.cursor()
            if k.startswith(b"j") and len(k) == 1 + _KEY.size
        ]


@contextlib.contextmanager
def _open_checked(path: Path) -> Any:
    """An LMDB file opened read-only, refused if shorter than its own meta page says."""
    try:
        env = lmdb.open(str(path), subdir=False, readonly=True, lock=False, max_dbs=0)
    except lmdb.Error as exc:
        raise StoreError(f"{path} is not a readable LMDB file: {exc}") from exc
    try:
        needed = (env.info()["last_pgno"] + 1) * env.stat()["psize"]
        size = path.stat().st_size
        if size < needed:
            raise StoreError(f"{path} is truncated: {size} bytes of at least {needed}")
        try:
            yield env
        except lmdb.Error as exc:
            raise StoreError(f"{path} is damaged: {exc}") from exc
    finally:
        env.close()
