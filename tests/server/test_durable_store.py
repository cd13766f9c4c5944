"""A checkpoint drops exactly the journal entries it includes (``Store.write_checkpoint``):
the entries after it keep their bytes and the journal goes on from them, in a new file
(no free pages for later commits to draw from). A real LMDB state directory; small
entries and entries big enough for LMDB's overflow pages."""

from __future__ import annotations

from pathlib import Path

import pytest

from xsd.server import durable_store
from xsd.server.durable_store import Store, journal_key


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
        for seq in range(1, entries + 1):
            store.append(seq, _value(seq, size))
        store.write_checkpoint([b"head", b"record", b"digest"], included)
        store.append(entries + 1, _value(entries + 1, size))  # the journal goes on
        with store.journal.begin() as txn:
            items = [(bytes(key), bytes(value)) for key, value in txn.cursor()]
        left = [(int.from_bytes(k[1:], "big"), v) for k, v in items if k.startswith(b"j")]
        assert left == [(seq, _value(seq, size)) for seq in range(included + 1, entries + 2)]
        assert (b"format", b"xsd-journal 1") in items
        assert store.last_seq() == entries + 1
    finally:
        store.close()


def test_the_journal_starts_a_new_file_at_a_checkpoint(tmp_path: Path) -> None:
    store = Store(tmp_path, sync=False)
    store.open()
    try:
        for seq in range(1, 501):
            store.append(seq, _value(seq, 3000))  # an overflow page each
        assert store.journal.info()["last_pgno"] > 500
        store.write_checkpoint([b"head", b"record", b"digest"], 500)
        assert store.journal.info()["last_pgno"] < 10
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
    (tmp_path / "journal.new.lmdb").write_bytes(b"half written")
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
    """An append that finds the journal's map full doubles the map and is stored; no
    entry before or after it is lost."""
    monkeypatch.setattr(durable_store, "JOURNAL_MAP", 64 << 10)
    store = Store(tmp_path, sync=False)
    store.open()
    try:
        for seq in range(1, 101):
            store.append(seq, _value(seq, 3000))  # 300 KiB in a 64 KiB map
        assert store.journal.info()["map_size"] >= 256 << 10
        with store.journal.begin() as txn:
            left = [(bytes(k), bytes(v)) for k, v in txn.cursor() if k.startswith(b"j")]
        assert left == [(journal_key(seq), _value(seq, 3000)) for seq in range(1, 101)]
    finally:
        store.close()
