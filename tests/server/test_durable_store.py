"""The state directory's journal (``xsd.server.journal_file``, kept by
``xsd.server.durable_store.Store``): a checkpoint drops exactly the entries it includes
and the journal goes on from the rest, in a new file; an entry is in the journal once its
append returns, and only then; the map doubles when an entry does not fit; a file system
that refuses the space fails the append, the journal as it was. Real files, real maps,
a real file-size limit."""

from __future__ import annotations

import os
import resource
import signal
from pathlib import Path

import pytest

from xsd.server import journal_file
from xsd.server.durable_store import Store, StoreError
from xsd.server.journal_file import JournalFile, read_journal, used_bytes


def _value(seq: int, size: int) -> bytes:
    return (b"entry %d " % seq).ljust(size, b"x")


@pytest.mark.parametrize(
    ("entries", "included", "size"),
    [(10, 5, 16), (3, 0, 16), (768, 768, 16), (768, 256, 16), (768, 257, 3000),
     (300, 1, 3000)],
)  # fmt: skip
def test_checkpoint_drops_the_entries_it_includes(
    tmp_path: Path, entries: int, included: int, size: int
) -> None:
    store = Store(tmp_path, sync=False)
    store.open()
    try:
        end = store.journal_end()
        for seq in range(1, entries + 1):
            store.append(seq, _value(seq, size))
            if seq == included:
                end = store.journal_end()
        store.write_checkpoint([b"head", b"record", b"digest"], included, end)
        store.append(entries + 1, _value(entries + 1, size))  # the journal goes on
        left = read_journal(store.journal_path)
        assert left == [(seq, _value(seq, size)) for seq in range(included + 1, entries + 2)]
        assert store.last_seq() == entries + 1
    finally:
        store.close()


def test_a_checkpoint_told_the_wrong_end_keeps_the_journal_whole(tmp_path: Path) -> None:
    """The kept entries are read from the end offset the caller took with the last
    included entry; one that does not lead to the entry after it is refused, and the
    journal keeps every entry (the checkpoint written, which they follow)."""
    store = Store(tmp_path, sync=False)
    store.open()
    try:
        start = store.journal_end()
        for seq in range(1, 11):
            store.append(seq, _value(seq, 16))
        with pytest.raises(StoreError, match="does not go on from entry 5"):
            store.write_checkpoint([b"head", b"record", b"digest"], 5, start)
        assert read_journal(store.journal_path) == [(seq, _value(seq, 16)) for seq in range(1, 11)]
    finally:
        store.close()


def test_the_journal_starts_a_new_file_at_a_checkpoint(tmp_path: Path) -> None:
    store = Store(tmp_path, sync=False)
    store.open()
    try:
        for seq in range(1, 501):
            store.append(seq, _value(seq, 3000))
        assert used_bytes(store.journal_path) > 500 * 3000
        store.write_checkpoint([b"head", b"record", b"digest"], 500, store.journal_end())
        assert used_bytes(store.journal_path) == journal_file.HEADER
        assert read_journal(store.journal_path) == []
        assert not store.fresh_journal_path.exists()
    finally:
        store.close()


def test_a_new_journal_file_a_crash_left_is_ignored(tmp_path: Path) -> None:
    """A crash between writing the journal's new file and renaming it leaves the old one
    whole: the next start uses it and removes the other."""
    store = Store(tmp_path, sync=False)
    store.open()
    store.append(1, b"one")
    store.close()
    (tmp_path / "journal.new").write_bytes(b"half written")
    store = Store(tmp_path, sync=False)
    store.open()
    try:
        assert store.last_seq() == 1
        assert not store.fresh_journal_path.exists()
    finally:
        store.close()


def test_a_full_journal_map_doubles_and_keeps_every_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An append that does not fit the map doubles it (as often as needed) and is
    stored; no entry before or after it is lost, and the file reopens whole."""
    monkeypatch.setattr(journal_file, "RESERVE", 8 << 10)  # reserved 8 KiB at a time
    journal = JournalFile(tmp_path / "journal", sync=False, map_size=64 << 10)
    try:
        for seq in range(1, 101):
            journal.append(seq, _value(seq, 3000))  # 300 KiB in a 64 KiB map
        journal.append(101, _value(101, 600_000))  # more than the map doubled once
        assert journal.map_size >= 1 << 20
        assert journal.entries()[-2:] == [(100, _value(100, 3000)), (101, _value(101, 600_000))]
    finally:
        journal.close()
    expected = [(seq, _value(seq, 3000)) for seq in range(1, 101)] + [(101, _value(101, 600_000))]
    assert read_journal(tmp_path / "journal") == expected
    reopened = JournalFile(tmp_path / "journal", sync=True, map_size=64 << 10)
    try:
        assert reopened.last_seq() == 101
        reopened.append(102, b"after the reopening")  # synced: msync of page-aligned ranges
        assert reopened.entries()[-1] == (102, b"after the reopening")
    finally:
        reopened.close()


def test_bytes_past_the_end_offset_are_not_in_the_journal(tmp_path: Path) -> None:
    """What a crash leaves after the end offset (an entry written, the offset not moved
    yet: an append that never returned, so never acknowledged) is not read, and the next
    append writes over it."""
    path = tmp_path / "journal"
    journal = JournalFile(path, sync=False)
    journal.append(1, b"one")
    end = used_bytes(path)
    journal.close()
    with open(path, "r+b") as f:
        f.seek(end)
        f.write(b"\x02" + b"\0" * 7 + b"\xff\xff\0\0" + b"a torn entry")
    assert read_journal(path) == [(1, b"one")]
    journal = JournalFile(path, sync=False)
    try:
        journal.append(2, b"two")
    finally:
        journal.close()
    assert read_journal(path) == [(1, b"one"), (2, b"two")]


def test_an_append_the_file_system_refuses_leaves_the_journal_as_it_was(tmp_path: Path) -> None:
    """No space for an entry (here the process's file-size limit, which makes the space
    reservation fail as a full disk does): the append raises OSError, no SIGBUS, and the
    journal holds what it held. In a child process: the limit is for it alone."""
    path = tmp_path / "journal"
    journal = JournalFile(path, sync=False, map_size=256 << 10)
    journal.append(1, b"one")
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # EFBIG instead
            size = os.fstat(journal.fd).st_size
            resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
            try:
                journal.append(2, b"x" * (8 << 20))  # past the reserved space and the map
            except OSError:
                code = 0 if journal.entries() == [(1, b"one")] else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    journal.close()
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0, status
    assert read_journal(path) == [(1, b"one")]
